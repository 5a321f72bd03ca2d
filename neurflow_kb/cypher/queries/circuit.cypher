// circuit: the group-level circuit of a class, every DRIVES edge of its complete run(s) whose |weight|
// reaches $min_weight, from lower groups up to the class (target_kind 'Class' for the last hop).
// $classes: Class keys; $min_weight: threshold on |weight|.
MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE c.key IN $classes AND r.status = 'complete'
MATCH (r)-[:HAS_GROUP]->(a:NeuronGroup)-[d:DRIVES]->(b)
WHERE abs(d.weight) >= $min_weight
RETURN r.key AS run, c.`index` AS class, a.key AS source, a.layer AS source_layer, a.depth AS source_depth,
       b.key AS target, CASE WHEN b.layer IS NULL THEN 'Class' ELSE 'NeuronGroup' END AS target_kind,
       b.layer AS target_layer, d.weight AS weight, d.abs_weight AS abs_weight
ORDER BY run, source_depth DESC, source, target
