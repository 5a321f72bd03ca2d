"""Comparing circuits in a knowledge base: class similarity within a model (agrees with the artifacts),
RESEMBLES between models (agrees with a direct cosine computation, written once whatever the order),
`query compare`, and identical rows on both stores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurflow_kb import queries
from neurflow_kb.artifact import Circuit
from neurflow_kb.compare import circuit_similarity, concept_similarity, concept_use
from neurflow_kb.errors import UserError
from neurflow_kb.store import LadybugStore
from neurflow_kb.store.links import ResemblanceConfig, link_runs, resemblances
from neurflow_kb_dev.synthetic import synthetic_circuit, synthetic_labels

TWIN_CHAIN = (("stem", 24), ("s1", 40), ("s2", 40), ("s3", 64), ("head", 10))
TOY_NAMES = [f"toy{j}" for j in range(10)]
ENCODER = "test-clip"


def twin_circuit(cls: int):
    """Another architecture (`twin@v2`, four transitions) with the toy model's class names."""
    return synthetic_circuit(cls, chain=TWIN_CHAIN, nodes_per_layer=(3, 12, 24, 30), tau=8, model="twin",
                             weights="v2", class_names=TOY_NAMES, seed=5)


def labels_for(circuits) -> tuple[pd.DataFrame, pd.DataFrame]:
    return synthetic_labels(circuits, encoder=ENCODER)


@pytest.fixture
def two_models(kbh):
    return [kbh.toy_circuit(c) for c in (0, 1, 2, 3)] + [twin_circuit(c) for c in (1, 2)]


def fill(store, circuits) -> None:
    store.write_circuits(circuits)
    lab, emb = labels_for(circuits)
    store.write_labels(lab, emb)


def with_labels(circuits) -> list[Circuit]:
    """The circuits with the labels `fill` writes to a store, in their artifact `labels` table."""
    lab, _ = labels_for(circuits)
    out = []
    for c in circuits:
        mine = lab[lab["group_key"].str.startswith(c.key + "/")]
        parts = mine["group_key"].str.split("/", expand=True)
        table = pd.DataFrame({"layer": parts[1], "group": parts[2].astype("int64"),
                              **{k: mine[k] for k in ("concept", "vocabulary", "score", "rank", "method",
                                                      "encoder")}})
        depth = dict(zip(c.groups["layer"], c.groups["depth"], strict=False))
        table.insert(0, "depth", table["layer"].map(depth).astype("int64"))
        out.append(Circuit(manifest=c.manifest, tables={**c.tables, "labels": table}))
    return out


def resembles_rows(store) -> pd.DataFrame:
    df = store.run_query("MATCH (a:NeuronGroup)-[x:RESEMBLES]->(b:NeuronGroup) RETURN a.key AS src, "
                         "b.key AS dst, x.cosine AS cosine, x.encoder AS encoder, x.rank AS rank")
    return df.sort_values(["src", "dst"]).reset_index(drop=True)


def expected_resembles(circuits) -> pd.DataFrame:
    """What RESEMBLES must hold: the cosine rule applied directly to the embeddings (float32 as stored)
    of the run pairs of different models explaining the same class."""
    _, emb = labels_for(circuits)
    vec = {k: np.asarray(v, dtype=np.float32).astype(float)
           for k, v in zip(emb["group_key"], emb["embedding"], strict=True)}
    frames = []
    for a in circuits:
        for b in circuits:
            if a.model < b.model and a.target_class == b.target_class:
                ka = sorted(k for k in vec if k.startswith(a.key + "/"))
                kb = sorted(k for k in vec if k.startswith(b.key + "/"))
                frames.append(resemblances(ka, np.array([vec[k] for k in ka]), kb,
                                           np.array([vec[k] for k in kb]), ENCODER))
    return pd.concat(frames, ignore_index=True).sort_values(["src", "dst"]).reset_index(drop=True)


