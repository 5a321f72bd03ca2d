"""The demo a new user runs first (`neurflow-kb demo`): its printed `drivers` table and its viewer carry the
contrastive labels, and the groups of *bee* are named by more of its planted concepts than the
mean-embedding labels (with the seven photo prompts, as before) name on the same circuits."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result

from neurflow_kb import Circuit
from neurflow_kb.labels import DEFAULT_TEMPLATES, METHOD, label_circuit, load_clip
from neurflow_kb.world import CONCEPTS, WORLD_CLASSES, world_clip_dir
from neurflow_kb_dev.cli_runs import invoke

#: End to end (trained worlds, a browser): not in the fast suite.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """`neurflow-kb demo` run once into a temporary folder: (that folder, the finished run)."""
    tmp_path = tmp_path_factory.mktemp("demo")
    run = invoke(["demo", "--quiet", "--out", tmp_path / "demo", "--store", tmp_path / "kb.lbug"],
                 cwd=tmp_path)
    assert run.exit_code == 0, run.stderr
    return tmp_path, run


@pytest.mark.slow
def test_demo_prints_and_views_contrastive_labels_that_tell_bee_groups_apart(demo) -> None:
    tmp_path, run = demo
    out = tmp_path / "demo"
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


@pytest.mark.slow
def test_query_search_after_the_demo_needs_no_clip_options(demo) -> None:
    """The demo's knowledge base records its encoder (the packaged world CLIP, by name), so a text search
    loads it by itself and ranks the groups the way an explicit --clip-model would."""
    import json

    tmp_path, _ = demo
    kb = str(tmp_path / "kb.lbug")
    bare = invoke(["query", "search", "yellow", "--store", kb, "--json", "--limit", "5"], cwd=tmp_path)
    assert bare.exit_code == 0, bare.stderr
    rows = json.loads(bare.stdout)
    assert len(rows) == 5 and all(r["group_key"] and r["class_name"] for r in rows)
    assert [r["similarity"] for r in rows] == sorted((r["similarity"] for r in rows), reverse=True)
    named = invoke(["query", "search", "yellow", "--store", kb, "--json", "--limit", "5", "--clip-model",
                    "neurflow-world-clip"])
    assert named.exit_code == 0 and json.loads(named.stdout) == rows
    recorded = invoke(["cypher", "MATCH (e:Encoder) RETURN e.key AS key, e.kind AS kind, e.model AS model, "
                       "e.path AS path", "--store", kb, "--json"])
    assert json.loads(recorded.stdout) == [{"key": "local-dir:world_clip", "kind": "local",
                                            "model": "neurflow-world-clip", "path": None}]

