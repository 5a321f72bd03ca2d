// group_upstream: lower-layer groups that drive a group. $key: NeuronGroup key.
MATCH (u:NeuronGroup)-[d:DRIVES]->(g:NeuronGroup)
WHERE g.key = $key
RETURN u.key AS group_key, u.layer AS layer, u.`index` AS group_index, d.weight AS weight,
       d.abs_weight AS abs_weight, u.influence AS influence
ORDER BY abs_weight DESC, group_key
