// class_keys: Class nodes matching an index ($idx, -1 for none) or a name / key ($name, case-insensitive).
// $models: Model keys to search.
MATCH (c:Class)
WHERE c.model IN $models AND (c.`index` = $idx OR lower(c.name) = lower($name) OR c.key = $name)
RETURN c.key AS class_key, c.model AS model, c.`index` AS class, c.name AS name
ORDER BY class_key
