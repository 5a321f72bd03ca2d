"""The demo a new user runs first (`neurflow-kb demo`): its printed `drivers` table and its viewer carry the
contrastive labels, and the groups of *bee* are named by more of its planted concepts than the
mean-embedding labels (with the seven photo prompts, as before) name on the same circuits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import CLI

from neurflow_kb import Circuit
from neurflow_kb.labels import DEFAULT_TEMPLATES, METHOD, label_circuit, load_clip
from neurflow_kb.world import CONCEPTS, WORLD_CLASSES, world_clip_dir

#: End to end (trained worlds, subprocesses, a browser): not in the fast suite.
pytestmark = pytest.mark.slow


@pytest.mark.slow
def test_demo_prints_and_views_contrastive_labels_that_tell_bee_groups_apart(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = subprocess.run([CLI, "demo", "--quiet", "--out", str(out), "--store", str(tmp_path / "kb.lbug")],
                         capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"labels ({METHOD})" in run.stdout
    bee = Circuit.load(out / "world-02-bee")
    assert set(bee.labels["method"]) == {METHOD}
    top = bee.labels[bee.labels["rank"] == 1]
    printed = [line for line in run.stdout.splitlines() if "labels: " in line]
    assert printed and all(line.split("labels: ")[1] for line in printed)
    shown = {line.split("labels: ")[1].split(" (")[0] for line in printed}
    assert shown <= set(top["concept"])                    # the table prints each group's rank-1 label first

    planted = set(WORLD_CLASSES[2].concepts)
    new = set(top["concept"])
    old_circuit = label_circuit(bee, load_clip(checkpoint=world_clip_dir()), list(CONCEPTS), top_n=1,
                                templates=DEFAULT_TEMPLATES, method="mean")
    old = set(old_circuit.labels["concept"])
    assert len(new & planted) > len(old & planted), (sorted(new), sorted(old))
    assert len(new) >= 3                                   # different groups, different names

    html = (out / "world-bee.html").read_text()
    for concept in new:
        assert f'"concept": "{concept}"' in html or f'"concept":"{concept}"' in html
