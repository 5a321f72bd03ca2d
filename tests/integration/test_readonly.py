"""Read-only means read-only: writes, administration commands and file access in many spellings are
refused (or harmless) on both stores, through `neurflow-kb cypher` (--store, --neo4j URI and NEO4J_URI)
and through `store.run_query` on a store opened read-only and on a writable one. Afterwards the store is
unchanged, no file was written, the process did not crash and no host file content came back."""

from __future__ import annotations

import os
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from neurflow_kb.errors import UserError
from neurflow_kb.store import LadybugStore, Neo4jStore
from neurflow_kb_dev.cli_runs import console, exit_code, invoke

# (id, Ladybug query, Neo4j query); None where a spelling only makes sense on one store. Placeholders:
# {secret} a host file with a secret line, {imp} the same file's name in Neo4j's import folder (LOAD CSV
# may read there), {out} / {outdir} paths nothing may be written to, {other} another database file.
ATTACKS: list[tuple[str, str | None, str | None]] = [
    ("create", "CREATE (:Model {key: 'pwned'})", "CREATE (:Model {key: 'pwned'})"),
    ("create-lower-return", "create (m:Model {key:'pwned'}) return m.key",
     "create (m:Model {key:'pwned'}) return m"),
    ("mixed-case", "CrEaTe (:Model {key: 'pwned'})", "CrEaTe (:Model {key: 'pwned'})"),
    ("set", "MATCH (r:Run) SET r.status = 'pwned'", "MATCH (r:Run) SET r.status = 'pwned'"),
    ("set-map", "MATCH (r:Run) SET r.status = 'pwned' RETURN count(r)",
     "MATCH (r:Run) SET r += {status: 'pwned'}"),
    ("detach-delete", "MATCH (r:Run) DETACH DELETE r", "MATCH (r:Run) DETACH DELETE r"),
    ("delete-limit", "MATCH (g:NeuronGroup) WITH g LIMIT 1 DETACH DELETE g",
     "MATCH (r:Run) WITH r LIMIT 1 DETACH DELETE r"),
    ("remove", "MATCH (r:Run) REMOVE r.status", "MATCH (r:Run) REMOVE r.status"),
    ("merge", "MERGE (m:Model {key: 'pwned'})", "MERGE (m:Model {key: 'pwned'})"),
    ("block-comment", "/* read */ CREATE (:Model {key: 'pwned'})",
     "/* read */ CREATE (:Model {key: 'pwned'})"),
    ("line-comment", "// read\nCREATE (:Model {key: 'pwned'})", "// read\nCREATE (:Model {key: 'pwned'})"),
    ("cr-comment", "RETURN 1 AS x //\rCREATE (:Model {key: 'pwned'})",
     "RETURN 1 AS x //\rCREATE (:Model {key: 'pwned'})"),
    ("glued-comment", "MATCH (r:Run) DETACH/**/DELETE r", "MATCH (r:Run) DETACH/**/DELETE r"),
    ("tabs", "MATCH (r:Run)\tSET\tr.status\t=\t'pwned'", "MATCH (r:Run)\tSET\tr.status\t=\t'pwned'"),
    ("unicode-space", "MATCH (r:Run)\u2003SET r.status = 'pwned'",
     "MATCH (r:Run)\u2003SET r.status = 'pwned'"),
    ("backticks", "MATCH (r:`Run`) SET r.`status` = 'pwned'", "MATCH (r:`Run`) SET r.`status` = 'pwned'"),
    ("string-then-write", "MATCH (r:Run) WHERE r.key <> 'DELETE' SET r.status = 'pwned'",
     "MATCH (r:Run) WHERE r.key <> 'DELETE' SET r.status = 'pwned'"),
    ("escaped-quote", "RETURN 'a\\' LOAD FROM x' AS s; CREATE (:Model {key: 'pwned'})",
     "MATCH (r:Run) WHERE r.key <> 'a\\'' SET r.status = 'pwned'"),
    ("foreach", "MATCH (r:Run) WITH collect(r) AS rs FOREACH (x IN rs | SET x.status = 'pwned')",
     "MATCH (r:Run) FOREACH (x IN [1] | SET r.status = 'pwned')"),
    ("multi-statement", "RETURN 1; CREATE (:Model {key: 'pwned'})",
     "RETURN 1; CREATE (:Model {key: 'pwned'})"),
    ("subquery", "MATCH (r:Run) CALL { WITH r SET r.status = 'pwned' } RETURN 1",
     "MATCH (r:Run) CALL (r) { SET r.status = 'pwned' } RETURN count(*)"),
    ("in-transactions", "MATCH (r:Run) CALL { WITH r SET r.status = 'pwned' } IN TRANSACTIONS",
     "MATCH (r:Run) CALL (r) { SET r.status = 'pwned' } IN TRANSACTIONS"),
    ("explain-write", "EXPLAIN CREATE (:Model {key: 'pwned'})", "EXPLAIN CREATE (:Model {key: 'pwned'})"),
    ("profile-write", "PROFILE CREATE (:Model {key: 'pwned'})", "PROFILE CREATE (:Model {key: 'pwned'})"),
    ("drop", "DROP TABLE Image", "DROP CONSTRAINT run_key"),
    ("alter", "ALTER TABLE Run ADD pwned STRING", "CREATE INDEX pwned FOR (n:Run) ON (n.pwned)"),
    ("create-table", "CREATE NODE TABLE Pwned(key STRING PRIMARY KEY)",
     "CREATE CONSTRAINT pwned FOR (n:Pwned) REQUIRE n.key IS UNIQUE"),
    ("transaction", "BEGIN TRANSACTION", "CALL db.createLabel('Pwned')"),
    ("checkpoint", "CHECKPOINT", "CALL db.clearQueryCaches()"),
    ("load-from", "LOAD FROM '{secret}' (file_format='csv', header=false) RETURN *",
     "LOAD CSV FROM 'file:///{imp}' AS l RETURN l"),
    ("load-lower", 'load   from "{secret}" (file_format=\'csv\', header=false) return *',
     "load csv from 'file:///{imp}' as l return l"),
    ("load-headers", "LOAD WITH HEADERS (a STRING) FROM '{secret}' (file_format='csv') RETURN *",
     "LOAD CSV WITH HEADERS FROM 'file:///{imp}' AS l RETURN l"),
    ("load-after-match",
     "MATCH (m:Model) WITH m LIMIT 1 LOAD FROM '{secret}' (file_format='csv', header=false) RETURN *",
     "MATCH (m:Model) WITH m LIMIT 1 LOAD CSV FROM 'file:///{imp}' AS l RETURN l"),
    ("load-glued", "LOAD/**/FROM '{secret}' (file_format='csv', header=false) RETURN *",
     "LOAD/**/CSV/**/FROM 'file://{secret}' AS l RETURN l"),
    ("load-second-statement",
     "RETURN 1 AS x; LOAD FROM '{secret}' (file_format='csv', header=false) RETURN *",
     "CALL { LOAD CSV FROM 'file:///{imp}' AS l RETURN l } RETURN l"),
    ("read-csv", "CALL read_csv_serial('{secret}') RETURN *", "CALL apoc.load.csv('file:///{imp}')"),
    ("read-csv-parallel", "CALL READ_CSV_PARALLEL('{secret}') RETURN *",
     "CALL apoc.load.json('file:///{imp}')"),
    ("read-parquet", "CALL read_parquet('{secret}') RETURN *",
     "RETURN apoc.cypher.runFirstColumnSingle('LOAD CSV FROM $u AS l RETURN l', {u: 'file:///{imp}'}) AS x"),
    ("read-npy", "CALL read_npy('{secret}') RETURN *",
     "CALL apoc.cypher.run('LOAD CSV FROM \"file:///{imp}\" AS l RETURN l', {})"),
    ("read-pandas", "CALL read_pandas(1) RETURN *", "CALL apoc.load.xml('file:///{imp}')"),
    ("table-function-in-query", "MATCH (r:Run) WITH r LIMIT 1 CALL read_csv_serial('{secret}') RETURN *",
     "CALL apoc.import.csv([{fileName: 'file:///{imp}', labels: ['Pwned']}], [], {})"),
    ("copy-to", "COPY (MATCH (r:Run) RETURN r.key) TO '{out}'", "CALL apoc.export.csv.all('{out}', {})"),
    ("copy-from", "COPY Concept FROM '{secret}'",
     "CALL apoc.periodic.iterate('MATCH (r:Run) RETURN r', 'SET r.status = \"pwned\"', {})"),
    ("export", "EXPORT DATABASE '{outdir}'",
     "CALL apoc.cypher.runWrite('MATCH (r:Run) SET r.status = \"pwned\"', {})"),
    ("import", "IMPORT DATABASE '{outdir}'",
     "CALL apoc.cypher.doIt('MATCH (r:Run) SET r.status = \"pwned\" RETURN 1 AS x', {})"),
    ("attach", "ATTACH '{other}' AS o (dbtype lbug)", "USE system SHOW USERS"),
    ("install", "INSTALL json", "SHOW USERS"),
    ("load-extension", "LOAD EXTENSION '{secret}'", "CREATE USER pwned SET PASSWORD 'abcdefgh12345'"),
    ("setting", "CALL threads=1", "CREATE DATABASE pwned"),
    ("setting-home", "CALL home_directory='/etc'", "TERMINATE TRANSACTIONS 'neo4j-transaction-1'"),
    ("project-graph", "CALL project_graph('g', ['Run'], []) RETURN *", "SHOW TRANSACTIONS"),
    ("use", "USE o", "STOP DATABASE neo4j"),
    ("settings", "CALL current_setting('home_directory') RETURN *", "CALL dbms.listConfig()"),
    ("sleep", "CALL read_csv_serial('{secret}') RETURN * LIMIT 0", "CALL apoc.util.sleep(10)"),
    ("kill", "UNWIND [1] AS x CALL read_csv_serial('{secret}') RETURN x", "CALL dbms.killQuery('query-1')"),
    ("other-db", "USE o MATCH (n) RETURN n", "USE system MATCH (n) RETURN count(n)"),
    ("cypher-option", "CREATE (:Model {key: 'pwned'}) RETURN 1",
     "CYPHER runtime=slotted CREATE (:Model {key: 'pwned'})"),
]

