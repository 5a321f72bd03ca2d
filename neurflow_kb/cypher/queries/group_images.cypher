// group_images: images whose debugging found a group firing (`neurflow-kb debug --save`), strongest
// first. $key: NeuronGroup key.
MATCH (i:Image)-[a:ACTIVATES]->(g:NeuronGroup)
WHERE g.key = $key
RETURN i.key AS image, i.uri AS uri, i.label AS label, i.predicted AS predicted, a.score AS score,
       a.crop AS crop
ORDER BY score DESC, image
