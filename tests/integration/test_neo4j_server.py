"""The real Neo4j that integration tests use: reachable, 5.26, password-protected, APOC loaded, wipeable."""

from __future__ import annotations

from pathlib import Path

import pytest
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, ClientError

pytestmark = pytest.mark.neo4j


def test_runs_cypher_with_parameters(neo4j_uri: str, neo4j_auth: tuple[str, str]) -> None:
    with GraphDatabase.driver(neo4j_uri, auth=neo4j_auth) as driver:
        assert driver.execute_query("RETURN 1 AS x").records[0]["x"] == 1
        rows = driver.execute_query("UNWIND $xs AS x RETURN sum(x) AS s", xs=[1, 2, 39]).records
        assert rows[0]["s"] == 42


def test_server_is_neo4j_5_26(neo4j_uri: str, neo4j_auth: tuple[str, str]) -> None:
    with GraphDatabase.driver(neo4j_uri, auth=neo4j_auth) as driver:
        assert driver.get_server_info().agent.startswith("Neo4j/5.26.")
        rec = driver.execute_query("CALL dbms.components() YIELD name, versions RETURN *").records[0]
        assert rec["name"] == "Neo4j Kernel"
        assert rec["versions"][0].startswith("5.26.")


def test_wrong_password_is_rejected(neo4j_uri: str, neo4j_auth: tuple[str, str]) -> None:
    user, password = neo4j_auth
    with GraphDatabase.driver(neo4j_uri, auth=(user, password + "-wrong")) as driver:
        with pytest.raises(AuthError):
            driver.execute_query("RETURN 1")


def test_apoc_core_is_callable(neo4j_uri: str, neo4j_auth: tuple[str, str]) -> None:
    with GraphDatabase.driver(neo4j_uri, auth=neo4j_auth) as driver:
        assert driver.execute_query("RETURN apoc.version() AS v").records[0]["v"].startswith("5.26.")
        rec = driver.execute_query("RETURN apoc.coll.sum($xs) AS s", xs=[1.5, 2.5]).records[0]
        assert rec["s"] == 4.0


def test_clean_fixture_wipes_nodes_constraints_and_indexes(neo4j_clean) -> None:
    server = neo4j_clean
    with GraphDatabase.driver(server.uri, auth=server.auth) as driver:

        def q(cypher: str) -> list:
            return driver.execute_query(cypher, database_=server.database).records

        assert q("MATCH (n) RETURN count(n) AS n")[0]["n"] == 0
        q("CREATE CONSTRAINT t_key IF NOT EXISTS FOR (n:TmpWipe) REQUIRE n.key IS UNIQUE")
        q("CREATE INDEX t_val IF NOT EXISTS FOR (n:TmpWipe) ON (n.val)")
        q("UNWIND range(1, 5) AS i CREATE (:TmpWipe {key: i, val: i})-[:NEXT]->(:Other)")
        assert q("MATCH (n) RETURN count(n) AS n")[0]["n"] == 10
        assert len(q("SHOW CONSTRAINTS YIELD name")) == 1

        server.wipe()

        assert q("MATCH (n) RETURN count(n) AS n")[0]["n"] == 0
        assert q("SHOW CONSTRAINTS YIELD name") == []
        assert {r["type"] for r in q("SHOW INDEXES YIELD type")} == {"LOOKUP"}


def test_password_not_on_command_line_or_in_log(neo4j_server) -> None:
    if neo4j_server.pid is None:
        pytest.skip("NEO4J_URI points at a server this checkout did not start (no NEO4J_PID)")
    cmdline = Path(f"/proc/{neo4j_server.pid}/cmdline").read_bytes().decode(errors="replace")
    assert "Launcher.java" in cmdline
    assert neo4j_server.password not in cmdline
    log = Path(f"/proc/{neo4j_server.pid}/fd/1").resolve()
    assert "NEO4J READY" in log.read_text()
    assert neo4j_server.password not in log.read_text()


