"""Distributed ingest without a cluster: static shards cover every class exactly once, the shard option
refuses bad input in one line, `--ray` without Ray is one line and exit 2, the cluster room never imports
the store and imports Ray only when a pool starts."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from hypothesis import given, settings
from hypothesis import strategies as st

import neurflow_kb
from neurflow_kb.cluster import RayOptions, parse_shard, shard_classes
from neurflow_kb.errors import UserError
from neurflow_kb_dev.cli_runs import invoke

PACKAGE = Path(neurflow_kb.__file__).resolve().parent


@settings(max_examples=200, deadline=None)
@given(classes=st.lists(st.integers(0, 999), min_size=1, max_size=300), count=st.integers(1, 40))
def test_shards_cover_every_class_exactly_once(classes: list[int], count: int) -> None:
    slices = [shard_classes(classes, i, count) for i in range(count)]
    flat = [c for s in slices for c in s]
    assert sorted(flat) == sorted(set(classes))                      # every class, none twice
    sizes = [len(s) for s in slices]
    assert max(sizes) - min(sizes) <= 1                              # balanced
    assert shard_classes(list(reversed(classes)), 0, count) == slices[0]   # typed order does not matter


def test_shards_are_round_robin_over_sorted_classes() -> None:
    assert shard_classes(range(10), 0, 3) == [0, 3, 6, 9]
    assert shard_classes(range(10), 2, 3) == [2, 5, 8]
    assert shard_classes([7, 3, 3, 5], 1, 2) == [5]
    assert parse_shard("3/8") == (3, 8) and parse_shard(" 0 / 1 ") == (0, 1)


@pytest.mark.parametrize("text", ["8/8", "-1/4", "1/0", "1", "a/b", "1/2/3", "", "9" * 40 + "/2"])
def test_bad_shards_are_one_line(text: str) -> None:
    with pytest.raises(UserError) as e:
        parse_shard(text)
    assert "\n" not in str(e.value) and "--shard" in str(e.value)


@pytest.mark.parametrize("kw, word", [({"workers": 0}, "--workers"), ({"gpus_per_worker": -1}, "--gpus"),
                                      ({"cpus_per_worker": 0}, "--cpus"), ({"max_retries": -1}, "--max"),
                                      ({"address": " "}, "--ray")])
def test_ray_options_are_checked(kw: dict, word: str) -> None:
    with pytest.raises(UserError, match=word):
        RayOptions(**kw)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def test_cluster_room_never_imports_the_store_or_the_engine() -> None:
    files = sorted((PACKAGE / "cluster").glob("*.py"))
    assert len(files) >= 3
    for f in files:
        bad = {n for n in _imports(f) if "store" in n.split(".") or "engine" in n.split(".")
               or "pipeline" in n.split(".")}
        assert not bad, (f.name, bad)


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch, *, block_ray: bool) -> Result:
    """`neurflow-kb ARGS` in-process (the console script's group: exit code 2, one stderr line)."""
    if block_ray:
        monkeypatch.setitem(sys.modules, "ray", None)          # `import ray` then fails, as when absent
    return invoke(args)


def test_ray_without_ray_installed_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    images = tmp_path / "val"
    images.mkdir()
    arts = tmp_path / "arts"
    r = _cli(["ingest", "world", "--classes", "0-3", "--images", str(images), "--artifacts", str(arts),
              "--store", str(tmp_path / "kb.lbug"), "--ray", "local", "--quiet"], monkeypatch, block_ray=True)
    assert r.exit_code == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert err == ["Error: --ray needs Ray, which is not installed: pip install 'neurflow-kb[cluster]'"]
    assert not arts.exists() and not (tmp_path / "kb.lbug").exists()        # refused before any work


def test_an_address_where_no_ray_answers_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:          # a port nothing listens on: bound, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    images = tmp_path / "val"
    images.mkdir()
    r = _cli(["ingest", "world", "--classes", "0", "--images", str(images), "--artifacts",
              str(tmp_path / "arts"), "--no-load", "--quiet", "--ray", f"127.0.0.1:{port}"], monkeypatch,
             block_ray=False)
    assert r.exit_code == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and f"cannot reach a Ray cluster at 127.0.0.1:{port}" in err[0], err
    assert not (tmp_path / "arts").exists()
    with pytest.raises(UserError, match="is not local, auto, HOST:PORT"):
        RayOptions("somewhere").check_reachable()


@pytest.mark.slow          # a fresh interpreter
def test_importing_the_cluster_room_does_not_import_ray() -> None:
    code = "import sys, neurflow_kb.cluster, neurflow_kb.pipeline; print('ray' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("args, word", [
    (["--shard", "0/2", "--ray", "local"], "use one of them"),
    (["--gpus-per-worker", "1"], "--gpus-per-worker only applies with --ray"),
    (["--max-retries", "2"], "--max-retries only applies with --ray"),
    (["--shard", "2/2"], "--shard 2/2 is out of range"),
])
def test_cli_refuses_mixed_or_bad_distribution_options(tmp_path: Path, args: list[str], word: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    images = tmp_path / "val"
    images.mkdir()
    r = _cli(["ingest", "world", "--classes", "0-3", "--images", str(images), "--artifacts",
              str(tmp_path / "arts"), "--no-load", "--quiet", *args], monkeypatch, block_ray=False)
    assert r.exit_code == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and word in r.stderr, r.stderr
