"""Writing labels, embeddings and image activations to complete runs (what labelling and image debugging
store), the named queries that read them back, and their trip through export / import."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurflow_kb import queries
from neurflow_kb.errors import UserError
from neurflow_kb.queries import run_named
from neurflow_kb.store import LadybugStore

VIEW_QUERIES = ("view_run", "view_groups", "view_members", "view_labels", "view_edges")


def top_groups(c, n=2) -> list[str]:
    g = c.groups.sort_values(["influence", "group"], ascending=[False, True]).head(n)
    return [f"{c.key}/{lay}/{int(i)}" for lay, i in zip(g["layer"], g["group"], strict=True)]


def labels_for(keys, concepts=("stripes", "fur"), encoder="ViT-B-32/openai", vocabulary="broad"):
    rows = [{"group_key": k, "concept_key": f"{vocabulary}/{t}", "concept": t, "vocabulary": vocabulary,
             "score": round(0.5 - 0.1 * r - 0.01 * i, 6), "rank": r, "method": "mean-embedding",
             "encoder": encoder} for i, k in enumerate(keys) for r, t in enumerate(concepts)]
    emb = pd.DataFrame({"group_key": keys, "embedding": [np.linspace(0, 1, 8) * (i + 1) / 3
                                                        for i in range(len(keys))], "encoder": encoder})
    return pd.DataFrame(rows), emb


def write_debug(store, c) -> int:
    keys = top_groups(c, 3)
    rels = pd.DataFrame({"dst": keys, "score": [0.9, 0.5, 0.25], "crop": [0, 3, 7]})
    return store.write_activations({"key": "img-sha-1", "uri": "/photos/cat.png", "label": 1, "predicted": 1},
                                   rels, run=c.key)


def test_labels_embeddings_and_activations(any_store, kbh, tmp_path):
    circuits = kbh.kb_circuits()
    any_store.write_circuits(circuits)
    c = circuits[1]
    keys = top_groups(c)
    labels, emb = labels_for(keys)
    assert any_store.write_labels(labels, emb) == 4
    before = any_store.counts()
    assert any_store.write_labels(labels, emb) == 4  # the same labelling again replaces, never duplicates
    assert any_store.counts() == before and before["LABELED"] == 4 and before["Concept"] == 2
    other, _ = labels_for(keys, concepts=("fur",), encoder="RN50/openai")
    any_store.write_labels(other)
    assert any_store.counts()["LABELED"] == 6
    found = queries.concept(any_store, "stripes")
    assert found["group_key"].tolist() == keys and found["score"].is_monotonic_decreasing
    got = queries.group(any_store, keys[0]).labels
    assert sorted(zip(got["encoder"], got["concept"], strict=True)) == [
        ("RN50/openai", "fur"), ("ViT-B-32/openai", "fur"), ("ViT-B-32/openai", "stripes")]
    todo = run_named(any_store, "label_groups", run=c.key, vocabulary="broad", encoder="ViT-B-32/openai",
                     method="mean-embedding")
    assert set(todo[todo["labels"] > 0]["group_key"]) == set(keys)
    assert len(todo) == len(c.groups) and all(isinstance(t, list) and t for t in todo["thumbnails"])
    vec = any_store.run_query("MATCH (g:NeuronGroup) WHERE g.key = $k RETURN g.embedding AS e, "
                              "g.embedding_encoder AS enc", {"k": keys[1]})
    assert vec["enc"][0] == "ViT-B-32/openai"
    assert vec["e"][0] == np.asarray(np.linspace(0, 1, 8) * 2 / 3, dtype=np.float32).astype(float).tolist()
    with pytest.raises(UserError, match="not in"):
        any_store.write_labels(labels_for(["nope/b1/0"])[0])

    assert write_debug(any_store, c) == 3
    assert write_debug(any_store, c) == 3  # replaced for this run
    acts = any_store.run_query("MATCH (i:Image)-[a:ACTIVATES]->(g:NeuronGroup) RETURN i.uri AS uri, "
                               "g.key AS g, a.score AS s ORDER BY s DESC")
    assert acts["s"].tolist() == [0.9, 0.5, 0.25] and set(acts["uri"]) == {"/photos/cat.png"}
    with pytest.raises(UserError, match="not a group of run"):
        any_store.write_activations({"key": "x", "uri": "u", "label": 0, "predicted": 0},
                                    pd.DataFrame({"dst": keys[:1], "score": [1.0], "crop": [0]}),
                                    run=circuits[0].key)

    view = {q: run_named(any_store, q, run=c.key) for q in VIEW_QUERIES}
    assert len(view["view_groups"]) == len(c.groups) and len(view["view_members"]) == len(c.nodes)
    assert len(view["view_edges"]) == len(c.group_edges) + int((c.groups["depth"] == c.groups["depth"].max())
                                                               .sum())
    assert view["view_run"]["class"][0] == c.target_class and len(view["view_labels"]) == 6
    layers = run_named(any_store, "view_layers", model="toy@random")
    assert layers["name"].tolist() == ["conv", "b1", "b2", "logits"]

    # everything travels with its run
    with LadybugStore(tmp_path / "copy.lbug") as dst:
        dst.import_(any_store.export())
        assert dst.counts() == any_store.counts()
        kbh.frames_equal(queries.concept(dst, "fur"), queries.concept(any_store, "fur"))


@pytest.mark.slow          # both stores filled
@pytest.mark.neo4j
def test_label_and_view_queries_match_across_stores(tmp_path, neo4j_store, kbh):
    circuits = kbh.kb_circuits()
    with LadybugStore(tmp_path / "kb.lbug") as lb:
        for st in (lb, neo4j_store):
            st.write_circuits(circuits)
            st.write_labels(*labels_for(top_groups(circuits[4], 3)))
            write_debug(st, circuits[4])
        for q in (*VIEW_QUERIES, "label_groups"):
            params = {"run": circuits[4].key}
            if q == "label_groups":
                params |= {"vocabulary": "broad", "encoder": "ViT-B-32/openai", "method": "mean-embedding"}
            kbh.frames_equal(run_named(lb, q, **params), run_named(neo4j_store, q, **params))
        kbh.frames_equal(run_named(lb, "view_layers", model="mini@v1"),
                         run_named(neo4j_store, "view_layers", model="mini@v1"))
        for call in kbh.helper_calls(circuits).values():
            kbh.frames_equal(call(lb), call(neo4j_store))
