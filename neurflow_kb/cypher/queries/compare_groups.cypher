// compare_groups: every group of some complete runs with its share of the class, its depth against the
// run's class layer and its concept labels of one CLIP encoder up to a rank (one row per label; one row
// with a null concept when the group has none).
// $runs: Run keys; $encoder: the encoder whose labels count; $ranks: labels of rank <= this count.
MATCH (r:Run)-[:HAS_GROUP]->(g:NeuronGroup)
WHERE r.key IN $runs AND r.status = 'complete'
OPTIONAL MATCH (g)-[l:LABELED]->(k:Concept)
WHERE l.rank <= $ranks AND l.encoder = $encoder
RETURN r.key AS run, r.model AS model, size(r.layers) - 1 AS top_depth, g.key AS group_key,
       g.layer AS layer, g.depth AS depth, g.`index` AS group_index, g.share AS share,
       g.abs_share AS abs_share, k.text AS concept, l.rank AS rank, l.score AS score
ORDER BY run, depth, group_index, rank, concept
