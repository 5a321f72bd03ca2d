"""Readers during writes and writers during writes, on real stores and in real processes:
embedded readers wait out a writer's transient WAL states, `load --replace` swaps runs without a gap,
concurrent Neo4j writers leave exactly one of every structure node and relationship and write each run
once, stale claims are taken over and live ones waited for, and a second embedded writer is told who
holds the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from neurflow_kb import queries
from neurflow_kb.artifact import Circuit
from neurflow_kb.store import LadybugStore, Neo4jStore
from neurflow_kb_dev.cli_runs import CONSOLE_SCRIPT, console, invoke, process_env
from neurflow_kb_dev.synthetic import synthetic_circuit

#: Real processes (concurrent processes over big artifacts): not in the fast suite.
pytestmark = pytest.mark.slow

# A reader process: queries the embedded file in a loop (opening it afresh each time, as the CLI does)
# until STOP exists, and prints one JSON line per query: its start, end and what it saw, or its error.
READER = r"""
import json, sys, time
from pathlib import Path
from neurflow_kb.store import LadybugStore
from neurflow_kb import queries
kb, stop, limit = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
done = 0
while not stop.exists() and done < limit:
    t0 = time.time()
    try:
        with LadybugStore(kb, read_only=True) as st:
            runs = st.run_query("MATCH (r:Run) WHERE r.status = 'complete' "
                                "OPTIONAL MATCH (r)-[:HAS_GROUP]->(g) "
                                "RETURN r.key AS k, r.timings AS d, r.n_groups AS n, count(g) AS g")
            named = len(queries.runs(st))
        out = {"t0": t0, "t1": time.time(), "runs": runs.values.tolist(), "named": named}
    except Exception as e:
        out = {"t0": t0, "t1": time.time(), "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out), flush=True)
    done += 1
    time.sleep(0.02)
"""


def big_artifacts(root: Path, n: int, version: float = 1.0) -> list[str]:
    """`n` saved ResNet-50-shaped circuits (about 5,000 relationships each); `version` goes into their
    timings (same run keys, a version a query can tell apart)."""
    paths = []
    for i in range(n):
        c = synthetic_circuit(i, nodes_per_layer=(3, 24, 100, 200))
        c.manifest["timings"] = {"version": version}            # a number: timings are seconds
        paths.append(str(c.save(root / f"art{i:03d}")))
    return paths


def _readers(kb: Path, stop: Path, n: int, limit: int) -> list[tuple[subprocess.Popen, Path]]:
    """`n` reader processes writing to files (a full pipe would stall them), returned once each has
    answered its first query (imports done)."""
    procs = []
    for i in range(n):
        log = stop.parent / f"{stop.name}-reader{i}.jsonl"
        with open(log, "w") as f:
            procs.append((subprocess.Popen([sys.executable, "-c", READER, str(kb), str(stop), str(limit)],
                                           stdout=f, stderr=subprocess.PIPE, text=True), log))
    deadline = time.monotonic() + 120
    while any(not log.read_text() for _, log in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    return procs


def _collect(procs: list[tuple[subprocess.Popen, Path]]) -> list[dict]:
    rows = []
    for p, log in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        rows += [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return rows


def test_embedded_readers_wait_out_a_writers_wal(tmp_path, kbh):
    """Readers opening the file again and again while a load commits batch after batch never fail (a
    half-written WAL used to fail them with 'Reading past the end of the file')."""
    kb = tmp_path / "kb.lbug"
    arts = big_artifacts(tmp_path, 24)
    with LadybugStore(kb) as st:
        st.write_circuit(Circuit.load(arts[0]))
    stop = tmp_path / "stop"
    readers = _readers(kb, stop, 3, 10_000)
    load = subprocess.Popen([CONSOLE_SCRIPT, "load", *arts, "--store", str(kb), "--batch-relationships", "1",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = load.communicate(timeout=900)
    finally:
        stop.touch()
    assert load.returncode == 0, err[-1000:]
    rows = _collect(readers)
    errors = [r["error"] for r in rows if "error" in r]
    assert not errors, f"{len(errors)} of {len(rows)} reads failed, e.g. {errors[0]}"
    during = [r for r in rows if len(r["runs"]) < len(arts)]
    assert len(during) >= 10, "the readers did not overlap the load; make it longer"
    for r in rows:
        assert all(n == g for _, _, n, g in r["runs"]) and r["named"] == len(r["runs"])


def test_replace_swaps_runs_without_a_gap(store_kind, tmp_path, request, kbh):
    """50+ queries while `load --replace` rewrites 40 runs with a new version: every query succeeds and
    sees all 40 runs, each whole and either its old or its new version (the embedded store swaps the
    whole batch at once)."""
    n = 40
    old = big_artifacts(tmp_path / "old", n, 1.0)
    new = big_artifacts(tmp_path / "new", n, 2.0)
    old_c, new_c = [Circuit.load(p) for p in old], [Circuit.load(p) for p in new]
    assert [c.key for c in old_c] == [c.key for c in new_c]
    kb = tmp_path / "kb.lbug"
    args, env = kbh.store_args(store_kind, request, kb)
    server = request.getfixturevalue("neo4j_clean") if store_kind == "neo4j" else None
    first = invoke(["load", *old, *args, "--quiet"], env=env)
    assert first.exit_code == 0, first.stderr
    old_v, new_v = '{"version": 1.0}', '{"version": 2.0}'
    stop = tmp_path / "stop"
    readers = _readers(kb, stop, 3, 10_000) if store_kind == "ladybug" else []
    load = subprocess.Popen([CONSOLE_SCRIPT, "load", *new, *args, "--replace", "--quiet"],
                            env=process_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_start = time.time()
    if store_kind == "ladybug":
        try:
            out, err = load.communicate(timeout=900)
        finally:
            t_end = time.time()
            stop.touch()
        rows = _collect(readers)
    else:
        def query(_: int) -> dict:
            t0 = time.time()
            try:
                with Neo4jStore(server.uri, user=server.user, password=server.password,
                                database=server.database, read_only=True) as st:
                    runs = st.run_query(
                        "MATCH (r:Run) WHERE r.status = 'complete' OPTIONAL MATCH (r)-[:HAS_GROUP]->(g) "
                        "RETURN r.key AS k, r.timings AS d, r.n_groups AS n, count(g) AS g")
                    named = len(queries.runs(st))
                return {"t0": t0, "t1": time.time(), "runs": runs.values.tolist(), "named": named}
            except Exception as e:  # noqa: BLE001 - recorded and asserted on below
                return {"t0": t0, "t1": time.time(), "error": f"{type(e).__name__}: {e}"}

        rows = []
        with ThreadPoolExecutor(5) as pool:
            while load.poll() is None or len(rows) < 50:
                rows += list(pool.map(query, range(10)))
                if len(rows) > 2000:
                    break
        out, err = load.communicate(timeout=900)
        t_end = time.time()
    assert load.returncode == 0, err[-1000:]
    assert out.count("replaced ") == n
    assert len(rows) >= 50
    errors = [r["error"] for r in rows if "error" in r]
    assert not errors, f"{len(errors)} of {len(rows)} queries failed, e.g. {errors[0]}"
    during = [r for r in rows if r["t0"] >= t_start and r["t1"] <= t_end]
    assert during, "no query ran while the load replaced the runs"
    keys = sorted(c.key for c in old_c)
    for r in rows:
        seen = sorted(k for k, *_ in r["runs"])
        assert seen == keys and r["named"] == n, f"a query saw {len(seen)} of {n} runs"
        for _, d, groups, linked in r["runs"]:
            assert d in (old_v, new_v) and groups == linked
        if store_kind == "ladybug":
            assert len({d for _, d, *_ in r["runs"]}) == 1, "a reader saw a mix of old and new runs"
    with (LadybugStore(kb, read_only=True) if store_kind == "ladybug" else
          Neo4jStore(server.uri, user=server.user, password=server.password, database=server.database,
                     read_only=True)) as st:
        got = dict(st.run_query("MATCH (r:Run) RETURN r.key AS k, r.timings AS d").values.tolist())
        assert got == {c.key: new_v for c in new_c}
        assert st.counts() == kbh.expected_counts(new_c) | {k: 0 for k in ("Concept", "Image", "LABELED",
                                                                          "ACTIVATES")}


# -- concurrent Neo4j writers ----------------------------------------------------------------------

WRITER = r"""
import json, sys, time
from pathlib import Path
from neurflow_kb.store import Neo4jStore
from neurflow_kb_dev.synthetic import synthetic_circuit
uri, user, db, start, classes, batch = sys.argv[1:7]
chain = (("conv", 64), ("b1", 96), ("b2", 96), ("b3", 128), ("logits", 40))
circuits = [synthetic_circuit(int(c), chain=chain, nodes_per_layer=(3, 12, 24, 30), tau=8, model="race",
                              weights="w1", seed=0) for c in classes.split(",")]
import os
with Neo4jStore(uri, user=user, database=db) as st:
    st.batch_relationships = int(batch)
    while not Path(start).exists():
        time.sleep(0.005)
    res = st.write_circuits(circuits)
print(json.dumps([[r.key, r.status] for r in res]))
"""


def _writers(server, tmp_path: Path, orders: list[list[int]], batch: int = 1) -> list[list[list[str]]]:
    start = tmp_path / f"start-{time.monotonic_ns()}"
    env = dict(os.environ, NEO4J_PASSWORD=server.password)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, server.uri, server.user, server.database,
                               str(start), ",".join(map(str, order)), str(batch)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for order in orders]
    time.sleep(3.0)   # all of them connected and waiting
    start.touch()
    done = [p.communicate(timeout=600) for p in procs]       # every writer reaped before asserting
    for p, (_, err) in zip(procs, done, strict=True):
        assert p.returncode == 0, err[-3000:]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in done]


def _race_circuits(classes):
    chain = (("conv", 64), ("b1", 96), ("b2", 96), ("b3", 128), ("logits", 40))
    return [synthetic_circuit(c, chain=chain, nodes_per_layer=(3, 12, 24, 30), tau=8, model="race",
                              weights="w1", seed=0) for c in classes]


@pytest.mark.neo4j
@pytest.mark.parametrize("round_", [1, 2])
def test_four_writers_on_a_new_model_leave_one_of_each(neo4j_clean, tmp_path, kbh, round_):
    """Four processes write overlapping classes of a model the database does not have yet: exactly one
    HAS_LAYER per layer, HAS_NEURON per neuron, HAS_CLASS and UNIT per class, and every run written
    once (one process says written, the others skipped)."""
    server = neo4j_clean
    classes = list(range(8))
    rng = np.random.default_rng(round_)
    orders = [list(rng.permutation(classes)) for _ in range(4)]
    outs = _writers(server, tmp_path, [[int(c) for c in o] for o in orders])
    by_key: dict[str, list[str]] = {}
    for out in outs:
        for key, status in out:
            by_key.setdefault(key, []).append(status)
    assert len(by_key) == len(classes)
    for key, statuses in by_key.items():
        assert sorted(statuses) == ["skipped"] * 3 + ["written"], (key, statuses)
    circuits = _race_circuits(classes)
    with Neo4jStore(server.uri, user=server.user, password=server.password, database=server.database,
                    read_only=True) as st:
        got = st.counts()
        assert got == kbh.expected_counts(circuits) | {k: 0 for k in ("Concept", "Image", "LABELED",
                                                                      "ACTIVATES")}
        dup = st.run_query("MATCH (a)-[e]->(b) WITH a, b, type(e) AS t, count(e) AS n WHERE n > 1 AND t IN "
                           "['HAS_LAYER', 'HAS_NEURON', 'HAS_CLASS', 'UNIT'] RETURN t, count(*) AS pairs")
        assert dup.empty, dup
        assert st.run_keys("writing") == []
        left = st.run_query("MATCH (r:Run) WHERE r.writer IS NOT NULL OR r.lease_until IS NOT NULL "
                            "RETURN count(r) AS n")
        assert left["n"][0] == 0


@pytest.mark.neo4j
def test_two_writers_racing_one_run_end_with_one_written_and_one_skipped(neo4j_clean, tmp_path, kbh):
    server = neo4j_clean
    for attempt in range(3):
        outs = _writers(server, tmp_path, [[3], [3]], batch=250_000)
        assert sorted(s for out in outs for _, s in out) == ["skipped", "written"], (attempt, outs)
        if attempt < 2:
            with Neo4jStore(server.uri, user=server.user, password=server.password,
                            database=server.database) as st:
                st.delete_run(outs[0][0][0])
    with Neo4jStore(server.uri, user=server.user, password=server.password, database=server.database,
                    read_only=True) as st:
        assert st.counts() == kbh.expected_counts(_race_circuits([3])) | {
            k: 0 for k in ("Concept", "Image", "LABELED", "ACTIVATES")}


@pytest.mark.neo4j
def test_a_stale_claim_is_taken_over_and_a_live_one_waited_for(neo4j_store, kbh, monkeypatch):
    """A run left 'writing' by a dead writer (lease lapsed) is recovered at once; one whose writer still
    holds a lease is waited for until the lease lapses (then recovered), or until that writer finishes
    (then skipped)."""
    st = neo4j_store
    st.write_circuit(kbh.toy_circuit(0))
    for c in (kbh.toy_circuit(1), kbh.toy_circuit(2), kbh.toy_circuit(3)):
        st.write_circuit(c)
    full = st.counts()

    def leave_claim(key: str, lease_ms: int) -> None:
        st.run_query("MATCH (r:Run {key: $k}) SET r.status = 'writing', r.writer = 'other', "
                     "r.lease_until = timestamp() + $ms", {"k": key, "ms": lease_ms}, write=True)
        st.run_query("MATCH (g:NeuronGroup {run: $k})-[d:DRIVES]->(:Class) DELETE d", {"k": key}, write=True)

    dead, alive, finishing = kbh.toy_circuit(1), kbh.toy_circuit(2), kbh.toy_circuit(3)
    leave_claim(dead.key, -1000)
    t0 = time.monotonic()
    assert st.write_circuit(dead).status == "recovered"
    assert time.monotonic() - t0 < 5

    leave_claim(alive.key, 4000)
    t0 = time.monotonic()
    assert st.write_circuit(alive).status == "recovered"
    assert time.monotonic() - t0 >= 3.0

    leave_claim(finishing.key, 60_000)
    other_status: list[str] = []

    def other_writer_finishes() -> None:
        time.sleep(2.0)
        with Neo4jStore(st.uri, user=st.user, password=st._password, database=st.database) as other:
            other.delete_run(finishing.key)       # the other writer's own leftover, then its write
            other_status.append(other.write_circuit(finishing).status)

    t = threading.Thread(target=other_writer_finishes)
    t.start()
    t0 = time.monotonic()
    res = st.write_circuit(finishing)
    t.join()
    # this writer waited for the live claim; then exactly one of the two wrote the run
    assert time.monotonic() - t0 >= 1.5
    assert sorted([res.status, *other_status]) == ["skipped", "written"]
    assert st.counts() == full


def test_a_second_embedded_writer_is_told_who_holds_the_file(tmp_path, kbh):
    kb = tmp_path / "kb.lbug"
    kbh.toy_circuit(1).save(tmp_path / "a1")
    with LadybugStore(kb) as st:
        st.write_circuit(kbh.toy_circuit(0))
        out = console(["load", "--store", str(kb), str(tmp_path / "a1")])   # the lock is another process's
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip()
    assert len(line.splitlines()) == 1 and "in use by another writer" in line
    assert f"process {os.getpid()}" in line and "python" in line.split(f"process {os.getpid()}")[1]