def test_similar_and_shared_agree_with_the_artifacts(tmp_path, kbh):
    circuits = [kbh.toy_circuit(c) for c in (0, 1, 2, 3)]
    with LadybugStore(tmp_path / "kb.lbug") as st:
        st.write_circuits(circuits)
        df = queries.similar(st, "toy1", model="toy")
        assert sorted(df["class"]) == [0, 2, 3]                      # every other class, not itself
        assert df["similarity"].is_monotonic_decreasing
        by = {c.target_class: c for c in circuits}
        for row in df.to_dict("records"):
            score, parts = circuit_similarity(by[1], by[row["class"]])
            assert row["similarity"] == score                        # the same numbers, exactly
            assert [row[lay] for lay in parts["layer"]] == parts["overlap"].tolist()
            assert list(parts["layer"]) == ["b1", "b2"]              # layers below the class layer
        assert len(queries.similar(st, 1, model="toy", top=1)) == 1
        layers = queries.shared(st, 1, 2, model="toy", by="layer")
        score, parts = circuit_similarity(by[1], by[2])
        assert layers["layer"].tolist() == ["b1", "b2", "(mean)"]
        assert layers["overlap"].tolist() == [*parts["overlap"], score]
        with pytest.raises(UserError, match="top must be >= 1"):
            queries.similar(st, 1, top=0)


def test_similar_and_shared_by_concepts_agree_with_the_artifacts(tmp_path, kbh):
    circuits = [kbh.toy_circuit(c) for c in (0, 1, 2, 3)]
    with LadybugStore(tmp_path / "kb.lbug") as st:
        st.write_circuits(circuits)
        with pytest.raises(UserError, match="labelled with the same CLIP encoder"):
            queries.similar(st, "toy1", model="toy", by="concepts")
        lab, emb = labels_for(circuits[:3])                      # toy3 stays unlabelled
        st.write_labels(lab, emb)
        df = queries.similar(st, "toy1", model="toy", by="concepts")
        assert sorted(df["class"]) == [0, 2]                     # the other labelled classes
        assert df["similarity"].is_monotonic_decreasing
        by = {c.target_class: c for c in with_labels(circuits[:3])}
        for row in df.to_dict("records"):
            score, parts = concept_similarity(by[1], by[row["class"]])
            assert row["similarity"] == score                    # the same numbers, exactly
            assert [row[lay] for lay in parts["layer"]] == parts["overlap"].tolist()
        assert 0 < df["similarity"].max() <= 1.0
        layers = queries.shared(st, 1, 2, model="toy", by="concepts")
        score, parts = concept_similarity(by[1], by[2])
        assert layers["layer"].tolist() == ["b1", "b2", "(mean)"]
        assert layers["overlap"].tolist() == [*parts["overlap"], score]
        assert list(layers.columns[-3:]) == ["concepts_a", "concepts_b", "shared"]
        with pytest.raises(UserError, match="not all labelled by 'other'"):
            queries.similar(st, 1, model="toy", by="concepts", encoder="other")
        with pytest.raises(UserError, match="by must be 'neurons' or 'concepts'"):
            queries.similar(st, 1, model="toy", by="labels")
        with pytest.raises(UserError, match="ranks must be >= 1"):
            queries.similarity(st, 1, 2, by="concepts", ranks=0)
        with pytest.raises(UserError, match="labelled with the same CLIP encoder"):
            queries.similarity(st, 1, 3, by="concepts")


def test_similarity_of_a_circuit_with_itself_is_one_and_overlap_is_bounded(kbh):
    a, b = kbh.toy_circuit(1), kbh.toy_circuit(2)
    same = a.__class__(manifest=dict(a.manifest, data_fingerprint="copy"), tables=a.tables)
    score, parts = circuit_similarity(a, same)
    assert score == pytest.approx(1.0, abs=1e-12)
    s_ab, p_ab = circuit_similarity(a, b)
    s_ba, _ = circuit_similarity(b, a)
    assert 0.0 <= s_ab <= 1.0 and s_ab == pytest.approx(s_ba, abs=1e-12)
    assert (p_ab["overlap"] <= 1.0 + 1e-12).all()


