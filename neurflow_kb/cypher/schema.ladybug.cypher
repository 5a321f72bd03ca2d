// neurflow-kb graph schema for the embedded Ladybug store (same labels, keys and properties as
// schema.cypher; Ladybug needs tables declared, allows one label per node and reserves `index`,
// hence the backticks). Idempotent; `neurflow-kb init` applies it.
CREATE NODE TABLE IF NOT EXISTS Model(key STRING PRIMARY KEY, name STRING, arch STRING, weights STRING, num_classes INT64);
CREATE NODE TABLE IF NOT EXISTS Layer(key STRING PRIMARY KEY, model STRING, name STRING, depth INT64, channels INT64);
CREATE NODE TABLE IF NOT EXISTS Neuron(key STRING PRIMARY KEY, model STRING, layer STRING, `index` INT64);
CREATE NODE TABLE IF NOT EXISTS Class(key STRING PRIMARY KEY, model STRING, `index` INT64, name STRING);
CREATE NODE TABLE IF NOT EXISTS Run(key STRING PRIMARY KEY, model STRING, target_class INT64, class_name STRING, status STRING, layers STRING[], config STRING, data_fingerprint STRING, versions STRING, seed INT64, timings STRING, written_at STRING, n_groups INT64, n_nodes INT64, n_edges INT64, digest STRING);
CREATE NODE TABLE IF NOT EXISTS NeuronGroup(key STRING PRIMARY KEY, run STRING, model STRING, target_class INT64, layer STRING, depth INT64, `index` INT64, size INT64, n_neurons INT64, silhouette DOUBLE, influence DOUBLE, abs_influence DOUBLE, share DOUBLE, abs_share DOUBLE, n_exemplars INT64, thumbnails STRING[], embedding FLOAT[], embedding_encoder STRING);
CREATE NODE TABLE IF NOT EXISTS Concept(key STRING PRIMARY KEY, text STRING, vocabulary STRING);
CREATE NODE TABLE IF NOT EXISTS Image(key STRING PRIMARY KEY, uri STRING, label INT64, predicted INT64);
// Encoder: how to load a label encoder again (key = the encoder id LABELED.encoder and
// NeuronGroup.embedding_encoder carry); digest = sha256 of its weights' tensors.
CREATE NODE TABLE IF NOT EXISTS Encoder(key STRING PRIMARY KEY, kind STRING, model STRING, pretrained STRING, path STRING, digest STRING);
CREATE REL TABLE IF NOT EXISTS HAS_LAYER(FROM Model TO Layer);
CREATE REL TABLE IF NOT EXISTS HAS_NEURON(FROM Layer TO Neuron);
CREATE REL TABLE IF NOT EXISTS HAS_CLASS(FROM Model TO Class);
CREATE REL TABLE IF NOT EXISTS UNIT(FROM Class TO Neuron);
CREATE REL TABLE IF NOT EXISTS EXPLAINS(FROM Run TO Class);
CREATE REL TABLE IF NOT EXISTS HAS_GROUP(FROM Run TO NeuronGroup);
CREATE REL TABLE IF NOT EXISTS AT_LAYER(FROM NeuronGroup TO Layer);
CREATE REL TABLE IF NOT EXISTS MEMBER_OF(FROM Neuron TO NeuronGroup, subconcept INT64, activation DOUBLE);
// INFLUENCES (9 in 10 relationships) is stored forward only: bulk loads take about two thirds of the
// time; backward walks still work, undirected INFLUENCES patterns are refused by Ladybug.
CREATE REL TABLE IF NOT EXISTS INFLUENCES(FROM Neuron TO Neuron, run STRING, subconcept INT64, weight DOUBLE, importance DOUBLE) WITH (storage_direction = 'fwd');
CREATE REL TABLE IF NOT EXISTS DRIVES(FROM NeuronGroup TO NeuronGroup, FROM NeuronGroup TO Class, weight DOUBLE, abs_weight DOUBLE, share DOUBLE, abs_share DOUBLE);
CREATE REL TABLE IF NOT EXISTS LABELED(FROM NeuronGroup TO Concept, score DOUBLE, rank INT64, method STRING, encoder STRING);
CREATE REL TABLE IF NOT EXISTS ACTIVATES(FROM Image TO NeuronGroup, score DOUBLE, crop INT64);
// RESEMBLES (derived, rewritten when runs are loaded or labelled): a -> b when b is among the groups of
// b's run closest to a by CLIP embedding cosine (runs of different models explaining the same class,
// embedded with the same encoder); rank 1 = closest.
CREATE REL TABLE IF NOT EXISTS RESEMBLES(FROM NeuronGroup TO NeuronGroup, cosine DOUBLE, encoder STRING, rank INT64);
