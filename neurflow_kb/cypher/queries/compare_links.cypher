// compare_links: RESEMBLES relationships (CLIP embedding cosine) between the groups of some runs.
// $runs: Run keys.
MATCH (a:NeuronGroup)-[x:RESEMBLES]->(b:NeuronGroup)
WHERE a.run IN $runs AND b.run IN $runs
RETURN a.key AS source, b.key AS target, x.cosine AS cosine, x.encoder AS encoder, x.rank AS rank
ORDER BY source, rank, target
