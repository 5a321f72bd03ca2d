// group: one neuron group of a complete run, with its class and exemplar counts. $key: NeuronGroup key.
MATCH (r:Run)-[:HAS_GROUP]->(g:NeuronGroup)
WHERE g.key = $key AND r.status = 'complete'
MATCH (r)-[:EXPLAINS]->(c:Class)
RETURN g.key AS group_key, r.key AS run, g.model AS model, c.`index` AS class, c.name AS class_name,
       g.layer AS layer, g.depth AS depth, g.`index` AS group_index, g.size AS size, g.n_neurons AS neurons,
       g.silhouette AS silhouette, g.share AS share, g.abs_share AS abs_share, g.influence AS influence,
       g.abs_influence AS abs_influence,
       g.n_exemplars AS exemplars, size(g.thumbnails) AS thumbnails
