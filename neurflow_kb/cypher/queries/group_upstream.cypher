// group_upstream: lower-layer groups that drive a group. $key: NeuronGroup key.
MATCH (u:NeuronGroup)-[d:DRIVES]->(g:NeuronGroup)
WHERE g.key = $key
RETURN u.key AS group_key, u.layer AS layer, u.`index` AS group_index, d.share AS share,
       d.abs_share AS abs_share, d.weight AS weight, d.abs_weight AS abs_weight, u.abs_share AS group_share,
       u.influence AS influence
ORDER BY abs_share DESC, abs_weight DESC, group_key
