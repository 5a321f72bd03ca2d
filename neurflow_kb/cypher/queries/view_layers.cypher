// view_layers: the layers of one model with their channel counts. $model: Model key.
MATCH (l:Layer)
WHERE l.model = $model
RETURN l.name AS name, l.depth AS depth, l.channels AS channels
ORDER BY depth, name