# Harmless reads that must keep working (keywords inside strings, names and labels are data).
ALLOWED: list[tuple[str, str, str]] = [
    ("count", "MATCH (r:Run) RETURN count(r) AS n", "MATCH (r:Run) RETURN count(r) AS n"),
    ("keyword-in-string",
     "MATCH (m:Model) WHERE m.key <> 'LOAD FROM /etc/passwd; CREATE' RETURN count(m) AS n",
     "MATCH (m:Model) WHERE m.key <> 'LOAD CSV FROM x; CREATE' RETURN count(m) AS n"),
    ("keyword-name", "MATCH (r:Run) RETURN count(r) AS `LOAD FROM`",
     "MATCH (r:Run) RETURN count(r) AS `LOAD CSV`"),
    ("catalogue", "CALL show_tables() RETURN name", "CALL db.labels()"),
    ("explain-read", "MATCH (r:Run) RETURN r.key AS k ORDER BY k LIMIT 2",
     "RETURN apoc.coll.sum([1, 2]) AS s"),
]


@pytest.fixture
def world(store_kind, tmp_path, request, kbh):
    """A knowledge base of each kind, a secret host file, and where attacks might write."""
    secret = f"neurflow_secret_{secrets.token_hex(8)}"
    sfile = tmp_path / "secret.csv"
    sfile.write_text(f"{secret},1\n{secret},2\n")
    paths = {"secret": str(sfile), "imp": "secret.csv", "out": str(tmp_path / "out.csv"),
             "outdir": str(tmp_path / "outdir"), "other": str(tmp_path / "other.lbug")}
    kb = tmp_path / "kb.lbug"
    server = None
    if store_kind == "ladybug":
        with LadybugStore(kb) as st:
            st.write_circuits(kbh.kb_circuits())
    else:
        server = request.getfixturevalue("neo4j_clean")
        with _neo4j(server) as st:
            st.write_circuits(kbh.kb_circuits())
        if server.import_dir:
            (Path(server.import_dir) / "secret.csv").write_text(sfile.read_text())
    yield {"secret": secret, "paths": paths, "kb": kb, "server": server, "tmp": tmp_path}
    if server is not None and server.import_dir:
        (Path(server.import_dir) / "secret.csv").unlink(missing_ok=True)


