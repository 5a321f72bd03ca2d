// shared: neurons that are members of groups in the complete runs of two classes, with the pairs of
// groups that share them. $classes_a, $classes_b: Class keys.
MATCH (ra:Run)-[:EXPLAINS]->(ca:Class)
WHERE ca.key IN $classes_a AND ra.status = 'complete'
MATCH (rb:Run)-[:EXPLAINS]->(cb:Class)
WHERE cb.key IN $classes_b AND rb.status = 'complete' AND rb.key <> ra.key
MATCH (ra)-[:HAS_GROUP]->(ga:NeuronGroup)<-[:MEMBER_OF]-(n:Neuron)-[:MEMBER_OF]->(gb:NeuronGroup)
WHERE gb.run = rb.key
RETURN DISTINCT n.key AS neuron_key, n.layer AS layer, ga.depth AS depth, n.`index` AS neuron,
       ga.key AS group_a, gb.key AS group_b, ga.abs_share AS share_a, gb.abs_share AS share_b,
       ga.influence AS influence_a, gb.influence AS influence_b
ORDER BY depth DESC, neuron, group_a, group_b
