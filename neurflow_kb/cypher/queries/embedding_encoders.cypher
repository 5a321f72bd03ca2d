// embedding_encoders: which CLIP encoders (and vector sizes) the groups of complete runs are embedded with.
// $models: Model keys.
MATCH (r:Run)-[:HAS_GROUP]->(g:NeuronGroup)
WHERE r.status = 'complete' AND g.model IN $models AND g.embedding IS NOT NULL
RETURN g.embedding_encoder AS encoder, size(g.embedding) AS dim, count(g) AS groups
ORDER BY encoder, dim