def _neo4j(server, read_only: bool = False) -> Neo4jStore:
    return Neo4jStore(server.uri, user=server.user, password=server.password, database=server.database,
                      read_only=read_only)


def _queries(kind: str, table: list[tuple[str, str | None, str | None]],
             paths: dict) -> list[tuple[str, str]]:
    col = 1 if kind == "ladybug" else 2
    out = []
    for row in table:
        q = row[col]
        if q is not None:
            for name, value in paths.items():
                q = q.replace("{" + name + "}", value)
            out.append((row[0], q))
    return out


def snapshot(kind: str, w: dict) -> dict:
    """Everything an attack could change: counts, run statuses, tables / users, databases, schema."""
    if kind == "ladybug":
        with LadybugStore(w["kb"], read_only=True) as st:
            runs = st.run_query("MATCH (r:Run) RETURN r.key AS k, r.status AS s ORDER BY k").values.tolist()
            tables = sorted(st.run_query("CALL show_tables() RETURN name")["name"])
            return {"counts": st.counts(), "runs": runs, "tables": tables}
    from neo4j import GraphDatabase

    server = w["server"]
    with GraphDatabase.driver(server.uri, auth=server.auth) as d:
        def q(cypher: str, db: str = server.database) -> list:
            return sorted(str(r.values()) for r in d.execute_query(cypher, database_=db).records)

        out = {"users": q("SHOW USERS YIELD user", "system"),
               "databases": q("SHOW DATABASES YIELD name", "system"),
               "constraints": q("SHOW CONSTRAINTS YIELD name"), "indexes": q("SHOW INDEXES YIELD name"),
               "runs": q("MATCH (r:Run) RETURN r.key, r.status, keys(r)"),
               "labels": q("MATCH (n) RETURN DISTINCT labels(n)")}
    with _neo4j(server, read_only=True) as st:
        out["counts"] = st.counts()
    return out


