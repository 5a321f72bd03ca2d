// view_run: what the circuit viewer shows about one run. $run: Run key.
MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE r.key = $run
MATCH (m:Model)
WHERE m.key = r.model
RETURN r.key AS run, r.model AS model, m.name AS model_name, m.weights AS weights, c.`index` AS class,
       coalesce(c.name, r.class_name) AS class_name, r.layers AS layers, r.config AS config,
       r.n_nodes AS n_nodes, r.status AS status
