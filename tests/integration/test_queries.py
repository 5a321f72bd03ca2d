"""Query helpers: the same rows on both stores over one knowledge base (two models, several classes,
concept labels), and answers that agree with the artifacts they came from."""

from __future__ import annotations

import pandas as pd
import pytest

from neurflow_kb import queries
from neurflow_kb.errors import UserError
from neurflow_kb.store import LadybugStore


@pytest.fixture(scope="module")
def ladybug_kb(tmp_path_factory, kbh):
    """One labelled knowledge base for the module (the tests only read it)."""
    circuits = kbh.kb_circuits()
    with LadybugStore(tmp_path_factory.mktemp("queries") / "kb.lbug") as st:
        st.write_circuits(circuits)
        kbh.add_labels(st, circuits)
        yield st, circuits


@pytest.mark.slow          # both stores filled
@pytest.mark.neo4j
def test_every_helper_returns_identical_rows_on_both_stores(ladybug_kb, neo4j_store, kbh):
    lb, circuits = ladybug_kb
    neo4j_store.write_circuits(circuits)
    kbh.add_labels(neo4j_store, circuits)
    assert neo4j_store.counts() == lb.counts()
    for name, call in kbh.helper_calls(circuits).items():
        a, b = call(lb), call(neo4j_store)
        kbh.frames_equal(a, b)
        rows = sum(len(v) for v in a.values()) if isinstance(a, dict) else len(a)
        assert rows > 0, f"{name} returned no rows; the parity check would be empty"


def test_drivers_rank_groups_by_their_share_of_the_class(ladybug_kb):
    st, circuits = ladybug_kb
    c = next(c for c in circuits if c.model == "mini" and c.target_class == 5)
    df = queries.drivers(st, 5, model="mini", limit=1000)
    want = c.groups.sort_values("abs_share", ascending=False)
    assert df["abs_share"].tolist() == want["abs_share"].tolist()
    assert df["influence"].tolist() == want["influence"].tolist()     # the paper's number stays beside it
    assert df["abs_share"].is_monotonic_decreasing
    assert df.groupby("layer")["abs_share"].sum().round(9).eq(1.0).all()
    assert set(df["run"]) == {c.key}
    one = queries.drivers(st, 5, model="mini", layer="s2", limit=3)
    assert len(one) == min(3, int((c.groups["layer"] == "s2").sum())) and set(one["layer"]) == {"s2"}
    # class 1 exists in both models: without --model both runs answer
    assert set(queries.drivers(st, 1, limit=1000)["model"]) == {"toy@random", "mini@v1"}


def test_circuit_threshold_and_class_edges(ladybug_kb):
    st, circuits = ladybug_kb
    c = next(c for c in circuits if c.model == "toy" and c.target_class == 2)
    full = queries.circuit(st, "toy2")
    top = c.groups[c.groups["depth"] == c.groups["depth"].max()]
    assert len(full) == len(c.group_edges) + len(top)
    assert (full["target_kind"] == "Class").sum() == len(top)
    cut = queries.circuit(st, "toy2", min_weight=0.1)
    want = (c.group_edges["weight"].abs() >= 0.1).sum() + (top["influence"].abs() >= 0.1).sum()
    assert len(cut) == int(want)
    assert (cut["weight"].abs() >= 0.1).all()


def test_shared_neurons_match_the_artifacts(ladybug_kb):
    st, circuits = ladybug_kb
    a = next(c for c in circuits if c.model == "toy" and c.target_class == 1)
    b = next(c for c in circuits if c.model == "toy" and c.target_class == 2)

    def members(c):
        n = c.nodes
        return {(lay, int(x)) for lay, x in zip(n["layer"], n["neuron"], strict=True)}

    df = queries.shared(st, 1, 2, model="toy")
    got = {(lay, int(x)) for lay, x in zip(df["layer"], df["neuron"], strict=True)}
    assert got == members(a) & members(b) and got
    pairs = queries.shared(st, 1, 2, model="toy", by="pair")
    assert pairs["shared"].sum() == len(df)
    assert queries.shared(st, 1, 1, model="toy").empty  # a run is not compared with itself


def test_path_follows_the_strongest_edge_to_the_class(ladybug_kb):
    st, circuits = ladybug_kb
    c = next(c for c in circuits if c.model == "mini" and c.target_class == 2)
    low = c.groups[c.groups["depth"] == 1].sort_values("group").iloc[0]
    start = f"{c.key}/{low['layer']}/{int(low['group'])}"
    p = queries.path(st, start)
    assert p["node"].iloc[0] == start and p["kind"].iloc[-1] == "Class"
    assert p["node"].iloc[-1] == "mini@v1/2"
    assert p["layer"].iloc[:-1].tolist() == ["s1", "s2", "s3", "head"][: len(p) - 1]
    ge = c.group_edges
    for i in range(1, len(p) - 1):
        _, lay, g = p["node"].iloc[i - 1].rsplit("/", 2)
        out = ge[(ge["lower_layer"] == lay) & (ge["lower_group"] == int(g))]
        infl = c.groups.set_index(["layer", "group"])["influence"]
        scores = [w * infl[(u_l, u_g)]
                  for w, u_l, u_g in zip(out["weight"], out["layer"], out["group"], strict=True)]
        assert p["score"].iloc[i] == pytest.approx(max(scores))


def test_concept_listing_and_labels_in_group(ladybug_kb):
    st, circuits = ladybug_kb
    df = queries.concept(st, "stripes")
    assert len(df) == 2 * len(circuits) and df["score"].is_monotonic_decreasing
    assert set(queries.concept(st, "STRIPES", model="toy")["model"]) == {"toy@random"}
    assert queries.concept(st, "no such concept").empty
    info = queries.group(st, df["group_key"].iloc[0])
    assert info.labels["concept"].tolist() == ["stripes", "fur"]


def test_listings(ladybug_kb):
    st, circuits = ladybug_kb
    m = queries.models(st)
    assert m["model"].tolist() == ["mini@v1", "toy@random"] and m["runs"].tolist() == [3, 4]
    cl = queries.classes(st, model="toy")
    assert cl["class"].tolist() == [0, 1, 2, 3] and cl["name"].tolist() == ["toy0", "toy1", "toy2", "toy3"]
    r = queries.runs(st, cls=2)
    assert sorted(r["model"]) == ["mini@v1", "toy@random"]
    assert set(queries.runs(st)["run"]) == {c.key for c in circuits}


def test_unknown_names_raise_user_errors(ladybug_kb):
    st, _ = ladybug_kb
    with pytest.raises(UserError, match="unknown model 'vgg'"):
        queries.drivers(st, 1, model="vgg")
    with pytest.raises(UserError, match="unknown class 'zebra'"):
        queries.drivers(st, "zebra")
    with pytest.raises(UserError, match="unknown class 99"):
        queries.circuit(st, 99, model="toy")
    with pytest.raises(UserError, match="unknown group"):
        queries.path(st, "nope/b1/0")
    # helpers also take a path and open it read-only
    st.close()
    try:
        assert len(queries.models(str(st.path))) == 2
        assert isinstance(queries.drivers(st.path, 1), pd.DataFrame)
    finally:
        st.open()                                   # the module's other tests read it on