def _assert_untouched(kind: str, w: dict, before: dict) -> None:
    assert snapshot(kind, w) == before
    for key in ("out", "outdir", "other"):
        assert not Path(w["paths"][key]).exists(), f"an attack wrote {w['paths'][key]}"


def test_attacks_are_refused_through_the_python_api(store_kind, world) -> None:
    before = snapshot(store_kind, world)
    attacks = _queries(store_kind, ATTACKS, world["paths"])
    allowed = _queries(store_kind, ALLOWED, world["paths"])
    assert len(attacks) >= 40
    for read_only in (True, False):
        store = (LadybugStore(world["kb"], read_only=read_only) if store_kind == "ladybug"
                 else _neo4j(world["server"], read_only=read_only))
        with store as st:
            for name, q in attacks:
                with pytest.raises(UserError) as err:
                    st.run_query(q)
                msg = str(err.value)
                assert world["secret"] not in msg and "\n" not in msg.strip(), (name, msg)
            for name, q in allowed:
                df = st.run_query(q)
                assert len(df) and world["secret"] not in df.to_string(), name
    _assert_untouched(store_kind, world, before)


#: Attacks also run through the installed console script in a subprocess (the rest run the same CLI
#: in-process only): those that crashed the process or reached the host before.
SUBPROCESS = {"read-csv", "read-parquet", "read-npy", "load-from", "copy-to", "setting-home", "install",
              "create", "in-transactions"}


