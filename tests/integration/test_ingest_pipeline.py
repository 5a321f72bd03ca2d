"""The ingest pipeline as a library on real files and a real model (the shipped world classifier) into the
real embedded store: one prediction pass per dataset (counted by a forward hook), reuse by content, images
per class, bad files, ImageNet-val layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neurflow_kb import ingest as top_level_ingest
from neurflow_kb.artifact import Circuit
from neurflow_kb.config import NeurFlowConfig
from neurflow_kb.data import scan_images
from neurflow_kb.models import get_adapter
from neurflow_kb.pipeline import ingest, plan_ingest
from neurflow_kb.store import LadybugStore
from neurflow_kb.world import generate
from neurflow_kb_dev.cli_runs import invoke

CONFIG = NeurFlowConfig(tau=2, top_k=4, ig_steps=2, max_nodes_per_layer=3, max_subconcepts=2,
                        strategy="batched")
BY_LABEL = NeurFlowConfig(**{**CONFIG.to_dict(), "class_filter": "true"})
CHAIN = ["layer3", "layer4", "fc"]
CLASSES = [0, 1, 2]


def world_folder(root: Path, per_class: int, classes: list[int], seed: int, layout: str = "index") -> Path:
    batch = generate(per_class * len(classes), seed=seed, classes=classes)
    batch.save(root, layout=layout, image_format="jpg", size=96)
    return root


class Counter:
    """Rows that went through a *complete* forward of the model: a forward hook on the root module fires
    only for full passes (the prediction pass), never for the engine's early-stopped layer runs."""

    def __init__(self, adapter) -> None:
        self.rows = 0
        adapter.model.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.rows += int(inputs[0].shape[0])


@pytest.fixture()
def world():
    adapter = get_adapter("world", layers=CHAIN)
    return adapter, Counter(adapter)


def run(adapter, images, kb, artifacts, classes=CLASSES, **kw):
    return ingest(adapter, classes, images, store=kb, config=CONFIG, artifacts=artifacts, progress=False,
                  workers=0, **kw)


@pytest.mark.slow          # three ingests
def test_one_prediction_pass_then_reuse_by_content(tmp_path, world):
    adapter, counter = world
    images = world_folder(tmp_path / "val", 4, list(range(12)), seed=3)
    n = len(scan_images(images))
    kb, arts = tmp_path / "kb.lbug", tmp_path / "arts"

    first = run(adapter, images, kb, arts)
    assert counter.rows == n == first.images == first.predicted          # one pass, not one per class
    assert [r.status for r in first.classes] == ["written"] * 3
    assert all(r.n_images >= 1 and not r.reused for r in first.classes)
    keys = {r.cls: r.key for r in first.classes}

    again = run(adapter, images, kb, arts)                                  # nothing new: no forward at all
    assert counter.rows == n and again.predicted == 0
    assert [r.status for r in again.classes] == ["skipped"] * 3 and all(r.reused for r in again.classes)
    assert {r.cls: r.key for r in again.classes} == keys

    world_folder(tmp_path / "more", 3, [7], seed=9)                        # images of another class arrive
    for f in (tmp_path / "more" / "7").iterdir():
        shutil.copy(f, images / "7" / f"new_{f.name}")
    more = run(adapter, images, kb, arts)
    assert counter.rows == n + 3 and more.predicted == 3                    # only the new files predicted
    assert all(r.reused and r.status == "skipped" for r in more.classes)
    assert {r.cls: r.key for r in more.classes} == keys

    plan = plan_ingest(adapter, [1], images, config=CONFIG, artifacts=arts, progress=False, workers=0)
    changed = plan.predictions.records.files[int(plan.jobs[0].positions[0])]  # an image class 1 uses
    pixels = np.array(Image.open(changed))
    pixels[:8, :8] = 255 - pixels[:8, :8]
    Image.fromarray(pixels).save(changed, quality=90)
    fourth = run(adapter, images, kb, arts)
    status = {r.cls: (r.reused, r.status) for r in fourth.classes}
    assert status[0] == (True, "skipped") and status[2] == (True, "skipped")
    assert status[1] == (False, "written") and fourth.classes[1].key != keys[1]
    assert counter.rows == n + 4                                            # the changed file only
    with LadybugStore(kb, read_only=True) as st:
        assert set(st.run_keys()) == {*keys.values(), fourth.classes[1].key}


@pytest.mark.slow          # two ingests
def test_max_images_is_per_class_and_seeded(tmp_path, world):
    adapter, _ = world
    images = world_folder(tmp_path / "val", 5, [0, 1, 2], seed=4)
    res = run(adapter, images, None, tmp_path / "arts", max_images=2)
    assert [r.n_images for r in res.classes] == [2, 2, 2] and {r.status for r in res.classes} == {"saved"}
    chosen = {r.cls: Circuit.load(r.artifact).images["source"].tolist() for r in res.classes}
    assert all(len(set(v)) == 2 for v in chosen.values())
    again = run(adapter, images, None, tmp_path / "arts2", max_images=2)   # same seed: same choice
    assert {r.cls: Circuit.load(r.artifact).images["source"].tolist() for r in again.classes} == chosen
    full = run(adapter, images, None, tmp_path / "arts3")
    assert [r.n_images for r in full.classes] == [5, 5, 5]


