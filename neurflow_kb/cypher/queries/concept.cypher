// concept: groups labelled with a concept (text or Concept key, case-insensitive), in complete runs.
// $text: concept text; $models: Model keys to search.
MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept)
WHERE (lower(k.text) = lower($text) OR k.key = $text) AND g.model IN $models
MATCH (r:Run)-[:HAS_GROUP]->(g)
WHERE r.status = 'complete'
MATCH (r)-[:EXPLAINS]->(c:Class)
RETURN k.text AS concept, g.key AS group_key, g.model AS model, c.`index` AS class, c.name AS class_name,
       g.layer AS layer, l.score AS score, l.rank AS rank, l.method AS method, g.abs_share AS share,
       g.influence AS influence
ORDER BY score DESC, group_key
