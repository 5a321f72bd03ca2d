// search: groups whose CLIP image embedding is closest (cosine) to a text's embedding, in complete runs,
// with the class each group's run explains and the group's influence on it. The vector index proposes
// the $candidates nearest groups of any model; they are filtered and re-scored exactly (cosine in
// [-1, 1]; Neo4j's vector functions return (1 + cosine) / 2).
// $vector: the text's embedding; $encoder: its encoder; $models: Model keys; $candidates; $limit.
CALL db.index.vector.queryNodes('group_embedding', $candidates, $vector) YIELD node AS g
WHERE g.embedding_encoder = $encoder AND g.model IN $models
MATCH (r:Run)-[:HAS_GROUP]->(g)
WHERE r.status = 'complete'
MATCH (r)-[:EXPLAINS]->(c:Class)
WITH g, c, 2 * vector.similarity.cosine(g.embedding, $vector) - 1 AS similarity
ORDER BY similarity DESC, g.key
LIMIT $limit
OPTIONAL MATCH (g)-[l:LABELED]->(k:Concept)
WHERE l.rank = 1
WITH g, c, similarity, collect(k.text) AS labels
RETURN g.key AS group_key, g.model AS model, c.`index` AS class, c.name AS class_name, g.layer AS layer,
       g.`index` AS group_index, similarity, g.abs_share AS share, g.influence AS influence, labels
ORDER BY similarity DESC, group_key
