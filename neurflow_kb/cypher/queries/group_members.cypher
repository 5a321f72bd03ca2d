// group_members: the (neuron, sub-concept) nodes of a group. $key: NeuronGroup key.
MATCH (n:Neuron)-[m:MEMBER_OF]->(g:NeuronGroup)
WHERE g.key = $key
RETURN n.key AS neuron_key, n.layer AS layer, n.`index` AS neuron, m.subconcept AS subconcept,
       m.activation AS activation
ORDER BY neuron, subconcept