@pytest.mark.slow          # four stores filled
def test_resembles_follow_the_cosine_rule_and_are_written_once(tmp_path, two_models):
    want = expected_resembles(two_models)
    assert len(want) > 0
    with LadybugStore(tmp_path / "a.lbug") as st:
        fill(st, two_models)
        got = resembles_rows(st)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
        # writing again, relabelling and re-linking change nothing
        st.write_circuits(two_models)
        lab, emb = labels_for(two_models)
        st.write_labels(lab, emb)
        link_runs(st, [c.key for c in two_models])
        pd.testing.assert_frame_equal(resembles_rows(st), want, check_dtype=False)
        # a stricter rule rewrites only what it must
        n = link_runs(st, [two_models[1].key], ResemblanceConfig(top=1, min_cosine=0.9))
        assert 0 < n < len(want) and len(resembles_rows(st)) < len(want)
    with LadybugStore(tmp_path / "b.lbug") as st:               # the other order: labels first per model
        for part in (two_models[4:], two_models[:4]):
            fill(st, part)
        pd.testing.assert_frame_equal(resembles_rows(st), want, check_dtype=False)


def test_compare_lists_concepts_of_both_models_with_their_shares(tmp_path, two_models):
    toy1, twin1 = two_models[1], two_models[4]
    with LadybugStore(tmp_path / "kb.lbug") as st:
        fill(st, two_models)
        out = queries.compare(st, "toy1", ["toy", "twin"])
    assert out["runs"]["run"].tolist() == [toy1.key, twin1.key]
    concepts = out["concepts"]

    def use(c):
        lab, _ = labels_for([c])
        keys = [f"{c.key}/{r.layer}/{r.group}" for r in c.groups.itertuples(index=False)]
        g = c.groups.assign(group_key=keys, rel_depth=c.groups["depth"] / (len(c.layers) - 1))
        rows = lab.merge(g[["group_key", "depth", "rel_depth", "abs_share"]], on="group_key")
        return concept_use(rows).set_index("concept")

    ua, ub = use(toy1), use(twin1)
    assert abs(ua["share"].sum() - 1.0) < 1e-9 and abs(ub["share"].sum() - 1.0) < 1e-9
    for r in concepts.to_dict("records"):
        assert r["share_a"] == pytest.approx(ua["share"].get(r["concept"], 0.0))
        assert r["share_b"] == pytest.approx(ub["share"].get(r["concept"], 0.0))
        want = ("both" if r["concept"] in ua.index and r["concept"] in ub.index else
                "toy only" if r["concept"] in ua.index else "twin only")
        assert r["used_by"] == want
        if r["used_by"] == "both":
            assert 0 < r["depth_a"] <= 1 and 0 < r["depth_b"] <= 1
    groups = out["groups"]
    matched = groups[groups["used_by"] == "both"]
    assert len(matched) and (matched["cosine"] >= 0.5).all()
    assert set(groups["group_a"].dropna()) == {f"{toy1.key}/{r.layer}/{r.group}"
                                               for r in toy1.groups.itertuples(index=False)}
    # every linked group of A is listed with its closest linked group of B
    rel = expected_resembles(two_models)
    pairs = pd.concat([rel[rel["src"].str.startswith(toy1.key) & rel["dst"].str.startswith(twin1.key)]
                       .rename(columns={"src": "a", "dst": "b"}),
                       rel[rel["dst"].str.startswith(toy1.key) & rel["src"].str.startswith(twin1.key)]
                       .rename(columns={"dst": "a", "src": "b"})])
    for ga, part in pairs.groupby("a"):
        best = part.sort_values(["cosine", "b"], ascending=[False, True]).iloc[0]
        rows = matched[matched["group_a"] == ga]
        assert ((rows["group_b"] == best["b"]) & (rows["cosine"] == best["cosine"])).any()
    unmatched = groups[groups["used_by"] == "toy only"]["group_a"]
    assert not set(unmatched) & set(pairs["a"])


