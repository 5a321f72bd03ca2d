"""A `neurflow-kb load` killed with SIGKILL part-way leaves no visible partial run, running it again
completes the knowledge base, and readers in other processes work while a writer holds the file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from neurflow_kb import queries
from neurflow_kb.store import LadybugStore, Neo4jStore
from neurflow_kb_dev.cli_runs import CONSOLE_SCRIPT, console, invoke, process_env
from neurflow_kb_dev.synthetic import synthetic_circuit

#: Real processes (killed and size-limited writer processes over big artifacts): not in the fast suite.
pytestmark = pytest.mark.slow


def big_artifacts(tmp_path, n: int) -> list[str]:
    """`n` saved circuits shaped like ResNet-50 ones (about 5,000 relationships each)."""
    paths = []
    for i in range(n):
        p = tmp_path / f"art{i:02d}"
        synthetic_circuit(i, nodes_per_layer=(3, 24, 100, 200)).save(p)
        paths.append(str(p))
    return paths


def reader(kind: str, path, server):
    if kind == "ladybug":
        return LadybugStore(path, read_only=True)
    return Neo4jStore(server.uri, user=server.user, password=server.password, database=server.database,
                      read_only=True)


def _check_visible_runs_whole(st) -> set[str]:
    """Every run queries see is complete and whole; returns their keys."""
    complete = set(st.run_keys())
    visible = queries.runs(st)
    assert set(visible["run"]) == complete
    for key, groups in zip(visible["run"], visible["groups"], strict=True):
        n = st.run_query("MATCH (g:NeuronGroup) WHERE g.run = $k RETURN count(g) AS n", {"k": key})["n"][0]
        assert n == groups
    return complete


def test_sigkill_mid_load_hides_the_partial_run_and_reload_completes(store_kind, tmp_path, request, kbh):
    """Neo4j writes a run in bulk while its status hides it: a SIGKILL leaves a 'writing' run that no
    query sees and that the next load takes over once the dead writer's lease lapses. The embedded
    store writes each batch in one transaction: a SIGKILL leaves nothing of the batch at all."""
    server = request.getfixturevalue("neo4j_clean") if store_kind == "neo4j" else None
    kb = tmp_path / "kb.lbug"
    arts = big_artifacts(tmp_path, 8)
    args, env = kbh.store_args(store_kind, request, kb)
    env["NEURFLOW_KB_LEASE_SECONDS"] = "3"
    cmd = [CONSOLE_SCRIPT, "load", *arts, *args, "--batch-relationships", "1", "--quiet"]
    partial: list[str] = []
    for _attempt in range(4):
        # kill the writer once a run is complete and the next one under way: on Neo4j the moment a run
        # is half-written (status 'writing'); on the embedded store while it writes its next batch
        proc = subprocess.Popen(cmd, env=process_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        killed = False
        deadline = time.monotonic() + 240
        try:
            if store_kind == "ladybug":
                first = proc.stdout.readline()          # one batch committed, the next one begins
                assert first.startswith("written"), proc.stderr.read()[-500:]
                time.sleep(0.3)
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = True
            while not killed and proc.poll() is None and time.monotonic() < deadline:
                try:
                    with reader(store_kind, kb, server) as st:
                        if st.run_keys("writing") and st.run_keys("complete"):
                            os.kill(proc.pid, signal.SIGKILL)
                            killed = True
                            break
                except Exception:  # the file may be mid-creation or without schema yet: poll again
                    pass
                time.sleep(0.02)
        finally:
            if proc.poll() is None and not killed:
                proc.kill()
            proc.wait()
        assert killed, f"the load finished before it could be killed mid-run: {proc.stderr.read()[-500:]}"
        assert proc.returncode == -signal.SIGKILL
        with reader(store_kind, kb, server) as st:
            partial = st.run_keys("writing")
            complete = _check_visible_runs_whole(st)
        if store_kind == "ladybug":
            assert partial == [] and 0 < len(complete) < len(arts)
            break
        if partial:
            break
    assert store_kind == "ladybug" or partial, "every kill landed between two runs"

    with reader(store_kind, kb, server) as st:
        complete = _check_visible_runs_whole(st)
        assert complete and not complete & set(partial)
        for key in partial:
            assert not (queries.drivers(st, 0, limit=1000)["run"] == key).any()
            cls = int(st.run_query("MATCH (r:Run) WHERE r.key = $k RETURN r.target_class AS c",
                                   {"k": key})["c"][0])
            assert queries.drivers(st, cls).empty and queries.circuit(st, cls).empty

    rerun = invoke(cmd[1:], env=env)
    assert rerun.exit_code == 0, rerun.stderr
    if partial:
        assert "recovered" in rerun.stdout
    from neurflow_kb.artifact import Circuit

    circuits = [Circuit.load(p) for p in arts]
    with reader(store_kind, kb, server) as st:
        assert st.run_keys("writing") == []
        assert set(st.run_keys()) == {c.key for c in circuits}
        assert st.counts() == kbh.expected_counts(circuits) | {
            k: 0 for k in ("Concept", "Image", "LABELED", "ACTIVATES")}


def test_queries_from_another_process_while_a_writer_holds_the_file(tmp_path, kbh):
    kb = tmp_path / "kb.lbug"
    arts = big_artifacts(tmp_path, 14)
    proc = subprocess.Popen([CONSOLE_SCRIPT, "load", *arts, "--store", str(kb), "--batch-relationships", "1",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # the first run is complete; the writer goes on with the others
        assert first.startswith("written"), proc.stderr.read()[-500:]
        out = console(["query", "runs", "--store", str(kb), "--json"])    # a reader in another process
        still_writing = proc.poll() is None
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)
        assert rows and all(r["groups"] > 0 for r in rows)
        assert still_writing, "the writer finished before the reader ran; make the load longer"
        # and through the Python API, read-only, while the writer still holds the file
        if proc.poll() is None:
            with LadybugStore(kb, read_only=True) as st:
                assert len(queries.models(st)) == 1
    finally:
        rest, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    with LadybugStore(kb, read_only=True) as st:
        assert len(st.run_keys()) == len(arts)


def test_a_second_writer_gets_a_clear_error(tmp_path, kbh):
    kb = tmp_path / "kb.lbug"
    with LadybugStore(kb) as st:
        st.write_circuit(kbh.toy_circuit(0))
        out = invoke(["load", "--store", str(kb), str(tmp_path / "missing")])
        assert out.exit_code == 2 and "not a folder" in out.stderr
        kbh.toy_circuit(1).save(tmp_path / "a1")
        out = console(["load", "--store", str(kb), str(tmp_path / "a1")])     # the lock is another process's
        assert out.returncode == 2, out.stderr
        assert "in use by another writer" in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.fixture(autouse=True)
def _few_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _limited(max_bytes: int):
    """A preexec_fn giving the child a file-size limit (RLIMIT_FSIZE): writes past it fail with EFBIG,
    as writes on a full disk fail with ENOSPC (SIGXFSZ ignored so the write returns the error)."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return apply


