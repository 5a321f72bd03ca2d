"""The knowledge-base commands end to end: init, load, query formats, cypher, push, and one-line errors."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pandas as pd
import pytest

from neurflow_kb import queries
from neurflow_kb.store import LadybugStore, Neo4jStore
from neurflow_kb_dev.cli_runs import invoke, one_line_error


@pytest.fixture
def artifacts(tmp_path, kbh):
    paths = []
    for i, c in enumerate(kbh.kb_circuits()):
        paths.append(str(c.save(tmp_path / f"art{i}")))
    return paths


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, kbh) -> Path:
    """An embedded knowledge base with `kbh.kb_circuits()` loaded by `neurflow-kb load` (once per module)."""
    root = tmp_path_factory.mktemp("loaded")
    arts = [str(c.save(root / f"art{i}")) for i, c in enumerate(kbh.kb_circuits())]
    assert invoke(["load", *arts, "--store", root / "kb.lbug", "--quiet"]).exit_code == 0
    return root / "kb.lbug"


@pytest.fixture
def kb_copy(loaded: Path, tmp_path: Path) -> str:
    """A copy of the loaded knowledge base that the test may change."""
    return str(shutil.copy(loaded, tmp_path / "kb.lbug"))


def test_init_load_and_query_formats(tmp_path, artifacts, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(["init"])
    assert r.exit_code == 0 and "neurflow-kb.lbug" in r.stdout
    assert invoke(["init"]).exit_code == 0  # idempotent
    r = invoke(["load", *artifacts, "--quiet"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("written ") == len(artifacts) and "7 runs (7 written)" in r.stdout
    r = invoke(["load", *artifacts[:2], "--quiet"])
    assert "2 runs (2 skipped)" in r.stdout
    table = invoke(["query", "drivers", "toy1", "--limit", "3"])
    assert table.exit_code == 0 and "group_key" in table.stdout and len(table.stdout.splitlines()) == 4
    js = json.loads(invoke(["query", "drivers", "toy1", "--limit", "3", "--json"]).stdout)
    want = queries.drivers(str(tmp_path / "neurflow-kb.lbug"), "toy1", limit=3)
    assert [row["group_key"] for row in js] == want["group_key"].tolist()
    assert [row["influence"] for row in js] == want["influence"].tolist()
    assert [row["abs_share"] for row in js] == want["abs_share"].tolist()          # JSON keeps fractions
    # the table prints shares as percentages: the signed share and the (unsigned) share of the class
    header, *lines = table.stdout.splitlines()
    cols = header.split()
    for line, row in zip(lines, js, strict=True):
        cells = dict(zip(cols, line.split(), strict=True))
        assert cells["abs_share"] == f"{100 * row['abs_share']:.1f}%"
        assert re.fullmatch(r"[+-]?\d+\.\d%", cells["share"])
    csv = invoke(["query", "circuit", "1", "--model", "toy", "--csv"]).stdout
    assert csv.splitlines()[0].startswith("run,class,source,")
    group = json.loads(invoke(["query", "group", js[0]["group_key"], "--json"]).stdout)
    assert set(group) == {"summary", "members", "labels", "upstream", "downstream"}
    assert group["summary"][0]["group_key"] == js[0]["group_key"]
    for args in (["models"], ["classes", "--model", "mini"], ["runs", "--class", "2"], ["concept", "fur"],
                 ["shared", "1", "2", "--model", "toy", "--by", "pair"], ["path", js[-1]["group_key"]]):
        res = invoke(["query", *args])
        assert res.exit_code == 0, (args, res.output)


def test_json_output_is_one_document_ending_with_a_newline(kb_copy):
    """`cypher --json` (and every --json / --csv output) ends with a newline."""
    kb = kb_copy
    for args in (["cypher", "MATCH (c:Class) WHERE c.index < 2 RETURN c.key AS key ORDER BY key", "--json"],
                 ["cypher", "MATCH (c:Class) WHERE c.index < 0 RETURN c.key AS key", "--json"],
                 ["cypher", "MATCH (c:Class) RETURN count(c) AS n", "--csv"],
                 ["query", "models", "--json"]):
        run = invoke([*args, "--store", kb])
        assert run.exit_code == 0, run.stderr
        assert run.stdout.endswith("\n") and not run.stdout.endswith("\n\n"), repr(run.stdout[-20:])
        if "--json" in args:
            rows = json.loads(run.stdout)
            assert isinstance(rows, list) and run.stdout.count("\n") == 1
    rows = json.loads(invoke(["cypher", "MATCH (c:Class) WHERE c.index < 2 RETURN c.key AS key "
                                   "ORDER BY key", "--json", "--store", kb]).stdout)
    assert len(rows) == 4                                   # classes 0 and 1 of both models


def test_cypher_parameters_and_read_only_by_default(kb_copy):
    kb = kb_copy
    r = invoke(["cypher", "MATCH (c:Class) WHERE c.model = $m AND c.`index` = $i RETURN c.name AS name",
                "--param", "m=toy@random", "--param", "i=3", "--store", kb, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == [{"name": "toy3"}]
    one_line_error(invoke(["cypher", "MATCH (r:Run) DETACH DELETE r", "--store", kb]), "--write")
    one_line_error(invoke(["cypher", "MATCH (c:Class) SET c.name = 'x'", "--store", kb]), "SET", "--write")
    one_line_error(invoke(["cypher", "RETURN 1", "--param", "oops", "--store", kb]), "NAME=VALUE")
    with LadybugStore(kb, read_only=True) as st:
        assert len(st.run_keys()) == 7
    r = invoke(["cypher", "MATCH (c:Class) WHERE c.key = $k SET c.name = $n RETURN c.name AS name",
                "--param", "k=mini@v1/0", "--param", 'n="zero"', "--write", "--store", kb, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [{"name": "zero"}]


@pytest.mark.slow          # a knowledge base in Neo4j
@pytest.mark.neo4j
def test_cypher_on_neo4j_runs_in_a_read_transaction(neo4j_clean, kbh):
    env = {"NEO4J_PASSWORD": neo4j_clean.password}
    base = ["--neo4j", neo4j_clean.uri, "--user", neo4j_clean.user]
    with Neo4jStore(neo4j_clean.uri, user=neo4j_clean.user, password=neo4j_clean.password) as st:
        st.write_circuit(kbh.toy_circuit(0))
        before = st.counts()
    one_line_error(invoke(["cypher", "MATCH (r:Run) DETACH DELETE r", *base], env=env), "--write")
    one_line_error(invoke(["cypher", "CALL () { CREATE (:Run {key: 'x'}) } RETURN 1", *base], env=env),
                   "--write")
    r = invoke(["cypher", "MATCH (r:Run) RETURN r.key AS key", *base, "--json"], env=env)
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 1
    with Neo4jStore(neo4j_clean.uri, user=neo4j_clean.user, password=neo4j_clean.password) as st:
        assert st.counts() == before


@pytest.mark.slow          # three pushes into Neo4j
@pytest.mark.neo4j
def test_push_to_neo4j_gives_the_same_answers_and_is_idempotent(tmp_path, neo4j_clean, kbh):
    kb = tmp_path / "kb.lbug"
    circuits = kbh.kb_circuits()
    with LadybugStore(kb) as st:
        st.write_circuits(circuits)
    env = {"NEO4J_PASSWORD": neo4j_clean.password, "NEO4J_USER": neo4j_clean.user}
    r = invoke(["push", "--to", neo4j_clean.uri, "--store", str(kb), "--quiet"], env=env)
    assert r.exit_code == 0, r.output
    assert "7 runs (7 written)" in r.stdout
    with LadybugStore(kb) as st:  # labels arrive after the first push (as `neurflow-kb label` would add)
        kbh.add_labels(st, circuits)
    r = invoke(["push", "--to", neo4j_clean.uri, "--store", str(kb), "--quiet"], env=env)
    assert r.exit_code == 0 and "7 replaced" in r.stdout, r.output
    with LadybugStore(kb, read_only=True) as src, \
            Neo4jStore(neo4j_clean.uri, user=neo4j_clean.user, password=neo4j_clean.password) as dst:
        assert dst.counts() == src.counts()
        for call in kbh.helper_calls(circuits).values():
            kbh.frames_equal(call(src), call(dst))
        counts = dst.counts()
    r = invoke(["push", "--to", neo4j_clean.uri, "--store", str(kb), "--quiet"], env=env)
    assert r.exit_code == 0 and "7 runs (7 skipped)" in r.stdout, r.output
    with Neo4jStore(neo4j_clean.uri, user=neo4j_clean.user, password=neo4j_clean.password) as dst:
        assert dst.counts() == counts


def test_push_between_embedded_files(tmp_path, kbh):
    src, dst = tmp_path / "a.lbug", tmp_path / "b.lbug"
    with LadybugStore(src) as st:
        st.write_circuits(kbh.kb_circuits()[:3])
    r = invoke(["push", "--to", str(dst), "--store", str(src), "--quiet"])
    assert r.exit_code == 0 and "3 written" in r.stdout, r.output
    pd.testing.assert_frame_equal(queries.runs(src), queries.runs(dst))
    one_line_error(invoke(["push", "--to", str(src), "--store", str(src)]), "source")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_store_file_and_unknown_names(tmp_path, kbh):
    kb = tmp_path / "kb.lbug"
    one_line_error(invoke(["query", "drivers", "1", "--store", str(kb)]), "no knowledge base at", str(kb))
    one_line_error(invoke(["cypher", "RETURN 1", "--store", str(kb)]), "no knowledge base at")
    with LadybugStore(kb) as st:
        st.write_circuits([kbh.toy_circuit(0), kbh.mini_circuit(1)])
    one_line_error(invoke(["query", "drivers", "zebra", "--store", str(kb)]), "unknown class 'zebra'")
    one_line_error(invoke(["query", "drivers", "0", "--model", "vgg16", "--store", str(kb)]),
                   "unknown model 'vgg16'")
    one_line_error(invoke(["query", "runs", "--class", "77", "--model", "toy", "--store", str(kb)]),
                   "unknown class 77")
    one_line_error(invoke(["query", "group", "a/b/1", "--store", str(kb)]), "unknown group 'a/b/1'")
    one_line_error(invoke(["cypher", "MATCH (n:Nope) RETURN n", "--store", str(kb)]), "Ladybug rejected")
    one_line_error(invoke(["query", "models", "--neo4j", "http://localhost:7474"]), "not a Neo4j URI")


@pytest.mark.neo4j
def test_neo4j_connection_errors_are_one_line_and_never_show_the_password(neo4j_server):
    secret = "not-the-password-4711"
    port = _free_port()
    r = invoke(["query", "models", "--neo4j", f"bolt://127.0.0.1:{port}", "--password", secret])
    line = one_line_error(r, "cannot reach Neo4j", f"127.0.0.1:{port}")
    assert secret not in r.output
    r = invoke(["query", "models", "--neo4j", neo4j_server.uri, "--user", neo4j_server.user], env={
        "NEO4J_PASSWORD": secret})
    line = one_line_error(r, "wrong user name or password")
    assert secret not in r.output and neo4j_server.password not in r.output
    r = invoke(["query", "models", "--neo4j", f"bolt://{neo4j_server.user}:{secret}@127.0.0.1:{port}"])
    line = one_line_error(r, "cannot reach")
    assert secret not in line
    env = {"NEO4J_PASSWORD": neo4j_server.password}
    r = invoke(["query", "models", "--neo4j", neo4j_server.uri, "--user", neo4j_server.user,
                "--database", "nosuchdb"], env=env)
    one_line_error(r, "no database 'nosuchdb'")
    assert neo4j_server.password not in r.output
