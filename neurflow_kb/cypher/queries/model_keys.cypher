// model_keys: Model keys and names, to resolve a model given by name or key.
MATCH (m:Model)
RETURN m.key AS model, m.name AS name
ORDER BY model
