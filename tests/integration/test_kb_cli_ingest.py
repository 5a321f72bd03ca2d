"""`neurflow-kb ingest` end to end with a real model and real photos: recipe -> circuits -> store ->
`neurflow-kb query drivers`, and the same answer from the Python API as a DataFrame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurflow_kb import queries
from neurflow_kb.artifact import Circuit
from neurflow_kb.errors import UserError
from neurflow_kb.pipeline import Recipe, load_recipe, parse_classes, recipes_dir
from neurflow_kb.store import LadybugStore
from neurflow_kb_dev.cli_runs import invoke

RECIPE = """
model = "resnet18"
weights = "random"
layers = ["layer4.0", "layer4.1", "fc"]

[data]
max_images = 4

[neurflow]
tau = 2
top_k = 4
ig_steps = 2
granularities = [1.0]
class_filter = "all"
max_nodes_per_layer = 3
max_subconcepts = 2
"""


@pytest.fixture
def photos(tmp_path):
    from PIL import Image
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        Image.fromarray(np.ascontiguousarray(getattr(data, name)())).save(folder / f"{name}.png")
    return folder


@pytest.mark.slow
def test_ingest_then_query_drivers_from_cli_and_api(tmp_path, photos, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(RECIPE)
    kb = tmp_path / "kb.lbug"
    r = invoke(["ingest", "tiny.toml", "--classes", "1,tench", "--images", str(photos), "--store", str(kb),
                "--quiet"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "written class 1 (goldfish)" in r.stdout and "written class 0 (tench)" in r.stdout
    model_dirs = list((tmp_path / "neurflow-kb-artifacts").glob("resnet18@sha256*"))   # random: by content
    assert len(model_dirs) == 1
    saved = Circuit.load(model_dirs[0] / "class-0001")
    assert saved.manifest["config"]["tau"] == 2 and saved.manifest["layers"] == ["layer4.0", "layer4.1", "fc"]

    table = invoke(["query", "drivers", "goldfish", "--store", str(kb)])
    assert table.exit_code == 0 and "group_key" in table.stdout
    first = table.stdout.splitlines()[1].split()
    assert first[0] == f"resnet18@{saved.manifest['weights']}" and saved.key in table.stdout
    rows = json.loads(invoke(["query", "drivers", "1", "--store", str(kb), "--json"]).stdout)
    df = queries.drivers(kb, 1, model="resnet18")
    assert [row["group_key"] for row in rows] == df["group_key"].tolist()
    want = sorted(saved.groups["abs_share"].tolist(), reverse=True)
    assert df["abs_share"].tolist() == want and len(df) == len(saved.groups)

    with LadybugStore(kb, read_only=True) as st:
        counts = st.counts()
    again = invoke(["ingest", "tiny.toml", "--classes", "0-1", "--images", str(photos), "--store", str(kb),
                    "--quiet"])
    assert again.exit_code == 0, again.output
    assert again.stdout.count("(saved circuit reused)") == 2 and "2 skipped" in again.stdout
    with LadybugStore(kb, read_only=True) as st:
        assert st.counts() == counts


def test_ingest_arguments_fail_with_one_line(tmp_path, photos):
    (tmp_path / "tiny.toml").write_text(RECIPE)
    recipe = str(tmp_path / "tiny.toml")
    for args, needle in [
        ([recipe, "--classes", "zebra crossing-ish", "--images", str(photos)], "unknown class"),
        ([recipe, "--classes", "5-2", "--images", str(photos)], "runs backwards"),
        ([recipe, "--classes", "1", "--images", str(tmp_path / "nope")], "does not exist"),
        ([recipe, "--classes", "1"], "no images"),
        (["no-such-model", "--classes", "1", "--images", str(photos)], "unknown model"),
        ([str(tmp_path / "missing.toml"), "--classes", "1"], "does not exist"),
    ]:
        r = invoke(["ingest", *args, "--store", str(tmp_path / "kb.lbug")])
        assert r.exit_code == 2, (args, r.output, r.exception)
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_recipes_and_class_lists():
    names = {p.stem for p in recipes_dir().glob("*.toml")}
    assert {"resnet50", "googlenet", "alexnet", "vit_b_16", "efficientnet-lite0"} <= names
    for name in names:
        rec = load_recipe(name)
        assert rec.model and rec.layers and rec.neurflow["tau"] == 16 and rec.config().tau == 16
    assert load_recipe("efficientnet_lite0").model == "efficientnet_lite0"
    assert load_recipe("resnet18") == Recipe(model="resnet18")  # no recipe: the adapter's defaults
    classes = ["tench", "goldfish", "great white shark", "tiger shark"]
    assert parse_classes("3, 0-1,Great White Shark,1", classes, 4) == [3, 0, 1, 2]
    assert parse_classes("all", classes, 4) == [0, 1, 2, 3]
    with pytest.raises(UserError, match="out of range"):
        parse_classes("2-7", classes, 4)
