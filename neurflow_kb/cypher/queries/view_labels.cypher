// view_labels: concept labels of every group of one run, best first. $run: Run key.
MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept)
WHERE g.run = $run
RETURN g.key AS group_key, k.text AS concept, l.score AS score, l.rank AS rank, k.vocabulary AS vocabulary,
       l.encoder AS encoder, l.method AS method
ORDER BY group_key, rank, score DESC, concept
