// drivers: the groups of a class's complete run(s), ranked by their influence on the class (summed
// path weight over DRIVES, computed once at write time by dynamic programming; no path enumeration).
// $classes: Class keys; $layer: one layer name, or '' for every layer; $limit: most rows.
MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE c.key IN $classes AND r.status = 'complete'
MATCH (r)-[:HAS_GROUP]->(g:NeuronGroup)
WHERE $layer = '' OR g.layer = $layer
RETURN c.model AS model, c.`index` AS class, c.name AS class_name, r.key AS run, g.key AS group_key,
       g.layer AS layer, g.depth AS depth, g.`index` AS group_index, g.size AS size,
       g.n_neurons AS neurons, g.influence AS influence, g.abs_influence AS abs_influence
ORDER BY influence DESC, group_key
LIMIT $limit
