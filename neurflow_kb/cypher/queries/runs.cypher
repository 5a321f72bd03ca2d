// runs: complete runs, optionally of some classes. $models: Model keys; $classes: Class keys ([] = all).
MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE r.status = 'complete' AND r.model IN $models AND (size($classes) = 0 OR c.key IN $classes)
RETURN r.key AS run, r.model AS model, c.`index` AS class, c.name AS class_name, r.n_groups AS groups,
       r.n_nodes AS nodes, r.n_edges AS edges, r.data_fingerprint AS data_fingerprint, r.seed AS seed
ORDER BY model, class, run
