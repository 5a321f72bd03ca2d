// label_groups: the groups of a complete run with their thumbnails and how many labels they already
// have from one vocabulary, encoder and method (what `neurflow-kb label` skips); every group of the run
// is returned, as the reference of the contrastive labels.
// $run: Run key; $vocabulary, $encoder, $method: the labelling that counts.
MATCH (r:Run)-[:HAS_GROUP]->(g:NeuronGroup)
WHERE r.key = $run AND r.status = 'complete'
OPTIONAL MATCH (g)-[l:LABELED]->(k:Concept)
WHERE k.vocabulary = $vocabulary AND l.encoder = $encoder AND l.method = $method
WITH g, count(l) AS labels
RETURN g.key AS group_key, g.layer AS layer, g.thumbnails AS thumbnails, labels
ORDER BY group_key
