"""docs/schema.md is generated from the schema code and current; its worked examples run unchanged on
both real stores (Ladybug and Neo4j) over one knowledge base and give the same, sensible rows; the
dialect difference it documents for `n.index` is handled for raw Cypher."""

from __future__ import annotations

import pandas as pd
import pytest

from neurflow_kb.store import LadybugStore
from neurflow_kb.store.schema import schema
from neurflow_kb.store.schema_doc import DOC_PATH, EXAMPLES, neo4j_rules, render
from neurflow_kb.store.schema_doc import main as schema_doc_main
from neurflow_kb_dev.synthetic import SYNTHETIC_CONCEPTS, synthetic_labels

#: The examples' parameters mapped onto the test knowledge base (models toy and mini, classes toy0..).
TEST_PARAMS = {"model": "toy", "class": "toy1", "class_a": "toy1", "class_b": "toy2", "layer": "b2",
               "group_index": 0, "concept": "Stripes"}
RECIPE = {"encoder": "test-clip", "kind": "pretrained", "model": "ViT-B-32", "pretrained": "test",
          "path": None, "digest": "sha256:0123456789abcdef"}


def _fill(store, circuits) -> None:
    store.write_circuits(circuits)
    labels, emb = synthetic_labels(circuits)
    store.record_encoders([RECIPE])
    store.write_labels(labels, emb)


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Rows as plain Python values (ints, floats, strings, None), for comparing the stores' answers."""
    return df.map(lambda v: v.item() if hasattr(v, "item") else (int(v) if type(v).__name__ == "Decimal"
                                                                   else v))


@pytest.fixture(scope="module")
def ladybug_kb(tmp_path_factory, kbh):
    """One knowledge base for the module (the examples only read it)."""
    circuits = kbh.kb_circuits()
    with LadybugStore(tmp_path_factory.mktemp("schema-doc") / "kb.lbug") as st:
        _fill(st, circuits)
        yield st, circuits


def test_committed_schema_doc_is_current(capsys) -> None:
    assert DOC_PATH.is_file(), f"{DOC_PATH} is missing: run python -m neurflow_kb.store.schema_doc"
    assert DOC_PATH.read_text() == render(), "stale: run python -m neurflow_kb.store.schema_doc"
    assert schema_doc_main(["--check"]) == 0, capsys.readouterr().err


def test_check_fails_on_a_stale_file(tmp_path, capsys) -> None:
    stale = tmp_path / "schema.md"
    stale.write_text(render().replace("| `abs_share` |", "| `abs_share_old` |"))
    assert schema_doc_main(["--check", "-o", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert schema_doc_main(["-o", str(stale)]) == 0
    assert stale.read_text() == render()


def test_doc_names_every_label_relationship_property_and_index() -> None:
    text = render()
    sch = schema()
    for label, table in sch.nodes.items():
        assert f"### {label}\n" in text
        for prop, typ in table.props:
            assert f"| `{prop}` | `{typ}` |" in text, (label, prop)
    for rtype, rel in sch.rels.items():
        assert f"| `{rtype}` | " in text
        for prop, typ in rel.props:
            assert f"| `{prop}` | `{typ}` |" in text, (rtype, prop)
    rules = neo4j_rules()
    assert len(rules) == len([s for s in (DOC_PATH.parent.parent / "cypher" / "schema.cypher").read_text()
                              .split(";") if "CREATE " in s])
    for r in rules:
        assert f"| `{r.name}` | {r.kind} | `{r.owner}` |" in text
    assert {r.kind for r in rules} >= {"unique constraint", "range index", "vector index"}
    assert len(EXAMPLES) >= 10 and text.count("```cypher") == len(EXAMPLES)


def _check_sane(name: str, df: pd.DataFrame) -> None:
    assert len(df) > 0, f"example {name} returned no rows on the test knowledge base"
    for col in ("share", "top_share", "share_passed"):
        if col in df:
            assert df[col].between(0, 1).all(), (name, col)
    if name == "drivers":                                 # a layer's shares add up to 100% at most
        assert (df.groupby("depth")["share"].sum() <= 1 + 1e-3).all()
    if name == "concept_search":
        assert len(set(df["model"])) == 2                 # both models have groups labelled 'stripes'
    if name == "encoders":
        assert df.to_dict("records")[0]["digest"] == RECIPE["digest"]
    if name == "shared_neurons":
        assert (df["shared_neurons"] > 0).all()


def test_examples_run_on_ladybug_with_sane_rows(ladybug_kb) -> None:
    st, _ = ladybug_kb
    assert "stripes" in SYNTHETIC_CONCEPTS
    for ex in EXAMPLES:
        params = {k: TEST_PARAMS[k] for k in ex.params}
        _check_sane(ex.name, st.run_query(ex.cypher, params))


@pytest.mark.slow          # both stores filled
@pytest.mark.neo4j
def test_examples_give_the_same_rows_on_both_stores(ladybug_kb, neo4j_store) -> None:
    lb, circuits = ladybug_kb
    _fill(neo4j_store, circuits)
    for ex in EXAMPLES:
        params = {k: TEST_PARAMS[k] for k in ex.params}
        a = _plain(lb.run_query(ex.cypher, params))
        b = _plain(neo4j_store.run_query(ex.cypher, params))
        _check_sane(ex.name, b)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=ex.name)


def test_raw_cypher_with_plain_index_runs_on_ladybug(ladybug_kb) -> None:
    """`g.index` (how Neo4j users write it) works on the embedded store too: backticked before parsing,
    outside strings and comments."""
    st, _ = ladybug_kb
    plain = st.run_query("MATCH (c:Class) WHERE c.index < 3 AND c.name <> 'c.index' "
                         "RETURN c.key AS key, c.index AS i ORDER BY c.index, key")
    quoted = st.run_query("MATCH (c:Class) WHERE c.`index` < 3 AND c.name <> 'c.index' "
                          "RETURN c.key AS key, c.`index` AS i ORDER BY c.`index`, key")
    assert len(plain) > 0
    pd.testing.assert_frame_equal(plain, quoted)