def test_load_csv_reads_the_import_folder_only(neo4j_server) -> None:
    """The test server confines LOAD CSV's file:/// URLs to its import folder: a host file outside it
    (also through ../) is not found, a file inside it reads (even with full rights)."""
    if neo4j_server.import_dir is None:
        pytest.skip("NEO4J_URI points at a server this checkout did not start (no NEO4J_IMPORT_DIR)")
    inside = Path(neo4j_server.import_dir) / "inside.csv"
    inside.write_text("a,b\n")
    outside = Path(neo4j_server.import_dir).parent / "outside-import.csv"
    outside.write_text("secret,row\n")
    try:
        with GraphDatabase.driver(neo4j_server.uri, auth=neo4j_server.auth) as driver:
            rows = driver.execute_query("LOAD CSV FROM 'file:///inside.csv' AS l RETURN l").records
            assert rows[0]["l"] == ["a", "b"]
            for url in (f"file://{outside}", "file:///../outside-import.csv", "file:///etc/hostname",
                        "file:///%2E%2E/outside-import.csv"):
                with pytest.raises(ClientError) as err:
                    driver.execute_query("LOAD CSV FROM $u AS l RETURN l", u=url)
                assert "secret" not in str(err.value)
    finally:
        inside.unlink()
        outside.unlink()


SERVER_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "neo4j-server"


def _http_json(url: str, body: dict | None = None, auth: tuple[str, str] | None = None) -> tuple[int, dict]:
    import base64
    import json
    import urllib.request

    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Accept": "application/json", "Content-Type": "application/json"})
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def _own_server(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Start a second server with scripts/neo4j-server (its defaults) in `tmp_path`: (env file, run env)."""
    import os
    import subprocess

    env = dict(os.environ, NEO4J_RUN_DIR=str(tmp_path / "run"), NEO4J_WATCH_PID=str(os.getpid()))
    env.pop("NEO4J_HTTP_PORT", None)
    started = subprocess.run([str(SERVER_SCRIPT), "start"], env=env, capture_output=True, text=True,
                             timeout=600)
    assert started.returncode == 0, started.stderr[-3000:]
    values = dict(line.removeprefix("export ").split("=", 1)
                  for line in (tmp_path / "run" / "env").read_text().splitlines() if "=" in line)
    assert f"HTTP for Neo4j Browser at {values['NEO4J_HTTP_URL']}" in started.stderr    # address printed
    return values, env


def test_the_server_script_serves_http_for_browser_on_localhost(neo4j_server, tmp_path: Path) -> None:
    """scripts/neo4j-server starts HTTP by default on a free 127.0.0.1 port and writes NEO4J_HTTP_URL: a GET
    answers with the discovery document Neo4j Browser reads, and the HTTP API runs Cypher with the password.
    (The session's server is used when the script started it; otherwise the test starts one.)"""
    import subprocess
    from urllib.parse import urlsplit

    own = None
    if neo4j_server.http_url:
        values = {"NEO4J_HTTP_URL": neo4j_server.http_url, "NEO4J_URI": neo4j_server.uri,
                  "NEO4J_USER": neo4j_server.user, "NEO4J_PASSWORD": neo4j_server.password}
    else:
        values, own = _own_server(tmp_path)
    try:
        url = values["NEO4J_HTTP_URL"]
        assert urlsplit(url).hostname == "127.0.0.1" and urlsplit(url).port
        status, discovery = _http_json(url + "/")
        assert status == 200
        assert discovery["bolt_direct"] == values["NEO4J_URI"]
        assert discovery["neo4j_version"].startswith("5.26.")
        status, result = _http_json(url + "/db/neo4j/query/v2", {"statement": "RETURN 40 + 2 AS x"},
                                    auth=(values["NEO4J_USER"], values["NEO4J_PASSWORD"]))
        assert status in (200, 202) and result["data"]["values"] == [[42]]
    finally:
        if own is not None:
            subprocess.run([str(SERVER_SCRIPT), "stop"], env=own, capture_output=True, timeout=180)
