"""Shared test set-up: offline model hubs, few threads, and the real Neo4j that integration tests use.

Neo4j comes from NEO4J_URI / NEO4J_USER / NEO4J_PASSWORD (the test command starts one); without them a
developer's run starts its own through scripts/neo4j-server, while CI (or NEURFLOW_REQUIRE_NEO4J=1) fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("NEURFLOW_TEST_THREADS", "1")))

ROOT = Path(__file__).resolve().parents[1]
SERVER_SCRIPT = ROOT / "scripts" / "neo4j-server"


@dataclass(frozen=True)
class Neo4jServer:
    """Where the test Neo4j listens and how to log in; `pid` is set when this checkout started it."""

    uri: str
    user: str
    password: str
    database: str = "neo4j"
    pid: int | None = None
    #: where LOAD CSV's file:/// URLs point (set when scripts/neo4j-server started the server)
    import_dir: str | None = None
    #: HTTP address for Neo4j Browser and the HTTP API (NEO4J_HTTP_URL, written by scripts/neo4j-server)
    http_url: str | None = None

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.password)

    def wipe(self) -> None:
        """Delete every node, constraint and index (except the built-in lookup indexes) of `database`."""
        from neo4j import GraphDatabase

        with GraphDatabase.driver(self.uri, auth=self.auth) as driver:
            run = driver.execute_query
            # in batches, relationships first: one DETACH DELETE of millions of relationships (or of
            # a few thousand dense nodes) exceeds transaction memory
            for q in ("MATCH ()-[e]->() WITH e LIMIT 50000 DELETE e RETURN count(*) AS c",
                      "MATCH (n) WITH n LIMIT 20000 DETACH DELETE n RETURN count(*) AS c"):
                while run(q, database_=self.database).records[0]["c"]:
                    pass
            for rec in run("SHOW CONSTRAINTS YIELD name", database_=self.database).records:
                run("DROP CONSTRAINT $name IF EXISTS", name=rec["name"], database_=self.database)
            indexes = run("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name",
                          database_=self.database).records
            for rec in indexes:
                run("DROP INDEX $name IF EXISTS", name=rec["name"], database_=self.database)


def _read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _server_from(env: dict[str, str]) -> Neo4jServer:
    pid = env.get("NEO4J_PID")
    return Neo4jServer(uri=env["NEO4J_URI"], user=env.get("NEO4J_USER", "neo4j"),
                       password=env.get("NEO4J_PASSWORD", ""), database=env.get("NEO4J_DATABASE", "neo4j"),
                       pid=int(pid) if pid else None, import_dir=env.get("NEO4J_IMPORT_DIR") or None,
                       http_url=env.get("NEO4J_HTTP_URL") or None)


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[Neo4jServer]:
    """The real Neo4j for this test session (from NEO4J_* or started here and stopped at the end)."""
    if os.environ.get("NEO4J_URI"):
        yield _server_from(dict(os.environ))
        return
    if os.environ.get("CI") or os.environ.get("NEURFLOW_REQUIRE_NEO4J") == "1":
        pytest.fail("NEO4J_URI is not set: the test command must start Neo4j first "
                    "(scripts/neo4j-server start; set -a; . neo4j/run/env; set +a)", pytrace=False)
    run_dir = Path(tempfile.mkdtemp(prefix="neurflow-neo4j-"))
    env = dict(os.environ, NEO4J_RUN_DIR=str(run_dir), NEO4J_WATCH_PID=str(os.getpid()))
    started = subprocess.run([str(SERVER_SCRIPT), "start"], env=env, capture_output=True, text=True,
                             timeout=600)
    if started.returncode != 0:
        shutil.rmtree(run_dir, ignore_errors=True)
        pytest.fail(f"could not start Neo4j with scripts/neo4j-server start:\n{started.stderr[-3000:]}",
                    pytrace=False)
    try:
        yield _server_from(_read_env_file(run_dir / "env"))
    finally:
        subprocess.run([str(SERVER_SCRIPT), "stop"], env=env, capture_output=True, timeout=180)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def neo4j_uri(neo4j_server: Neo4jServer) -> str:
    """Bolt URI of the test Neo4j."""
    return neo4j_server.uri


@pytest.fixture(scope="session")
def neo4j_auth(neo4j_server: Neo4jServer) -> tuple[str, str]:
    """(user, password) of the test Neo4j."""
    return neo4j_server.auth


@pytest.fixture
def neo4j_clean(neo4j_server: Neo4jServer) -> Neo4jServer:
    """The test Neo4j with its `neo4j` database emptied (nodes, constraints, indexes) before the test."""
    neo4j_server.wipe()
    return neo4j_server


@pytest.fixture
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Every name lookup and socket connect the test's code makes, recorded as it goes through (nothing is
    blocked: the calls still happen): ("getaddrinfo", host, port) and ("connect", address, the socket's
    timeout). "No download, fail at once" is asserted as an empty list."""
    import socket

    seen: list[tuple] = []
    lookup, connect, connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host, port, *args, **kwargs):
        seen.append(("getaddrinfo", host, port))
        return lookup(host, port, *args, **kwargs)

    def record(call):
        def wrapper(self, address):
            seen.append((call.__name__, address, self.gettimeout()))
            return call(self, address)
        return wrapper

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", record(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", record(connect_ex))
    return seen


@pytest.fixture
def parameters_built() -> Iterator[list[str]]:
    """Names of the parameters registered on any `nn.Module` while the test runs (torch's global
    registration hook): empty means no model was built."""
    from torch.nn.modules.module import register_module_parameter_registration_hook

    names: list[str] = []

    def hook(module, name, param):
        names.append(f"{type(module).__name__}.{name}")

    handle = register_module_parameter_registration_hook(hook)
    try:
        yield names
    finally:
        handle.remove()
