"""Both stores on real backends: schema, idempotent writes, the run status protocol, export/import."""

from __future__ import annotations

import pandas as pd
import pytest

from neurflow_kb import queries
from neurflow_kb.errors import StoreError, UserError
from neurflow_kb.store import LadybugStore, open_store
from neurflow_kb.store.schema import schema


def test_ladybug_tables_match_schema(lbug_path):
    with LadybugStore(lbug_path) as st:
        st.init_schema()
        st.init_schema()  # idempotent
        sch = schema()
        for label, table in sch.nodes.items():
            info = st.run_query(f"CALL table_info('{label}') RETURN *")
            assert info["name"].tolist() == table.columns
        for rtype, rel in sch.rels.items():
            info = st.run_query(f"CALL table_info('{rtype}') RETURN *")
            assert info["name"].tolist() == rel.columns
        assert set(sch.nodes) == {"Model", "Layer", "Neuron", "Class", "Run", "NeuronGroup", "Concept",
                                  "Image", "Encoder"}
        assert set(sch.rels["DRIVES"].pairs) == {("NeuronGroup", "NeuronGroup"), ("NeuronGroup", "Class")}


def test_ladybug_influences_walk_both_ways_but_not_undirected(lbug_path, kbh):
    """INFLUENCES is stored forward only in Ladybug (faster bulk loads): backward walks still find every
    relationship; an undirected pattern is a one-line user error, not a crash."""
    with LadybugStore(lbug_path) as st:
        st.write_circuits(kbh.kb_circuits())
        fwd = st.run_query("MATCH (a:Neuron)-[e:INFLUENCES]->(b:Neuron) RETURN a.key AS src, b.key AS dst, "
                           "e.run AS run, e.subconcept AS s ORDER BY src, dst, run, s")
        bwd = st.run_query("MATCH (b:Neuron)<-[e:INFLUENCES]-(a:Neuron) RETURN a.key AS src, b.key AS dst, "
                           "e.run AS run, e.subconcept AS s ORDER BY src, dst, run, s")
        assert len(fwd) > 100
        pd.testing.assert_frame_equal(fwd, bwd)
        with pytest.raises(UserError, match="Undirected"):
            st.run_query("MATCH (a:Neuron)-[e:INFLUENCES]-(b:Neuron) RETURN count(e)")


@pytest.mark.neo4j
def test_neo4j_constraints_cover_every_key(neo4j_store):
    neo4j_store.init_schema()
    neo4j_store._schema_done = False
    neo4j_store.init_schema()  # idempotent: IF NOT EXISTS
    df = neo4j_store.run_query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type "
                               "RETURN labelsOrTypes[0] AS label, properties[0] AS prop, type")
    uq = df[df["type"] == "UNIQUENESS"]
    unique = set(zip(uq["label"], uq["prop"], strict=True))
    assert unique == {(label, "key") for label in schema().nodes}
    idx = neo4j_store.run_query("SHOW INDEXES YIELD labelsOrTypes, properties "
                                "RETURN labelsOrTypes[0] AS label, properties AS props")
    have = {(r.label, tuple(r.props)) for r in idx.itertuples() if r.label and r.props}
    for want in [("Run", ("status",)), ("Class", ("index",)), ("NeuronGroup", ("layer",)),
                 ("INFLUENCES", ("run",))]:
        assert want in have


def test_reingest_is_idempotent(any_store, kbh):
    circuits = kbh.kb_circuits()
    first = any_store.write_circuits(circuits)
    assert [r.status for r in first] == ["written"] * len(circuits)
    counts = any_store.counts()
    want = kbh.expected_counts(circuits)
    assert {k: v for k, v in counts.items() if v} == {k: v for k, v in want.items() if v}
    again = any_store.write_circuits(circuits)
    assert [r.status for r in again] == ["skipped"] * len(circuits)
    assert any_store.counts() == counts
    replaced = any_store.write_circuits(circuits[:2], replace=True)
    assert [r.status for r in replaced] == ["replaced", "replaced"]
    assert any_store.counts() == counts
    assert all(any_store.has_run(c.key) for c in circuits)


