// search (Ladybug): the same rows as search.cypher, ranked by brute force with array_cosine_similarity
// (Ladybug's vector index is a downloadable extension). __DIM__ is replaced by the embedding size, an
// integer the caller checks (CAST to a fixed-size array needs a literal size).
// $vector: the text's embedding; $dim: its size; $encoder: its encoder; $models: Model keys; $limit.
MATCH (r:Run)-[:HAS_GROUP]->(g:NeuronGroup)
WHERE r.status = 'complete' AND g.embedding_encoder = $encoder AND g.model IN $models
  AND size(g.embedding) = $dim
MATCH (r)-[:EXPLAINS]->(c:Class)
WITH g, c, array_cosine_similarity(CAST(g.embedding AS FLOAT[__DIM__]), CAST($vector AS FLOAT[__DIM__]))
     AS similarity
ORDER BY similarity DESC, g.key
LIMIT $limit
OPTIONAL MATCH (g)-[l:LABELED]->(k:Concept)
WHERE l.rank = 1
WITH g, c, similarity, collect(k.text) AS labels
RETURN g.key AS group_key, g.model AS model, c.`index` AS class, c.name AS class_name, g.layer AS layer,
       g.`index` AS group_index, similarity, g.abs_share AS share, g.influence AS influence, labels
ORDER BY similarity DESC, group_key