@pytest.mark.parametrize("replace", [False, True])
def test_a_full_disk_gives_one_line_and_leaves_only_complete_runs(tmp_path, kbh, replace):
    """A load that runs out of file space ends in one line (no traceback); readers then open the file
    at once (no 60 s wait for a writer that is gone) and see complete runs only; loading again with
    space completes the knowledge base."""
    from neurflow_kb.artifact import Circuit

    kb = tmp_path / "kb.lbug"
    arts = big_artifacts(tmp_path, 12)
    first = invoke(["load", *(arts[:6] if replace else arts[:1]), "--store", str(kb), "--quiet"])
    assert first.exit_code == 0, first.stderr
    size = kb.stat().st_size
    cmd = [CONSOLE_SCRIPT, "load", *arts, "--store", str(kb), "--quiet"] + (["--replace"] if replace else [])
    full = subprocess.run(cmd, preexec_fn=_limited(size + (256 << 10)), capture_output=True, text=True,
                          timeout=600)
    assert full.returncode == 2, (full.stdout[-500:], full.stderr[-2000:])
    line = full.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("Error: ") and "File too large" in line, line
    assert "Traceback" not in full.stderr
    # a reader that cannot write either (the disk still full) is told so at once, in one line
    t0 = time.monotonic()
    stuck = subprocess.run([CONSOLE_SCRIPT, "query", "runs", "--store", str(kb)], preexec_fn=_limited(size),
                           capture_output=True, text=True, timeout=120)
    assert time.monotonic() - t0 < 20, "a reader waited for a writer that is gone"
    assert stuck.returncode == 0 or (stuck.returncode == 2 and len(stuck.stderr.strip().splitlines()) == 1
                                     and "free disk space" in stuck.stderr), stuck.stderr
    t0 = time.monotonic()
    with LadybugStore(kb, read_only=True) as st:
        assert time.monotonic() - t0 < 20
        assert st.run_keys("writing") == []
        complete = _check_visible_runs_whole(st)
    assert complete <= {Circuit.load(p).key for p in arts}
    again = invoke(cmd[1:])
    assert again.exit_code == 0, again.stderr
    circuits = [Circuit.load(p) for p in arts]
    with LadybugStore(kb, read_only=True) as st:
        assert set(st.run_keys()) == {c.key for c in circuits}
        assert st.counts() == kbh.expected_counts(circuits) | {
            k: 0 for k in ("Concept", "Image", "LABELED", "ACTIVATES")}
