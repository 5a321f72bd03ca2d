// view_edges: every DRIVES edge of one run, group to group and top group to class. $run: Run key.
MATCH (g:NeuronGroup)-[d:DRIVES]->(t)
WHERE g.run = $run
RETURN g.key AS source, t.key AS target, CASE WHEN t.layer IS NULL THEN 'Class' ELSE 'NeuronGroup' END
       AS target_kind, d.weight AS weight, d.abs_weight AS abs_weight, d.share AS share,
       d.abs_share AS abs_share
ORDER BY source, target