def test_compare_refuses_what_it_cannot_compare(tmp_path, two_models, kbh):
    with LadybugStore(tmp_path / "kb.lbug") as st:
        st.write_circuits(two_models)
        with pytest.raises(UserError, match="labelled with the same CLIP encoder"):
            queries.compare(st, 1, ["toy", "twin"])
        with pytest.raises(UserError, match="needs two models"):
            queries.compare(st, 1, ["toy"])
        with pytest.raises(UserError, match="no complete circuit"):
            queries.compare(st, 0, ["toy", "twin"])
        with pytest.raises(UserError, match="unknown model"):
            queries.compare(st, 1, ["toy", "vgg"])


@pytest.mark.slow          # both stores filled
@pytest.mark.neo4j
def test_new_queries_return_identical_rows_on_both_stores(tmp_path, two_models, neo4j_store, kbh):
    calls = {
        "similar": lambda s: queries.similar(s, 1, model="toy"),
        "similar_name": lambda s: queries.similar(s, "toy2", model="twin"),
        "similarity": lambda s: queries.similarity(s, 1, 2, model="toy"),
        "shared_layer": lambda s: queries.shared(s, 2, 3, model="toy", by="layer"),
        "similar_concepts": lambda s: queries.similar(s, 1, model="toy", by="concepts"),
        "similar_concepts_ranks": lambda s: queries.similar(s, "toy2", model="twin", by="concepts", ranks=1),
        "shared_concepts": lambda s: queries.shared(s, 2, 3, model="toy", by="concepts"),
        "compare": lambda s: queries.compare(s, "toy1", ["toy", "twin"]),
        "compare_index": lambda s: queries.compare(s, 2, ["twin", "toy"], min_share=0.05),
        "circuit_share": lambda s: queries.circuit(s, 2, model="twin", min_share=0.05),
    }
    with LadybugStore(tmp_path / "kb.lbug") as lb:
        fill(lb, two_models)
        fill(neo4j_store, two_models)
        assert neo4j_store.counts() == lb.counts() and lb.counts()["RESEMBLES"] > 0
        pd.testing.assert_frame_equal(resembles_rows(lb), resembles_rows(neo4j_store), check_exact=True)
        for name, call in calls.items():
            a, b = call(lb), call(neo4j_store)
            kbh.frames_equal(a, b)
            rows = sum(len(v) for v in a.values()) if isinstance(a, dict) else len(a)
            assert rows > 0, f"{name} returned no rows"


