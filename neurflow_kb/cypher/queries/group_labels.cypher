// group_labels: concept labels of a group (CLIP and other labelling methods). $key: NeuronGroup key.
MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept)
WHERE g.key = $key
RETURN k.text AS concept, k.vocabulary AS vocabulary, l.score AS score, l.rank AS rank, l.method AS method,
       l.encoder AS encoder
ORDER BY rank, score DESC, concept
