// drivers: the groups of a class's complete run(s), ranked by their share of the class (abs_share: the
// class's attribution flowing through the group; each layer's shares sum to 1), with the paper's
// influence (summed path weight over DRIVES) beside it; both computed once when the run was built.
// $classes: Class keys; $layer: one layer name, or '' for every layer; $limit: most rows.
MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE c.key IN $classes AND r.status = 'complete'
MATCH (r)-[:HAS_GROUP]->(g:NeuronGroup)
WHERE $layer = '' OR g.layer = $layer
RETURN c.model AS model, c.`index` AS class, c.name AS class_name, r.key AS run, g.key AS group_key,
       g.layer AS layer, g.depth AS depth, g.`index` AS group_index, g.size AS size,
       g.n_neurons AS neurons, g.share AS share, g.abs_share AS abs_share, g.influence AS influence,
       g.abs_influence AS abs_influence
ORDER BY abs_share DESC, group_key
LIMIT $limit