@pytest.mark.slow          # the API tests above check the same numbers in the fast set
def test_cli_similar_shared_and_compare(tmp_path, two_models):
    import json

    from neurflow_kb_dev.cli_runs import invoke as invoke_cli

    kb = str(tmp_path / "kb.lbug")
    with LadybugStore(kb) as st:
        fill(st, two_models)

    def invoke(*args):
        return invoke_cli([*args, "--store", kb])

    r = invoke("query", "similar", "toy1", "--model", "toy", "--top", "2")
    assert r.exit_code == 0, r.output
    header, *rows = r.stdout.splitlines()
    assert header.split()[-3:] == ["similarity", "b1", "b2"] and len(rows) == 2
    want = queries.similar(kb, "toy1", model="toy", top=2)
    for line, score in zip(rows, want["similarity"], strict=True):
        assert f"{100 * score:.1f}%" in line.split()
    js = json.loads(invoke("query", "similar", "toy1", "--model", "toy", "--json").stdout)
    full = queries.similar(kb, "toy1", model="toy")
    assert [row["similarity"] for row in js] == full["similarity"].tolist()

    r = invoke("query", "shared", "toy1", "toy2", "--model", "toy")
    parts = queries.similarity(kb, "toy1", "toy2", model="toy")
    mean = parts.loc[parts["layer"] == "(mean)", "overlap"].iloc[0]
    assert r.exit_code == 0
    assert r.stdout.startswith(f"circuit similarity toy1 ~ toy2 (toy@random): {100 * mean:.1f}%")
    r = invoke("query", "shared", "toy1", "toy2", "--model", "toy", "--by", "layer", "--csv")
    assert r.stdout.splitlines()[0] == "model,run_a,run_b,layer,depth,overlap,neurons_a,neurons_b,shared"

    r = invoke("query", "similar", "toy1", "--model", "toy", "--by", "concepts", "--ranks", "1", "--json")
    assert r.exit_code == 0, r.output
    want = queries.similar(kb, "toy1", model="toy", by="concepts", ranks=1)
    assert [row["similarity"] for row in json.loads(r.stdout)] == want["similarity"].tolist()
    r = invoke("query", "shared", "toy1", "toy2", "--model", "toy", "--by", "concepts", "--encoder", ENCODER)
    parts = queries.similarity(kb, "toy1", "toy2", model="toy", by="concepts")
    mean = parts.loc[parts["layer"] == "(mean)", "overlap"].iloc[0]
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"circuit similarity toy1 ~ toy2 (toy@random): {100 * mean:.1f}% of the "
                               "class's share rests on the same concepts")
    bad = invoke("query", "similar", "toy1", "--by", "concepts", "--encoder", "nope")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: the runs are not all labelled by 'nope'")

    r = invoke("query", "compare", "toy1", "--models", "toy,twin")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("A = toy@random") and "concepts:" in r.stdout and "groups:" in r.stdout
    js = json.loads(invoke("query", "compare", "toy1", "--models", "toy,twin", "--json").stdout)
    assert set(js) == {"runs", "concepts", "groups"} and js["runs"][1]["model"] == "twin@v2"
    bad = invoke("query", "compare", "toy1", "--models", "toy")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: compare needs two models")
    bad = invoke("query", "similar", "zebra")
    assert bad.exit_code == 2 and "unknown class 'zebra'" in bad.stderr


@pytest.mark.slow          # two stores filled, two pushes
def test_push_recomputes_resembles_at_the_destination(tmp_path, two_models):
    with LadybugStore(tmp_path / "src.lbug") as src, LadybugStore(tmp_path / "dst.lbug") as dst:
        fill(src, two_models)
        dst.import_(src.export())
        assert dst.counts() == src.counts() and src.counts()["RESEMBLES"] > 0
        pd.testing.assert_frame_equal(resembles_rows(dst), resembles_rows(src), check_exact=True)
        again = dst.import_(src.export())                     # pushing twice changes nothing
        assert {r.status for r in again} == {"skipped"} and dst.counts() == src.counts()


def test_resembles_need_the_same_encoder_and_class(tmp_path, two_models):
    with LadybugStore(tmp_path / "kb.lbug") as st:
        st.write_circuits(two_models)
        st.write_labels(*synthetic_labels(two_models[:4], encoder="clip-a"))
        st.write_labels(*synthetic_labels(two_models[4:], encoder="clip-b"))
        assert st.counts()["RESEMBLES"] == 0                    # embeddings of two encoders never meet
        st.write_labels(*synthetic_labels(two_models[4:], encoder="clip-a"))
        rows = resembles_rows(st)
    runs = {c.key: (c.model, c.target_class) for c in two_models}
    pairs = {(runs[s.split("/")[0]], runs[d.split("/")[0]])
             for s, d in zip(rows["src"], rows["dst"], strict=True)}
    assert pairs == {(("toy", 1), ("twin", 1)), (("twin", 1), ("toy", 1)), (("toy", 2), ("twin", 2)),
                     (("twin", 2), ("toy", 2))}                 # other models only, same class only
    assert set(rows["encoder"]) == {"clip-a"} and (rows["cosine"] >= 0.5).all() and rows["rank"].max() <= 3