def _cli_ways(store_kind: str, world: dict, request, kbh) -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, store arguments, environment) of each way of choosing the store on the command line."""
    args, env = kbh.store_args(store_kind, request, world["kb"])
    ways = [("--store" if store_kind == "ladybug" else "--neo4j", args, env)]
    if store_kind == "neo4j":
        server = world["server"]
        ways.append(("NEO4J_URI", [], dict(env, NEO4J_URI=server.uri, NEO4J_USER=server.user,
                                          NEO4J_DATABASE=server.database)))
    return ways


def _check_cli(world: dict, name: str, where: str, ok: bool, result) -> None:
    """An allowed query exits 0; an attack is refused in one line, never a crash (exit 139) or a
    traceback; the secret never comes back."""
    stdout, stderr = result.stdout, result.stderr
    assert world["secret"] not in stdout + stderr, (name, where)
    code = exit_code(result)
    if ok:
        assert code == 0, (name, where, stderr)
    else:
        assert code == 2, (name, where, code, stdout[-300:], stderr[-500:])
        assert stderr.startswith("Error: ") and len(stderr.strip().splitlines()) == 1, (name, where, stderr)


@pytest.mark.slow          # the Python API test above runs the same attacks in the fast set
def test_attacks_are_refused_through_the_cli(store_kind, world, request, kbh) -> None:
    before = snapshot(store_kind, world)
    attacks = _queries(store_kind, ATTACKS, world["paths"])
    allowed = _queries(store_kind, ALLOWED, world["paths"])
    for where, args, env in _cli_ways(store_kind, world, request, kbh):
        for ok, table in ((False, attacks), (True, allowed)):
            for name, q in table:
                _check_cli(world, name, where, ok, invoke(["cypher", q, *args, "--json"], env=env))
    _assert_untouched(store_kind, world, before)


@pytest.mark.slow          # one console-script process per attack
def test_attacks_that_crashed_the_process_are_refused_by_the_console_script(store_kind, world, request,
                                                                             kbh) -> None:
    """The attacks of SUBPROCESS once more through the real entry point, choosing the store by option only
    (both ways of choosing it are checked in-process above; a crash does not depend on the way)."""
    before = snapshot(store_kind, world)
    where, args, env = _cli_ways(store_kind, world, request, kbh)[0]
    jobs = [(name, q) for name, q in _queries(store_kind, ATTACKS, world["paths"]) if name in SUBPROCESS]
    assert len(jobs) >= len(SUBPROCESS) - 1

    def run(job):
        name, q = job
        return name, console(["cypher", q, *args, "--json"], env=env, timeout=120)

    with ThreadPoolExecutor(2) as pool:
        for name, out in pool.map(run, jobs):
            _check_cli(world, name, where, False, out)
    _assert_untouched(store_kind, world, before)


@pytest.mark.neo4j
def test_read_only_cypher_cannot_terminate_a_running_load(neo4j_clean, kbh, tmp_path) -> None:
    """A transaction another session holds open survives `TERMINATE TRANSACTIONS` from a read-only
    `cypher`, on both ways of choosing Neo4j, and commits afterwards."""
    from neo4j import GraphDatabase

    server = neo4j_clean
    env = {"NEO4J_PASSWORD": server.password}
    with GraphDatabase.driver(server.uri, auth=server.auth) as d, d.session(database=server.database) as s:
        tx = s.begin_transaction()
        tx.run("CREATE (:Model {key: 'held'})").consume()
        ids = [r["transactionId"] for r in d.execute_query(
            "SHOW TRANSACTIONS YIELD transactionId, currentQuery WHERE NOT currentQuery STARTS WITH 'SHOW' "
            "RETURN transactionId", database_=server.database).records]
        assert ids
        query = "TERMINATE TRANSACTIONS " + ", ".join(f"'{i}'" for i in ids)
        by_option = ["--neo4j", server.uri, "--user", server.user, "--database", server.database]
        for args, extra in ((by_option, {}), ([], {"NEO4J_URI": server.uri, "NEO4J_USER": server.user})):
            out = invoke(["cypher", query, *args], env=dict(env, **extra))
            assert out.exit_code == 2 and "Error:" in out.stderr, out.stdout + out.stderr
        tx.commit()
    with _neo4j(server, read_only=True) as st:
        assert st.run_query("MATCH (m:Model {key: 'held'}) RETURN count(m) AS n")["n"][0] == 1


def test_no_file_reading_table_function_crashes_the_process(tmp_path, kbh) -> None:
    """Every table function of the engine's catalogue outside the allowed ones is refused before it runs
    (some crash the process with a segmentation fault on a non-table file), on a handle of each kind."""
    kb = tmp_path / "kb.lbug"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(4096))
    with LadybugStore(kb) as st:
        st.write_circuits([kbh.toy_circuit(0)])
        rows = st.run_query("CALL show_functions() RETURN name, type")
    names = sorted(n for n, t in zip(rows["name"], rows["type"], strict=True) if "TABLE" in t)
    assert len(names) > 20
    from neurflow_kb.store.readonly import LADYBUG_TABLE_FUNCTIONS

    risky = [n for n in names if n not in LADYBUG_TABLE_FUNCTIONS]
    assert {"READ_CSV_SERIAL", "READ_PARQUET", "READ_NPY", "READ_PANDAS"} <= set(risky)
    code = (
        "import sys\n"
        "from neurflow_kb.store import LadybugStore\n"
        "from neurflow_kb.errors import UserError\n"
        f"names = {risky!r}\n"
        "refused = 0\n"
        "for ro in (True, False):\n"
        f"    with LadybugStore({str(kb)!r}, read_only=ro) as st:\n"
        "        for n in names:\n"
        "            try:\n"
        f"                st.run_query(f\"CALL {{n}}('{junk}') RETURN *\")\n"
        "            except UserError:\n"
        "                refused += 1\n"
        "print(refused)\n")
    res = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert int(res.stdout.strip()) == 2 * len(risky)


def test_writes_with_write_flag_still_work(store_kind, world, request, kbh) -> None:
    """--write is the way to change the knowledge base from `cypher` (and files stay refused without it)."""
    args, env = kbh.store_args(store_kind, request, world["kb"])
    q = "MATCH (m:Model) WHERE m.key = 'toy@random' SET m.arch = 'edited' RETURN m.arch AS a"
    out = invoke(["cypher", q, *args, "--write", "--json"], env=env)
    assert out.exit_code == 0 and '"edited"' in out.stdout, out.stderr
    out = invoke(["cypher", q, *args], env=env)
    assert out.exit_code == 2 and "--write" in out.stderr

