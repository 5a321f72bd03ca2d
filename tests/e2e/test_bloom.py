"""The Bloom perspective and Browser style sheet: generated from the schema, committed up to date, with
the fields of Bloom's export format, and every search phrase's Cypher run on the real Neo4j against a
small knowledge base (each must return something to draw)."""

from __future__ import annotations

import json
import re

import pytest
from neo4j import GraphDatabase
from neo4j.graph import Node, Path, Relationship

from neurflow_kb import queries
from neurflow_kb.store import Neo4jStore, refuse_writes
from neurflow_kb.store.schema import cypher_dir, schema
from neurflow_kb.viewer.bloom import SEARCH_PHRASES, perspective, style_grass
from neurflow_kb_dev.synthetic import synthetic_circuit, synthetic_labels

#: End to end (trained worlds, a browser): not in the fast suite.
pytestmark = pytest.mark.slow

TOY_CHAIN = (("conv", 32), ("b1", 48), ("b2", 48), ("logits", 10))
TOY_NAMES = [f"toy{j}" for j in range(10)]


def toy(cls: int):
    return synthetic_circuit(cls, chain=TOY_CHAIN, nodes_per_layer=(2, 10, 20), tau=6, model="toy",
                             weights="random", class_names=TOY_NAMES)


def test_committed_files_are_generated_from_the_current_schema() -> None:
    bloom = json.loads((cypher_dir() / "bloom" / "neurflow.json").read_text())
    regenerate = "stale: run python -m neurflow_kb.viewer.bloom"
    assert bloom == perspective(), f"cypher/bloom/neurflow.json is {regenerate}"
    grass = (cypher_dir() / "browser" / "style.grass").read_text()
    assert grass == style_grass(), f"cypher/browser/style.grass is {regenerate}"


def test_perspective_has_blooms_export_fields() -> None:
    p = perspective()
    sch = schema()
    for key in ("name", "id", "version", "categories", "labels", "relationshipTypes", "templates", "palette",
                "hiddenRelationshipTypes", "metadata"):
        assert key in p, key
    cats = {c["name"]: c for c in p["categories"]}
    assert set(cats) == set(sch.nodes)
    assert len({c["id"] for c in p["categories"]}) == len(cats)
    for label, cat in cats.items():
        assert cat["labels"] == [label]
        names = [prop["name"] for prop in cat["properties"]]
        assert names == sch.nodes[label].columns
        assert cat["captionKeys"] and set(cat["captionKeys"]) <= set(names)
        assert re.fullmatch(r"#[0-9A-F]{6}", cat["color"])
    assert {prop["name"] for prop in cats["NeuronGroup"]["properties"] if prop["exclude"]} >= {"thumbnails",
                                                                                                "embedding"}
    rels = {r["name"]: r for r in p["relationshipTypes"]}
    assert set(rels) == set(sch.rels)
    drives = rels["DRIVES"]["styleRules"]
    assert any(r["type"] == "range" and r["applySize"] and r["basedOn"] == "abs_share" for r in drives)
    group_rules = cats["NeuronGroup"]["styleRules"]
    assert any(r["type"] == "range" and r["basedOn"] == "abs_share" for r in group_rules)
    assert any(r["basedOn"] == "cosine" for r in rels["RESEMBLES"]["styleRules"])
    assert any(r["basedOn"] == "weight" and r["applyColor"] and r["condition"] == "less" for r in drives)
    assert {seg["relationshipType"] for seg in p["metadata"]["pathSegments"]} == set(sch.rels)
    assert len(p["templates"]) == len(SEARCH_PHRASES) >= 7
    for t in p["templates"]:
        assert t["text"] and t["cypher"] and isinstance(t["params"], list)
        refuse_writes(t["cypher"])                      # search phrases only read
        for param in t["params"]:
            assert param["name"].startswith("$") and param["name"] in t["text"]
            assert param["name"] in t["cypher"]
            assert param["suggestionLabel"] in sch.nodes
            assert param["suggestionProp"] in sch.nodes[param["suggestionLabel"]].columns
        assert set(re.findall(r"\$\w+", t["cypher"])) == {param["name"] for param in t["params"]}
    helpers = {ph.helper for ph in SEARCH_PHRASES}
    assert {"drivers", "circuit", "group", "concept", "shared", "similar", "compare", "path"} <= helpers


