"""Distributed ingest on a real local Ray (two workers on this 2-core machine, loopback only, no usage
statistics): a worker SIGKILLed in the middle of a class is restarted and the class retried, a class
whose image changed after the plan is reported in one line while the others finish, the driver is the
single loader, and the knowledge base (embedded and Neo4j) equals a single-process ingest of the same
classes, CLIP labels (computed on the workers) included; a second pass reuses everything, starts no
Ray and writes nothing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from neurflow_kb.cluster import ActorPool, RayCluster, RayOptions
from neurflow_kb.config import NeurFlowConfig
from neurflow_kb.errors import UserError
from neurflow_kb.labels import load_clip, load_vocabulary
from neurflow_kb.pipeline import LabelSpec, Recipe, ingest, ingest_plan, plan_ingest
from neurflow_kb.store import LadybugStore, Neo4jStore
from neurflow_kb.world import CONCEPTS, generate, world_clip_dir
from neurflow_kb_dev.cli_runs import console

pytestmark = pytest.mark.slow

CONFIG = NeurFlowConfig(tau=2, top_k=4, ig_steps=2, max_nodes_per_layer=3, max_subconcepts=2,
                        strategy="batched", class_filter="true")
RECIPE = Recipe(model="world", layers=["layer3", "layer4", "fc"])
GOOD, BAD = [0, 1, 2, 3], 4
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@pytest.fixture(scope="module")
def ray_local() -> Iterator[RayCluster]:
    """One private local Ray for the module (start-up takes 10-30 s here), shut down afterwards."""
    temp = tempfile.mkdtemp(prefix="nkr", dir="/tmp")   # short: Ray's socket paths must fit 107 bytes
    options = RayOptions("local", num_cpus=2, num_gpus=0, object_store_memory=256 * 2**20, temp_dir=temp)
    try:
        with RayCluster(options) as cluster:
            assert cluster.owned
            yield cluster
        assert not cluster.ray.is_initialized()
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _ray_processes() -> list[psutil.Process]:
    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def test_every_ray_server_listens_on_loopback_only(ray_local: RayCluster) -> None:
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    sockets = []
    names = set()
    for proc in _ray_processes():
        try:
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN or c.type == socket.SOCK_DGRAM:
                sockets.append((name, c.laddr.ip, c.laddr.port))
                names.add(name)
    assert {"gcs_server", "raylet"} <= names, names                   # Ray's servers were seen
    exposed = [s for s in sockets if s[1] not in LOOPBACK]
    assert not exposed, exposed
    assert ray_local.ray.util.get_node_ip_address() == "127.0.0.1"


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> LabelSpec:
    """The world's tiny CLIP and its concepts: workers get it through the object store and label there."""
    vocab = tmp_path_factory.mktemp("vocab") / "world.txt"
    vocab.write_text("\n".join(CONCEPTS) + "\n")
    return LabelSpec(load_clip("ViT-B-32", "openai", str(world_clip_dir())), load_vocabulary(str(vocab)),
                     top_n=3, templates=("{}", "a photo of {}"))


def _world(root: Path) -> Path:
    batch = generate(4 * 5, seed=11, classes=[*GOOD, BAD])
    batch.save(root, layout="index", image_format="jpg", size=96)
    return root


