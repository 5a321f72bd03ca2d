// path_step: the upward DRIVES edges of one group, for the greedy strongest path to its class
// (queries.path picks the edge maximising weight x influence of the target, a class counting 1).
// $key: NeuronGroup key.
MATCH (g:NeuronGroup)-[d:DRIVES]->(u)
WHERE g.key = $key
RETURN u.key AS target, CASE WHEN u.layer IS NULL THEN 'Class' ELSE 'NeuronGroup' END AS target_kind,
       u.layer AS layer, u.depth AS depth, d.weight AS weight, coalesce(u.influence, 1.0) AS influence
ORDER BY target
