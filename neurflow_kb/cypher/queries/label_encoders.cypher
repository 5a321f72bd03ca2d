// label_encoders: which CLIP encoders have labelled (rank 1) the groups of some runs, with group counts.
// $runs: Run keys.
MATCH (g:NeuronGroup)-[l:LABELED]->(:Concept)
WHERE g.run IN $runs AND l.rank = 1
RETURN g.run AS run, l.encoder AS encoder, count(DISTINCT g) AS groups
ORDER BY run, encoder