def test_leftover_partial_run_is_invisible_then_rewritten(any_store, kbh):
    """A run left with status 'writing' (what a crash leaves) is hidden from every query and is deleted
    and rewritten by the next write of the same key."""
    c = kbh.toy_circuit(4)
    any_store.write_circuits([kbh.toy_circuit(0)])
    any_store.write_circuit(c)
    clean = any_store.counts()
    # the state a writer killed before its final status flip leaves behind
    any_store.run_query("MATCH (r:Run) WHERE r.key = $k SET r.status = 'writing'", {"k": c.key}, write=True)
    any_store.run_query("MATCH (g:NeuronGroup)-[d:DRIVES]->(:Class) WHERE g.run = $k DELETE d",
                        {"k": c.key}, write=True)
    assert any_store.counts()["DRIVES"] < clean["DRIVES"]
    assert any_store.run_status(c.key) == "writing"
    assert c.key not in set(queries.runs(any_store)["run"])
    assert queries.drivers(any_store, 4, model="toy").empty
    with pytest.raises(UserError, match="unknown group"):
        queries.group(any_store, f"{c.key}/b1/0")
    res = any_store.write_circuit(c)
    assert res.status == "recovered"
    assert any_store.counts() == clean
    assert not queries.drivers(any_store, 4, model="toy").empty


def test_written_rows_match_the_artifact(any_store, kbh):
    c = kbh.mini_circuit(5)
    any_store.write_circuit(c)
    g = c.groups.sort_values(["influence"], ascending=False).iloc[0]
    key = f"{c.key}/{g['layer']}/{int(g['group'])}"
    info = queries.group(any_store, key)
    s = info.summary.iloc[0]
    assert s["influence"] == g["influence"] and s["size"] == g["size"] and s["layer"] == g["layer"]
    members = c.group_members(int(g["depth"]), int(g["group"]))
    assert sorted(zip(info.members["neuron"], info.members["subconcept"], strict=True)) == \
        sorted(zip(members["neuron"], members["subconcept"], strict=True))
    inf = any_store.run_query("MATCH (a:Neuron)-[e:INFLUENCES]->(b:Neuron) WHERE e.run = $k "
                              "RETURN a.`index` AS lower, b.`index` AS upper, e.subconcept AS s, "
                              "e.weight AS w "
                              "ORDER BY lower, upper, s, w", {"k": c.key})
    want = c.edges.sort_values(["lower_neuron", "neuron", "subconcept", "weight"])
    assert inf["w"].tolist() == want["weight"].tolist()
    assert inf["lower"].tolist() == want["lower_neuron"].tolist()
    top = any_store.run_query("MATCH (g:NeuronGroup)-[d:DRIVES]->(c:Class) WHERE g.run = $k "
                              "RETURN c.`index` AS cls, sum(d.weight) AS share", {"k": c.key})
    assert top["cls"].tolist() == [5] and abs(top["share"].iloc[0] - 1.0) < 1e-9


def test_export_import_round_trip(any_store, tmp_path, kbh):
    circuits = kbh.kb_circuits()
    any_store.write_circuits(circuits)
    with LadybugStore(tmp_path / "copy.lbug") as dst:
        res = dst.import_(any_store.export())
        assert {r.status for r in res} == {"written"}
        assert dst.counts() == any_store.counts()
        assert {r.status for r in dst.import_(any_store.export())} == {"skipped"}
        assert dst.counts() == any_store.counts()
        for cls in (1, 2):
            pd.testing.assert_frame_equal(queries.drivers(dst, cls), queries.drivers(any_store, cls))


def test_read_only_store_refuses_writes_and_needs_the_file(lbug_path, kbh):
    with pytest.raises(StoreError, match="no knowledge base at"):
        open_store(lbug_path, read_only=True)
    with LadybugStore(lbug_path) as st:
        st.write_circuit(kbh.toy_circuit(0))
    with open_store(lbug_path, read_only=True) as ro:
        with pytest.raises(UserError, match="read-only"):
            ro.write_circuit(kbh.toy_circuit(1))
        with pytest.raises(UserError, match="--write"):
            ro.run_query("MATCH (r:Run) DETACH DELETE r")
        assert len(ro.run_keys()) == 1


@pytest.mark.slow          # 200 writes
def test_ladybug_many_single_class_writes_on_one_handle_stay_within_its_buffer_pool(tmp_path):
    """Ladybug keeps what each statement prepared on a connection (with its bound tables) in the buffer
    pool until the connection closes; with one connection a 256 MB pool was full after 4 single-class
    ResNet-50-sized writes (2 GiB after about 70: an ingest of many classes failed). The store renews its
    connection between batches, so 16 writes on one open handle fit."""
    from neurflow_kb_dev.synthetic import synthetic_circuit

    with LadybugStore(tmp_path / "kb.lbug", buffer_pool_size=256 << 20) as st:
        for cls in range(16):
            st.write_circuits([synthetic_circuit(cls)])
        runs = st.run_query("MATCH (r:Run) WHERE r.status = 'complete' RETURN count(r) AS n")
    assert runs["n"].iloc[0] == 16
