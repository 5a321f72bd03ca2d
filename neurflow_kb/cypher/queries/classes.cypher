// classes: classes that have at least one complete run. $models: Model keys.
MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE r.status = 'complete' AND c.model IN $models
RETURN c.model AS model, c.`index` AS class, c.name AS name, count(r) AS runs
ORDER BY model, class
