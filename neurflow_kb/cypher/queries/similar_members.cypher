// similar_members: one row per (neuron, sub-concept) member of every group of some complete runs, with
// the group's share of its class (abs_share) and size, from which `neurflow_kb.compare` spreads each
// group's share over its neurons. $runs: Run keys.
MATCH (r:Run)-[:HAS_GROUP]->(g:NeuronGroup)<-[m:MEMBER_OF]-(n:Neuron)
WHERE r.key IN $runs AND r.status = 'complete'
RETURN r.key AS run, g.layer AS layer, g.depth AS depth, n.`index` AS neuron, m.subconcept AS subconcept,
       g.key AS group_key, g.abs_share AS abs_share, g.size AS size
ORDER BY run, depth, neuron, subconcept, group_key
