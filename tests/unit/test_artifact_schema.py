"""Artifacts are validated at the boundary with one schema: every violation is one `UserError` line
naming the file, the field and the fix; `neurflow-kb load` exits 2 and writes nothing to the store."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from artifact_helpers import world_circuit

from neurflow_kb import Circuit
from neurflow_kb.errors import UserError
from neurflow_kb_dev.cli_runs import invoke, one_line_error


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return world_circuit().save(tmp_path_factory.mktemp("schema") / "base")


def _copy(base: Path, to: Path) -> Path:
    shutil.copytree(base, to)
    return to


def edit_manifest(folder: Path, change: Callable[[dict], object]) -> None:
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def edit_table(folder: Path, name: str, change: Callable[[pd.DataFrame], pd.DataFrame | None]) -> None:
    path = folder / f"{name}.parquet"
    df = pd.read_parquet(path)
    out = change(df)
    (df if out is None else out).to_parquet(path, index=False)


def _set(df: pd.DataFrame, column: str, value: object, row: int = 0) -> pd.DataFrame:
    df = df.copy()
    if not isinstance(value, int | float | np.number):
        df[column] = df[column].astype(object)
    df.loc[row, column] = value
    return df


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


#: The first bytes of a PNG claiming 1,000,000 x 1,000,000 pixels (a decompression bomb's header).
BOMB_HEADER = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (10**6).to_bytes(4, "big") * 2
               + b"\x08\x02\x00\x00\x00")

CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "class out of range": (lambda d: edit_manifest(d, lambda m: m.update(target_class=5000)),
                           ("manifest.json", "target_class", "5000")),
    "huge num_classes": (lambda d: edit_manifest(d, lambda m: m.update(num_classes=3_000_000_000)),
                         ("manifest.json", "num_classes")),
    "class index 20 digits": (lambda d: edit_manifest(d, lambda m: m.update(target_class=10**20)),
                              ("target_class",)),
    "manifest is a list": (lambda d: (d / "manifest.json").write_text("[1, 2]"), ("manifest.json", "list")),
    "manifest truncated": (lambda d: (d / "manifest.json").write_text((d / "manifest.json").read_text()[:40]),
                           ("manifest.json", "not valid JSON")),
    "manifest with NaN": (lambda d: (d / "manifest.json").write_text(
        (d / "manifest.json").read_text().replace('"n_images": 6', '"n_images": NaN')), ("NaN",)),
    "model missing": (lambda d: edit_manifest(d, lambda m: m.pop("model")), ("'model'", "missing")),
    "layers wrong type": (lambda d: edit_manifest(d, lambda m: m.update(layers="layer3,fc")), ("'layers'",)),
    "weights with a slash": (lambda d: edit_manifest(d, lambda m: m.update(weights="/tmp/w.pth")),
                             ("'weights'", "'/'")),
    "key edited": (lambda d: edit_manifest(d, lambda m: m.update(key="0" * 16)), ("'key'",)),
    "config tau text": (lambda d: edit_manifest(d, lambda m: m["config"].update(tau="many")),
                        ("'config'", "tau")),
    "NaN weight": (lambda d: edit_table(d, "edges", lambda df: _set(df, "weight", float("nan"))),
                   ("edges.parquet", "'weight'", "finite")),
    "inf influence": (lambda d: edit_table(d, "groups", lambda df: _set(df, "influence", float("inf"))),
                      ("groups.parquet", "'influence'")),
    "dangling group edge": (lambda d: edit_table(d, "group_edges", lambda df: _set(df, "lower_group", 77)),
                            ("group_edges.parquet", "lower_group", "groups.parquet lacks")),
    "neuron beyond channels": (lambda d: edit_table(d, "nodes", lambda df: _set(df, "neuron", 10**6)),
                               ("nodes.parquet", "'neuron'")),
    "node in a missing group": (lambda d: edit_table(d, "nodes", lambda df: _set(df, "group", 41)),
                                ("nodes.parquet", "'group'")),
    "exemplar of a missing image": (lambda d: edit_table(d, "exemplars", lambda df: _set(df, "image", 999)),
                                    ("exemplars.parquet", "'image'")),
    "text in an integer column": (lambda d: edit_table(d, "core", lambda df: df.assign(rank="first")),
                                  ("core.parquet", "'rank'", "expected integers")),
    "column missing": (lambda d: edit_table(d, "groups", lambda df: df.drop(columns=["abs_influence"])),
                       ("groups.parquet", "abs_influence", "missing")),
    "parquet truncated": (lambda d: _truncate(d / "nodes.parquet", 300),
                          ("nodes.parquet", "not a readable Parquet")),
    "parquet garbage": (lambda d: (d / "core.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 4 + b"PAR1"),
                        ("core.parquet",)),
    "table missing": (lambda d: (d / "edges.parquet").unlink(), ("edges.parquet", "missing")),
    "thumbnail bomb": (lambda d: edit_table(d, "thumbnails", lambda df: _set(df, "png", BOMB_HEADER)),
                       ("thumbnails.parquet", "1000000x1000000")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_violation_is_one_line_naming_file_and_field(base: Path, tmp_path: Path, case: str) -> None:
    mutate, needles = CASES[case]
    art = _copy(base, tmp_path / "art")
    mutate(art)
    started = time.perf_counter()
    with pytest.raises(UserError) as err:
        Circuit.load(art)
    message = str(err.value)
    assert "\n" not in message and str(art) in message, message
    for needle in needles:
        assert needle.lower() in message.lower(), (needle, message)
    assert time.perf_counter() - started < 10


def test_valid_artifacts_load_including_nan_silhouettes(base: Path, tmp_path: Path) -> None:
    circuit = Circuit.load(base)
    assert circuit.equals(world_circuit())
    assert circuit.groups["silhouette"].isna().any()        # singleton groups: NaN, written as null
    art = _copy(base, tmp_path / "art")
    edit_manifest(art, lambda m: m.update(extra_note="ignored by the schema"))
    assert Circuit.load(art).key == circuit.key


def _runs(store_path: Path, status: str) -> list[str]:
    from neurflow_kb.store import LadybugStore

    if not store_path.exists():
        return []
    with LadybugStore(store_path, read_only=True) as store:
        return store.run_keys(status)


def test_cli_load_refuses_bad_artifacts_before_writing_anything(base: Path, tmp_path: Path) -> None:
    good = _copy(base, tmp_path / "good")
    bad = _copy(base, tmp_path / "bad")
    edit_manifest(bad, lambda m: m.update(target_class=5000))
    kb = tmp_path / "kb.lbug"
    one_line_error(invoke(["load", str(bad), "--store", str(kb), "--quiet"]), "target_class")
    assert _runs(kb, "writing") == [] and _runs(kb, "complete") == []
    # the good artifact first, the bad one second, one write per artifact: still nothing is written
    one_line_error(invoke(["load", str(good), str(bad), "--store", str(kb), "--quiet",
                           "--batch-relationships", "1"]), str(bad))
    assert _runs(kb, "writing") == [] and _runs(kb, "complete") == []
    dangling = _copy(base, tmp_path / "dangling")
    edit_table(dangling, "group_edges", lambda df: _set(df, "group", 55))
    one_line_error(invoke(["load", str(dangling), "--store", str(kb), "--quiet"]), "group_edges.parquet")
    ok = invoke(["load", str(good), "--store", str(kb), "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert _runs(kb, "complete") == [world_circuit().key] and _runs(kb, "writing") == []


def test_the_schema_checks_a_manifest_on_its_own() -> None:
    # the schema module directly (no files): a valid manifest passes, a bad field is one line naming it
    from neurflow_kb.artifact_schema import validate_manifest

    manifest = dict(world_circuit().manifest)
    validate_manifest(manifest, "memory")
    with pytest.raises(UserError, match="target_class") as info:
        validate_manifest(dict(manifest, target_class=manifest["num_classes"]), "memory")
    assert "\n" not in str(info.value)
