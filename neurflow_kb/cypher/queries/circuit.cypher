// circuit: the group-level circuit of a class, every DRIVES edge of its complete run(s) whose |weight|
// reaches $min_weight and whose abs_share (the part of the class's share the edge passes down; the edges
// of a transition sum to 1) reaches $min_share, from lower groups up to the class (target_kind 'Class'
// for the last hop), strongest first within each layer.
// $classes: Class keys; $min_weight: threshold on |weight|; $min_share: threshold on abs_share.
MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE c.key IN $classes AND r.status = 'complete'
MATCH (r)-[:HAS_GROUP]->(a:NeuronGroup)-[d:DRIVES]->(b)
WHERE abs(d.weight) >= $min_weight AND d.abs_share >= $min_share
RETURN r.key AS run, c.`index` AS class, a.key AS source, a.layer AS source_layer, a.depth AS source_depth,
       b.key AS target, CASE WHEN b.layer IS NULL THEN 'Class' ELSE 'NeuronGroup' END AS target_kind,
       b.layer AS target_layer, d.share AS share, d.abs_share AS abs_share, d.weight AS weight,
       d.abs_weight AS abs_weight
ORDER BY run, source_depth DESC, abs_share DESC, source, target
