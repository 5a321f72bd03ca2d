// models: every model in the knowledge base with its layer count and number of complete runs.
MATCH (m:Model)
OPTIONAL MATCH (m)-[:HAS_LAYER]->(l:Layer)
WITH m, count(l) AS layers
OPTIONAL MATCH (r:Run)
WHERE r.model = m.key AND r.status = 'complete'
RETURN m.key AS model, m.name AS name, m.arch AS arch, m.weights AS weights, m.num_classes AS num_classes,
       layers, count(r) AS runs
ORDER BY model