def test_classes_without_images_are_reported_not_fatal(tmp_path, world):
    adapter, _ = world
    images = world_folder(tmp_path / "val", 3, [0, 2], seed=5)
    res = ingest(adapter, [0, 1, 2], images, config=BY_LABEL, artifacts=tmp_path / "arts", progress=False,
                 workers=0)
    assert [r.status for r in res.classes] == ["saved", "no_images", "saved"]
    assert [r.cls for r in res.skipped] == [1] and "no image is labelled class 1" in res.skipped[0].message


@pytest.mark.parametrize("layout", ["index", "wnid", "flat"])
def test_imagenet_val_layouts_give_the_same_labels(tmp_path, layout):
    root = world_folder(tmp_path / layout, 2, [0, 3, 11], seed=6, layout=layout)
    rec = scan_images(root, get_adapter("world").class_names)
    assert sorted(rec.labels.tolist()) == [0, 0, 3, 3, 11, 11], rec.label_note


@pytest.mark.slow          # two prediction passes
def test_bad_files_stop_the_prediction_pass_in_one_line_or_are_skipped(tmp_path, world):
    adapter, _ = world
    images = world_folder(tmp_path / "val", 4, [0, 1], seed=7)
    (images / "1" / "empty.jpg").write_bytes(b"")
    (images / "1" / "notes.png").write_text("this is not an image")
    good = next((images / "0").iterdir()).read_bytes()
    (images / "0" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    arts = tmp_path / "arts"
    args = ["ingest", "world", "--layers", ",".join(CHAIN), "--classes", "0,1", "--images", str(images),
            "--artifacts", str(arts), "--store", str(tmp_path / "kb.lbug"), "--tau", "2", "--top-k", "4",
            "--ig-steps", "2", "--max-nodes", "3", "--quiet", "--workers", "0"]
    r = invoke(args)
    assert r.exit_code == 2, (r.output, r.exception)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "truncated.jpg" in err[0] and "--skip-bad-images" in err[0], err
    assert not any(p.name.startswith("class-") for p in arts.rglob("*")), "no circuit before the pass ends"

    ok = invoke([*args, "--skip-bad-images"])
    assert ok.exit_code == 0, (ok.output, ok.exception)
    assert "3 unreadable files skipped" in ok.stdout
    saved = Circuit.load(next(p for p in arts.rglob("class-0000")))
    skipped = saved.manifest["skipped_images"]
    assert skipped["count"] == 3 and {Path(f).name for f in skipped["files"]} == \
        {"empty.jpg", "notes.png", "truncated.jpg"}


def test_ingest_is_the_top_level_api(tmp_path, world):
    adapter, _ = world
    assert top_level_ingest is ingest
    images = world_folder(tmp_path / "val", 2, [4], seed=8)
    res = top_level_ingest(adapter, "4", images, store=tmp_path / "kb.lbug", config=BY_LABEL,
                           artifacts=tmp_path / "arts", progress=False, workers=0)
    frame = res.frame()
    assert frame.loc[0, "status"] == "written" and frame.loc[0, "n_images"] == 2
    with LadybugStore(tmp_path / "kb.lbug", read_only=True) as st:
        assert st.run_keys() == [res.classes[0].key]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["index", "wnid", "flat"])
def test_readme_example_on_imagenet_val_layouts(tmp_path, layout):
    """`neurflow-kb ingest efficientnet-lite0 --classes 285 --images val --filter true` on real photos in
    ImageNet-val layouts (real Lite0 weights; small settings so it runs on a CPU)."""
    from skimage import data as skdata

    from neurflow_kb.world.generator import image_path, write_loc_solution

    val = tmp_path / "val"
    photos = {"chelsea": 285, "coffee": 0, "rocket": 0, "astronaut": 0}
    rows = []
    for name, label in photos.items():
        img = getattr(skdata, name)()
        for k, im in enumerate([img, img[:, ::-1]]):
            path = image_path(val, layout, label, f"ILSVRC2012_val_{name}{k}", "jpg")
            Image.fromarray(np.ascontiguousarray(im)).save(path, quality=90)
            rows.append((path.stem, label, 224))
    if layout == "flat":
        write_loc_solution(val, rows)
    kb = tmp_path / "kb.lbug"
    r = invoke([
        "ingest", "efficientnet-lite0", "--classes", "285", "--images", str(val), "--filter", "true",
        "--store", str(kb), "--artifacts", str(tmp_path / "arts"), "--layers", "_blocks.15,_fc",
        "--tau", "2", "--top-k", "4", "--ig-steps", "2", "--max-nodes", "2", "--quiet", "--workers", "1"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "written class 285 (Egyptian cat)" in r.stdout and ", 2 images," in r.stdout
    rows = json.loads(invoke(["query", "drivers", "285", "--store", str(kb), "--json"]).stdout)
    assert rows and rows[0]["model"].startswith("efficientnet_lite0@")
