"""Bad input at the store's boundary gives one line and writes nothing: non-finite weights, a concept
longer than an index key, integers beyond 64 bits, malformed Neo4j URIs; `--json` stays valid JSON;
`push` with NEO4J_URI set copies the embedded file; an artifact with a complete run's key but other
tables is refused until --replace, and files of earlier versions (no digest column) still open."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from neurflow_kb import queries
from neurflow_kb.errors import UserError
from neurflow_kb.store import LadybugStore, Neo4jStore
from neurflow_kb_dev.cli_runs import invoke, one_line_error

EMPTY = ("Concept", "Image", "LABELED", "ACTIVATES")


def _strict_json(text: str):
    """json.loads that refuses NaN / Infinity (Python's own parser accepts them; JSON does not)."""
    def bad(c: str):
        raise ValueError(f"{c} is not JSON")
    return json.loads(text, parse_constant=bad)


@pytest.fixture
def cli(store_kind, tmp_path, request, kbh):
    """(kb path, CLI store arguments, environment) of an empty store of each kind."""
    kb = tmp_path / "kb.lbug"
    if store_kind == "neo4j":
        request.getfixturevalue("neo4j_clean")
    args, env = kbh.store_args(store_kind, request, kb)
    return kb, args, env


def _load_one(kbh, circuit, folder, args, env) -> None:
    circuit.save(folder)
    out = invoke(["load", str(folder), *args, "--quiet"], env=env)
    assert out.exit_code == 0, out.stderr


def _reader(kind, path, request):
    if kind == "ladybug":
        return LadybugStore(path, read_only=True)
    s = request.getfixturevalue("neo4j_server")
    return Neo4jStore(s.uri, user=s.user, password=s.password, database=s.database, read_only=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_before_anything_is_written(any_store, kbh, value):
    any_store.write_circuit(kbh.toy_circuit(0))
    before = any_store.counts()
    bad = kbh.toy_circuit(1)
    edges = bad.tables["edges"].copy()
    edges.loc[edges.index[:3], "weight"] = value
    bad.tables["edges"] = edges
    with pytest.raises(UserError, match="INFLUENCES.weight") as err:
        any_store.write_circuit(bad)
    assert "\n" not in str(err.value) and "nothing was written" in str(err.value)
    assert any_store.counts() == before and any_store.run_keys("writing") == []
    groups = kbh.toy_circuit(2)
    groups.tables["groups"] = groups.tables["groups"].assign(influence=np.inf)
    with pytest.raises(UserError, match="NeuronGroup.influence"):
        any_store.write_circuit(groups)
    # a NaN silhouette (a group of one) is no error: it is stored as null
    ok = kbh.toy_circuit(3)
    ok.tables["groups"] = ok.tables["groups"].assign(silhouette=float("nan"))
    assert any_store.write_circuit(ok).status == "written"
    assert any_store.run_query("MATCH (g:NeuronGroup) WHERE g.run = $k AND g.silhouette IS NULL "
                               "RETURN count(g) AS n", {"k": ok.key})["n"][0] == len(ok.groups)


def test_json_output_stays_json_with_non_finite_numbers(cli, tmp_path, kbh):
    """Query results with NaN or infinities (computed in a query, or a NaN silhouette) print as strict
    JSON with null: `json.dumps` would print NaN / Infinity, which JSON parsers refuse. (Artifacts with
    non-finite weights no longer get this far: `Circuit.save`/`load` refuse them, and the store refuses
    such circuits from Python, see above.)"""
    _, args, env = cli
    _load_one(kbh, kbh.toy_circuit(2), tmp_path / "good", args, env)
    for q in ("UNWIND [1e308 * 10, -1e308 * 10, 1.5] AS x RETURN x",
              "MATCH (g:NeuronGroup) RETURN g.key AS k, g.influence * 1e308 * 1e308 AS big LIMIT 3"):
        out = invoke(["cypher", q, *args, "--json"], env=env)
        assert out.exit_code == 0, out.stderr
        rows = _strict_json(out.stdout)
        values = [v for r in rows for v in r.values() if not isinstance(v, str)]
        assert values and all(v is None or math.isfinite(v) for v in values)
        assert None in values
    js = invoke(["query", "drivers", "toy2", *args, "--json"], env=env)
    assert js.exit_code == 0 and _strict_json(js.stdout)


def _labelled(kbh, cls: int, concept: str):
    c = kbh.toy_circuit(cls)
    g = c.groups.iloc[0]
    import pandas as pd

    c.tables["labels"] = pd.DataFrame({
        "depth": [int(g["depth"])], "layer": [g["layer"]], "group": [int(g["group"])], "concept": [concept],
        "vocabulary": ["test"], "score": [0.3], "rank": [0], "method": ["clip"], "encoder": ["ViT-B-32"]})
    return c


def test_a_concept_too_long_for_an_index_is_refused_whole(any_store, kbh):
    """A concept over Neo4j's index key size used to fail half-way and leave a 'writing' run: now it
    is refused in one line before anything is written, on both stores alike."""
    any_store.write_circuit(kbh.toy_circuit(0))
    before = any_store.counts()
    long = "stripes " * 1200                                  # about 9.6 KB
    with pytest.raises(UserError, match="bytes long") as err:
        any_store.write_circuit(_labelled(kbh, 1, long))
    assert "\n" not in str(err.value)
    assert any_store.counts() == before and any_store.run_keys("writing") == []
    # the same through the labelling path (labels added to a complete run)
    any_store.write_circuit(kbh.toy_circuit(2))
    with pytest.raises(UserError, match="bytes long"):
        any_store.write_circuit(_labelled(kbh, 2, long))
    assert any_store.run_query("MATCH ()-[l:LABELED]->() RETURN count(l) AS n")["n"][0] == 0
    assert any_store.write_circuit(_labelled(kbh, 3, "stripes")).status == "written"


def test_huge_integers_are_one_line_errors(store_kind, cli, tmp_path, request, kbh):
    kb, args, env = cli
    _load_one(kbh, kbh.toy_circuit(1), tmp_path / "a", args, env)
    huge = "9" * 30
    for cmd in (["query", "drivers", huge], ["query", "shared", "1", huge], ["query", "circuit", huge],
                ["query", "runs", "--class", huge], ["cypher", "RETURN $x AS x", "--param", f"x={huge}"],
                ["cypher", "RETURN $x AS x", "--param", f"x=[1, {huge}]"]):
        out = invoke([*cmd, *args], env=env)
        one_line_error(out)
        assert "Traceback" not in out.stderr
    for cmd in (["query", "drivers", "1", "--limit", huge], ["query", "drivers", "1", "--limit", "-1"]):
        out = invoke([*cmd, *args], env=env)
        assert out.exit_code == 2 and "Error: Invalid value for '--limit'" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    with _reader(store_kind, kb, request) as st:
        with pytest.raises(UserError, match="64-bit"):
            st.run_query("RETURN $x AS x", {"x": 10**30})
        assert len(queries.drivers(st, 1, limit=2**31 - 1)) > 0


@pytest.mark.neo4j
def test_malformed_neo4j_uris_are_one_line_errors(neo4j_server, kbh, tmp_path):
    secret = "s3cret-pass"
    bad = ["bolt://", "bolt://:7687", "bolt://host:notaport", "bolt://host:99999", "bolt://[::1",
           "neo4j://host/some/path", "bolt://host:0", "bolt://ho st:7687", "http://localhost:7474",
           f"bolt://neo4j:{secret}@:7687", f"bolt://neo4j:{secret}@[::1", "bolt://host:7687#frag"]
    env = {"NEO4J_PASSWORD": secret}
    for uri in bad:
        for args, extra in ((["--neo4j", uri], {}), ([], {"NEO4J_URI": uri})):
            out = invoke(["query", "models", *args], env=env | extra, cwd=tmp_path)
            line = one_line_error(out)
            assert secret not in out.stdout + out.stderr, uri
            assert "Traceback" not in out.stderr, (uri, line)


@pytest.mark.slow          # a push into Neo4j
@pytest.mark.neo4j
def test_push_with_neo4j_uri_set_copies_the_embedded_file(neo4j_clean, tmp_path, kbh):
    """NEO4J_URI names where a push goes, not where it comes from: `push --to $NEO4J_URI` copies
    ./neurflow-kb.lbug (it used to copy Neo4j onto itself and report success)."""
    server = neo4j_clean
    circuits = kbh.kb_circuits()
    with LadybugStore(tmp_path / "neurflow-kb.lbug") as st:
        st.write_circuits(circuits)
        want = st.counts()
    env = {
        "NEO4J_URI": server.uri, "NEO4J_USER": server.user, "NEO4J_PASSWORD": server.password,
        "NEO4J_DATABASE": server.database}
    out = invoke(["push", "--to", server.uri, "--quiet"], env=env, cwd=tmp_path)
    assert out.exit_code == 0, out.stderr
    assert f"{len(circuits)} runs ({len(circuits)} written)" in out.stdout
    with Neo4jStore(server.uri, user=server.user, password=server.password, database=server.database,
                    read_only=True) as st:
        assert st.counts() == want
    same = invoke(["push", "--neo4j", server.uri, "--to", server.uri], env=env, cwd=tmp_path)
    one_line_error(same, "source knowledge base itself")
    one_line_error(invoke(["push", "--to", "neurflow-kb.lbug"], env=env, cwd=tmp_path), "itself")


def _changed(c):
    """The same run key (same manifest) with other tables: edge weights halved."""
    c.tables["edges"] = c.tables["edges"].assign(weight=c.tables["edges"]["weight"] * 0.5)
    return c


def test_other_tables_under_a_complete_runs_key_are_refused_until_replace(any_store, kbh):
    c = kbh.toy_circuit(1)
    assert any_store.write_circuit(c).status == "written"
    before = any_store.counts()
    weights = any_store.run_query("MATCH ()-[e:INFLUENCES]->() WHERE e.run = $k RETURN sum(e.weight) AS w",
                                  {"k": c.key})["w"][0]
    changed = _changed(kbh.toy_circuit(1))
    assert changed.key == c.key
    with pytest.raises(UserError, match="other tables") as err:
        any_store.write_circuits([kbh.toy_circuit(2), changed])
    assert "--replace" in str(err.value) and "\n" not in str(err.value)
    assert any_store.counts() == before                      # nothing of the batch was written
    assert any_store.write_circuit(kbh.toy_circuit(1)).status == "skipped"
    assert any_store.write_circuit(changed, replace=True).status == "replaced"
    after = any_store.run_query("MATCH ()-[e:INFLUENCES]->() WHERE e.run = $k RETURN sum(e.weight) AS w",
                                {"k": c.key})["w"][0]
    assert after == pytest.approx(weights * 0.5)
    assert any_store.write_circuit(_changed(kbh.toy_circuit(1))).status == "skipped"
    assert any_store.counts() == before


def test_cli_load_of_a_changed_artifact_says_replace(cli, tmp_path, kbh):
    _, args, env = cli
    kbh.toy_circuit(1).save(tmp_path / "v1")
    _changed(kbh.toy_circuit(1)).save(tmp_path / "v2")
    assert "1 written" in invoke(["load", str(tmp_path / "v1"), *args, "--quiet"], env=env).stdout
    one_line_error(invoke(["load", str(tmp_path / "v2"), *args, "--quiet"], env=env), "--replace")
    out = invoke(["load", str(tmp_path / "v2"), *args, "--quiet", "--replace"], env=env)
    assert out.exit_code == 0 and "1 replaced" in out.stdout, out.stderr
    assert "1 skipped" in invoke(["load", str(tmp_path / "v2"), *args, "--quiet"], env=env).stdout


def test_a_file_of_an_earlier_version_opens_and_gains_the_digest_column(lbug_path, tmp_path, kbh):
    with LadybugStore(lbug_path) as st:
        st.write_circuits([kbh.toy_circuit(0), kbh.toy_circuit(1)])
        st.run_query("ALTER TABLE Run DROP digest", write=True)
    with LadybugStore(lbug_path, read_only=True) as ro:
        assert len(queries.runs(ro)) == 2
        with LadybugStore(tmp_path / "copy.lbug") as dst:
            assert {r.status for r in dst.import_(ro.export())} == {"written"}
    with LadybugStore(lbug_path) as st:
        assert st.write_circuit(kbh.toy_circuit(1)).status == "skipped"     # no digest: not compared
        assert st.write_circuit(kbh.toy_circuit(2)).status == "written"
        assert "digest" in set(st.run_query("CALL table_info('Run') RETURN *")["name"])
