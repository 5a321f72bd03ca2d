// group_downstream: what a group drives: upper-layer groups, or the class for a top group. $key: group key.
MATCH (g:NeuronGroup)-[d:DRIVES]->(v)
WHERE g.key = $key
RETURN v.key AS target, CASE WHEN v.layer IS NULL THEN 'Class' ELSE 'NeuronGroup' END AS target_kind,
       v.layer AS layer, d.share AS share, d.abs_share AS abs_share, d.weight AS weight,
       d.abs_weight AS abs_weight
ORDER BY abs_share DESC, abs_weight DESC, target
