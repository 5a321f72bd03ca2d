// similar_candidates: the memberships that other complete runs of some models have at given neurons (the
// neurons a class's circuit uses), with the class each run explains: what `query similar` compares.
// $neurons: Neuron keys; $runs: Run keys left out (the class's own runs); $models: Model keys.
MATCH (n:Neuron)-[m:MEMBER_OF]->(g:NeuronGroup)
WHERE n.key IN $neurons AND g.model IN $models AND NOT g.run IN $runs
MATCH (r:Run)-[:HAS_GROUP]->(g)
WHERE r.status = 'complete'
MATCH (r)-[:EXPLAINS]->(c:Class)
RETURN r.key AS run, r.model AS model, c.`index` AS class, coalesce(c.name, r.class_name) AS class_name,
       g.layer AS layer, g.depth AS depth, n.`index` AS neuron, m.subconcept AS subconcept,
       g.key AS group_key, g.abs_share AS abs_share, g.size AS size
ORDER BY run, depth, neuron, subconcept, group_key
