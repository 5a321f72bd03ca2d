"""Static shards without Ray (Slurm arrays, Kubernetes indexed jobs): three `ingest --shard I/3 --no-load`
processes started at once share one prediction pass through the artifacts folder (one predicts, the
others wait on its lock and read the cache), cover every class exactly once, write no store; `load` of
their folder equals a single-process ingest, and loading again changes nothing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from neurflow_kb.cluster import shard_classes
from neurflow_kb.config import NeurFlowConfig
from neurflow_kb.data import scan_images
from neurflow_kb.pipeline import Recipe, ingest
from neurflow_kb.store import LadybugStore, Neo4jStore
from neurflow_kb.world import generate
from neurflow_kb_dev.cli_runs import CONSOLE_SCRIPT, invoke

pytestmark = pytest.mark.slow

CHAIN = ["layer3", "layer4", "fc"]
CLASSES = [0, 1, 2, 3, 5, 6]           # class 4 has images but is not asked for
SHARDS = 3
ENGINE = ["--tau", "2", "--top-k", "4", "--ig-steps", "2", "--max-nodes", "3", "--filter", "true"]
CONFIG = NeurFlowConfig(tau=2, top_k=4, ig_steps=2, max_nodes_per_layer=3, class_filter="true")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory, kbh) -> dict:
    """World images, the shards' artifacts (three concurrent processes) and a single-process reference."""
    root = tmp_path_factory.mktemp("shards")
    images = root / "val"
    generate(3 * 7, seed=21, classes=list(range(7))).save(images, layout="index", image_format="jpg",
                                                          size=96)
    arts = root / "shared"
    spec = ",".join(str(c) for c in reversed(CLASSES))              # typed order does not matter
    args = [CONSOLE_SCRIPT, "ingest", "world", "--layers", ",".join(CHAIN), "--classes", spec, "--images",
            str(images), "--artifacts", str(arts), "--no-load", "--quiet", "--workers", "0", *ENGINE]
    procs = [subprocess.Popen([*args, "--shard", f"{i}/{SHARDS}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(SHARDS)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0] * SHARDS, [o[1][-2000:] for o in outs]
    reference = ingest(Recipe(model="world", layers=CHAIN), CLASSES, images, None, CONFIG,
                       artifacts=root / "single", progress=False, workers=0)
    return {"root": root, "images": images, "arts": arts, "outs": outs, "reference": reference}


def test_shards_cover_every_class_once_and_share_one_prediction_pass(sharded: dict) -> None:
    n = len(scan_images(sharded["images"]))
    saved: list[set[int]] = []
    predicted = []
    for i, (out, _) in enumerate(sharded["outs"]):
        saved.append({int(c) for c in re.findall(r"^saved class (\d+) ", out, re.M)})
        assert saved[-1] == set(shard_classes(CLASSES, i, SHARDS)), out
        assert "artifacts only (load them with `neurflow-kb load" in out
        predicted.append(int(re.search(r"prediction pass: (\d+) of (\d+) images", out).group(1)))
    assert set().union(*saved) == set(CLASSES) and sum(map(len, saved)) == len(CLASSES)
    assert sorted(predicted) == [0] * (SHARDS - 1) + [n]             # one pass between the three
    assert not list(sharded["root"].glob("*.lbug"))                  # --no-load: no store anywhere
    keys = {r.cls: r.key for r in sharded["reference"].classes}
    for (out, _) in sharded["outs"]:
        for cls, key in re.findall(r"^saved class (\d+) \(\w+\): run (\w+),", out, re.M):
            assert keys[int(cls)] == key


def test_load_of_the_shards_equals_a_single_process_ingest(sharded: dict, store_kind: str, kbh,
                                                           request: pytest.FixtureRequest) -> None:
    root = sharded["root"]
    args, env = kbh.store_args(store_kind, request, root / f"kb-{store_kind}.lbug")
    if store_kind == "neo4j":
        request.getfixturevalue("neo4j_server").wipe()
    r = invoke(["load", str(sharded["arts"]), "--quiet", *args], env=env)
    assert r.exit_code == 0, r.stderr
    assert f"{len(CLASSES)} runs ({len(CLASSES)} written)" in r.stdout
    with _store(store_kind, request, root / f"kb-{store_kind}.lbug") as kb:
        loaded = kbh.kb_tables(kb)
    again = invoke(["load", str(sharded["arts"]), "--quiet", *args], env=env)   # idempotent
    assert again.exit_code == 0 and f"{len(CLASSES)} runs ({len(CLASSES)} skipped)" in again.stdout

    if store_kind == "neo4j":
        request.getfixturevalue("neo4j_server").wipe()
    with _store(store_kind, request, root / f"ref-{store_kind}.lbug") as ref:   # reuses its artifacts
        single = ingest(Recipe(model="world", layers=CHAIN), CLASSES, sharded["images"], ref, CONFIG,
                        artifacts=root / "single", progress=False, workers=0)
        assert {r.status for r in single.classes} == {"written"} and all(r.reused for r in single.classes)
        expected = kbh.kb_tables(ref)
    assert sorted(expected["Run"]["key"]) == sorted(r.key for r in sharded["reference"].classes)
    kbh.frames_equal(loaded, expected)


def test_plan_only_reads_the_shared_plan_and_computes_nothing(sharded: dict) -> None:
    r = invoke(["ingest", "world", "--layers", ",".join(CHAIN), "--classes", "0-6", "--images",
                str(sharded["images"]), "--artifacts", str(sharded["arts"]), "--plan-only", "--quiet",
                "--workers", "0", *ENGINE])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert sum("(saved circuit reused)" in ln for ln in lines if ln.startswith("planned")) == len(CLASSES)
    assert sum(ln.startswith("planned class 4 ") and "reused" not in ln for ln in lines) == 1
    assert "plan: 1 classes to compute, 6 reused, 0 without images; prediction pass: 0 of" in r.stdout


def _store(kind: str, request: pytest.FixtureRequest, path: Path):
    if kind == "ladybug":
        return LadybugStore(path)
    s = request.getfixturevalue("neo4j_server")
    return Neo4jStore(s.uri, user=s.user, password=s.password, database=s.database)
