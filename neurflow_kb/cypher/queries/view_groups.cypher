// view_groups: every group of one run with its thumbnails (base64 PNG). $run: Run key.
MATCH (r:Run)-[:HAS_GROUP]->(g:NeuronGroup)
WHERE r.key = $run
RETURN g.key AS group_key, g.depth AS depth, g.layer AS layer, g.`index` AS group_index, g.size AS size,
       g.n_neurons AS neurons, g.silhouette AS silhouette, g.share AS share, g.abs_share AS abs_share,
       g.influence AS influence, g.abs_influence AS abs_influence, g.thumbnails AS thumbnails
ORDER BY depth, group_index