class Killer(threading.Thread):
    """SIGKILLs the first Ray worker seen executing `_Worker.run` (computing a class), shortly after it
    started, and records its pid."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed: list[tuple[int, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for proc in psutil.Process().children(recursive=True):
                try:
                    title = " ".join(proc.cmdline()).strip()
                except psutil.Error:
                    continue
                if title.startswith("ray::_Worker.run"):
                    time.sleep(0.4)
                    title = " ".join(proc.cmdline()).strip()     # still inside the class
                    if title.startswith("ray::_Worker.run"):
                        os.kill(proc.pid, signal.SIGKILL)
                        self.killed.append((proc.pid, title))
                        return
            time.sleep(0.05)


def _open(kind: str, request: pytest.FixtureRequest, path: Path, wipe: bool = True):
    """A writable store of `kind`: the embedded file at `path`, or the test Neo4j (emptied if `wipe`)."""
    if kind == "ladybug":
        return LadybugStore(path)
    server = request.getfixturevalue("neo4j_server")
    if wipe:
        server.wipe()
    return Neo4jStore(server.uri, user=server.user, password=server.password, database=server.database)


def test_ray_ingest_survives_a_killed_worker_and_equals_a_single_process_ingest(
        store_kind: str, ray_local: RayCluster, labels: LabelSpec, tmp_path: Path,
        request: pytest.FixtureRequest, kbh) -> None:
    images = _world(tmp_path / "val")

    # the reference: a single-process ingest of the good classes
    with _open(store_kind, request, tmp_path / "ref.lbug") as ref:
        single = ingest(RECIPE, GOOD, images, ref, CONFIG, artifacts=tmp_path / "single", progress=False,
                        workers=0, labels=labels)
        assert [r.status for r in single.classes] == ["written"] * 4
        expected = kbh.kb_tables(ref)
    assert len(expected["LABELED:NeuronGroup->Concept"]) > 0
    keys = {r.cls: r.key for r in single.classes}

    # plan once in the driver; then one image of the bad class changes on the shared storage
    arts = tmp_path / "shared"
    plan = plan_ingest(RECIPE, [*GOOD, BAD], images, config=CONFIG, artifacts=arts, progress=False,
                       workers=0)
    assert {j.cls: j.key for j in plan.jobs if j.cls in GOOD} == keys
    bad_job = next(j for j in plan.jobs if j.cls == BAD)
    changed = plan.predictions.records.files[int(bad_job.positions[0])]
    pixels = np.array(Image.open(changed))
    Image.fromarray(255 - pixels).save(changed, quality=90)

    lines: list[str] = []
    killer = Killer()
    killer.start()
    options = RayOptions("local", workers=2, max_retries=3)
    with _open(store_kind, request, tmp_path / "kb.lbug") as kb:
        res = ingest_plan(plan, kb, ray=options, labels=labels, progress=False,
                          on_class=lambda r: lines.append(r.line()))
        killer.stop.set()
        killer.join()
        got = kbh.kb_tables(kb)
        assert kb.run_keys(status="writing") == []                  # nothing partial visible
        assert sorted(kb.run_keys()) == sorted(keys.values())

    assert len(killer.killed) == 1, "a worker was killed in the middle of a class"
    killed_pid = killer.killed[0][0]
    by_cls = {r.cls: r for r in res.classes}
    for c in GOOD:                                                   # each good class: one complete run
        assert by_cls[c].status == "written" and by_cls[c].key == keys[c], by_cls[c]
        assert not by_cls[c].worker.endswith(f":{killed_pid}")      # the killed worker finished nothing
    assert res.run["mode"] == "ray" and res.run["workers"] == 2
    assert res.run["replaced_workers"] == 0                          # Ray restarted it and retried the class
    assert res.run["loader_classes"] == 4
    bad = by_cls[BAD]
    assert bad.status == "failed" and res.failed == [bad]
    bad_lines = [ln for ln in lines if ln.startswith("failed")]
    assert bad_lines == [bad.line()] and "\n" not in bad.line()
    assert f"failed class {BAD} " in bad.line() and "changed after the prediction pass" in bad.line()
    kbh.frames_equal(got, expected)                                  # same run keys, same rows

    # a second pass: everything reused by the driver, Ray not started, nothing written
    with _open(store_kind, request, tmp_path / "kb.lbug", wipe=False) as kb:
        again = ingest(RECIPE, GOOD, images, kb, CONFIG, artifacts=arts, progress=False, workers=0,
                       ray=options, labels=labels)
        after = kbh.kb_tables(kb)
    assert [r.status for r in again.classes] == ["skipped"] * 4 and all(r.reused for r in again.classes)
    assert again.run["workers"] == 0
    assert again.predicted == 1                                      # only the changed file, predicted anew
    assert sum(r.relationships for r in again.classes) == 0
    kbh.frames_equal(after, got)


def test_a_job_that_keeps_killing_its_worker_is_reported_and_the_others_finish(ray_local: RayCluster) -> None:
    """The pool itself, with plain functions: a poison job kills its worker every time; after the retries
    it comes back lost, its worker is replaced, and every other job is computed."""
    def setup(shared):
        return shared

    def work(state, job):
        if job == "poison":
            os.kill(os.getpid(), signal.SIGKILL)
        return state * job

    cluster = RayCluster(RayOptions("local", max_retries=1, cpus_per_worker=1))
    with cluster:
        assert not cluster.owned                                     # joined the module's Ray, left running
        pool = ActorPool(cluster, setup, 10, work, workers=2).start()
        outcomes = [o for batch in pool.map_unordered([1, "poison", 2, 3, 4]) for o in batch]
    assert ray_local.ray.is_initialized()
    by_job = {o.job: o for o in outcomes}
    assert {k: by_job[k].value for k in (1, 2, 3, 4)} == {1: 10, 2: 20, 3: 30, 4: 40}
    assert by_job["poison"].lost and "its worker died 2 times" in by_job["poison"].error
    assert pool.replaced == 1


def test_a_setup_error_stops_the_pool_in_one_line(ray_local: RayCluster) -> None:
    def setup(shared):
        raise UserError(f"no weights at {shared}; pass --weights PATH")

    with RayCluster(RayOptions("local", max_retries=0)) as cluster:
        with pytest.raises(UserError) as e:
            ActorPool(cluster, setup, "/nowhere", lambda s, j: j, workers=1).start()
    assert str(e.value) == "the workers could not start: no weights at /nowhere; pass --weights PATH"


def test_cli_ray_local_end_to_end(tmp_path: Path) -> None:
    """`neurflow-kb ingest ... --ray local` in its own process: its own private Ray, per-class lines, the
    Ray and loader summary; the second run reuses everything without starting Ray."""
    images = tmp_path / "val"
    generate(3 * 2, seed=12, classes=[5, 6]).save(images, layout="index", image_format="jpg", size=96)
    args = ["ingest", "world", "--layers", "layer3,layer4,fc", "--classes", "5,6", "--images", str(images),
            "--artifacts", str(tmp_path / "arts"), "--store", str(tmp_path / "kb.lbug"), "--filter", "true",
            "--tau", "2", "--top-k", "4", "--ig-steps", "2", "--max-nodes", "3", "--quiet", "--ray", "local",
            "--workers", "1", "--decode-workers", "0"]
    first = console(args, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    assert "written class 5 (" in out and "written class 6 (" in out
    assert "Ray at local: 1 workers" in out and "loader: 2 classes in" in out
    again = console(args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("(saved circuit reused)") == 2 and "Ray not started" in again.stdout
    assert "2 runs (2 skipped)" in again.stdout