@pytest.mark.neo4j
def test_every_search_phrase_runs_on_neo4j_and_finds_something(neo4j_clean) -> None:
    srv = neo4j_clean
    twin = synthetic_circuit(1, chain=(("stem", 24), ("s1", 40), ("s2", 40), ("s3", 64), ("head", 10)),
                             nodes_per_layer=(3, 12, 24, 30), tau=8, model="twin", weights="v2",
                             class_names=TOY_NAMES, seed=5)
    circuits = [toy(1), toy(2), toy(3), twin]
    with Neo4jStore(srv.uri, user=srv.user, password=srv.password, database=srv.database) as store:
        store.write_circuits(circuits)
        store.write_labels(*synthetic_labels(circuits))           # labels, embeddings and RESEMBLES
    with GraphDatabase.driver(srv.uri, auth=srv.auth) as driver:
        def run(cypher: str, **params):
            return driver.execute_query(cypher, params, database_=srv.database).records

        groups = ("MATCH (r:Run)-[:EXPLAINS]->(c:Class {name: 'toy1'}) "
                  "MATCH (r)-[:HAS_GROUP]->(g:NeuronGroup) ")
        top = run(groups + "RETURN g.key AS k ORDER BY g.depth DESC, g.influence DESC LIMIT 1")[0]["k"]
        low = run(groups + "WHERE g.depth = 1 AND g.influence > 0 RETURN g.key AS k "
                  "ORDER BY g.influence DESC LIMIT 1")[0]["k"]
        # a concept label and a debugged image on that group, as `label` and `debug --save` write them
        run("MATCH (g:NeuronGroup {key: $g}) "
            "MERGE (k:Concept {key: 'broad/red', text: 'red', vocabulary: 'broad'}) "
            "MERGE (g)-[:LABELED {score: 0.9, rank: 1, method: 'clip-mean-softmax', encoder: 'test'}]->(k) "
            "MERGE (i:Image {key: 'sha256:abc', uri: 'cat.png', label: -1, predicted: 1}) "
            "MERGE (i)-[:ACTIVATES {score: 1.2, crop: 3}]->(g)", g=low)
        examples = {"class": "toy1", "class_a": "toy1", "class_b": "toy2", "concept": "red", "model_a": "toy",
                    "model_b": "twin"}
        for phrase in SEARCH_PHRASES:
            params = {p.name: examples.get(p.name, low) for p in phrase.params}
            if phrase.helper == "group":
                params["group"] = top
            records = run(phrase.cypher, **params)
            assert records, f"search phrase {phrase.text!r} found nothing with {params}"
            values = [v for r in records for v in r.values() if v is not None]
            assert any(isinstance(v, Node | Relationship | Path) for v in values), phrase.text
        # the class neighbourhood carries the same similarity as `query similar`
        similar = next(p.cypher for p in SEARCH_PHRASES if p.helper == "similar")
        got = {r["cb"]["name"]: r["rel"]["similarity"] for r in run(similar, **{"class": "toy1"})}
        with Neo4jStore(srv.uri, user=srv.user, password=srv.password, database=srv.database,
                    read_only=True) as store:
            want = queries.similar(store, "toy1", model="toy")
        assert got.keys() == set(want["class_name"])
        for name, score in zip(want["class_name"], want["similarity"], strict=True):
            assert got[name] == pytest.approx(score, abs=1e-12)
        # ... and by concepts as `query similar --by concepts` (the encoder labelling most of toy1's groups)
        by_concepts = next(p.cypher for p in SEARCH_PHRASES if p.text.startswith("Classes sharing concepts"))
        got = {r["cb"]["name"]: r["rel"]["similarity"] for r in run(by_concepts, **{"class": "toy1"})}
        with Neo4jStore(srv.uri, user=srv.user, password=srv.password, database=srv.database,
                        read_only=True) as store:
            want = queries.similar(store, "toy1", model="toy", by="concepts", encoder="test-clip")
        assert got.keys() == set(want["class_name"]) and len(got) == 2
        for name, score in zip(want["class_name"], want["similarity"], strict=True):
            assert got[name] == pytest.approx(score, abs=1e-12)
        path = run(next(p.cypher for p in SEARCH_PHRASES if p.helper == "path"), group=low)[0]["p"]
        assert path.start_node["key"] == low and "Class" in path.end_node.labels
        assert all(r["weight"] > 0 for r in path.relationships)
