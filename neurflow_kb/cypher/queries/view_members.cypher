// view_members: (neuron, sub-concept) members of every group of one run. $run: Run key.
MATCH (n:Neuron)-[m:MEMBER_OF]->(g:NeuronGroup)
WHERE g.run = $run
RETURN g.key AS group_key, n.`index` AS neuron, m.subconcept AS subconcept, m.activation AS activation
ORDER BY group_key, neuron, subconcept
