// neurflow-kb graph schema for Neo4j 5: one uniqueness constraint per node key, plus the indexes the
// named queries filter on. Idempotent (IF NOT EXISTS); `neurflow-kb init --neo4j URI` applies it.
CREATE CONSTRAINT model_key IF NOT EXISTS FOR (n:Model) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT layer_key IF NOT EXISTS FOR (n:Layer) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT neuron_key IF NOT EXISTS FOR (n:Neuron) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT class_key IF NOT EXISTS FOR (n:Class) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT run_key IF NOT EXISTS FOR (n:Run) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT group_key IF NOT EXISTS FOR (n:NeuronGroup) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT concept_key IF NOT EXISTS FOR (n:Concept) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT image_key IF NOT EXISTS FOR (n:Image) REQUIRE n.key IS UNIQUE;
CREATE CONSTRAINT encoder_key IF NOT EXISTS FOR (n:Encoder) REQUIRE n.key IS UNIQUE;
CREATE INDEX model_name IF NOT EXISTS FOR (n:Model) ON (n.name);
CREATE INDEX layer_model IF NOT EXISTS FOR (n:Layer) ON (n.model);
CREATE INDEX neuron_model IF NOT EXISTS FOR (n:Neuron) ON (n.model);
CREATE INDEX class_index IF NOT EXISTS FOR (n:Class) ON (n.`index`);
CREATE INDEX class_name IF NOT EXISTS FOR (n:Class) ON (n.name);
CREATE INDEX class_model IF NOT EXISTS FOR (n:Class) ON (n.model);
CREATE INDEX run_status IF NOT EXISTS FOR (n:Run) ON (n.status);
CREATE INDEX run_model_class IF NOT EXISTS FOR (n:Run) ON (n.model, n.target_class);
CREATE INDEX group_run IF NOT EXISTS FOR (n:NeuronGroup) ON (n.run);
CREATE INDEX group_layer IF NOT EXISTS FOR (n:NeuronGroup) ON (n.layer);
CREATE INDEX group_influence IF NOT EXISTS FOR (n:NeuronGroup) ON (n.influence);
CREATE INDEX group_abs_share IF NOT EXISTS FOR (n:NeuronGroup) ON (n.abs_share);
CREATE INDEX concept_text IF NOT EXISTS FOR (n:Concept) ON (n.text);
CREATE INDEX influences_run IF NOT EXISTS FOR ()-[r:INFLUENCES]-() ON (r.run);
CREATE INDEX image_uri IF NOT EXISTS FOR (n:Image) ON (n.uri);
// Text search over groups (`neurflow-kb query search`): cosine vector index on the CLIP embedding. No fixed
// dimension, so embeddings of different encoders coexist (a query only meets vectors of its own size);
// no quantization (the search query re-scores its candidates exactly anyway).
CREATE VECTOR INDEX group_embedding IF NOT EXISTS FOR (n:NeuronGroup) ON (n.embedding) OPTIONS {indexConfig: {`vector.similarity_function`: 'cosine', `vector.quantization.enabled`: false}};
