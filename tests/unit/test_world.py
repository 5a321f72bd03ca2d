"""The planted-concept world: deterministic images whose pixels really show the planted concepts."""

from __future__ import annotations

import numpy as np
import pytest

from neurflow_kb.errors import UserError
from neurflow_kb.world import (
    BACKGROUNDS,
    CLASS_NAMES,
    CONCEPTS,
    IMAGE_SIZE,
    WORLD_CLASSES,
    all_captions,
    class_concepts,
    generate,
    region_caption,
    region_concepts,
)
from neurflow_kb.world.generator import _RGB

# reference colours of the backgrounds as the eye sees them (mean over a region)
_BG_REF = {"sky": (140, 181, 235), "grass": (80, 125, 55), "sand": (209, 187, 137), "snow": (238, 240, 244)}


@pytest.fixture(scope="module")
def batch():
    return generate(96, seed=5)


def test_same_seed_same_images_and_independent_of_n(batch):
    again = generate(96, seed=5)
    assert np.array_equal(batch.images, again.images)
    assert batch.captions == again.captions and batch.concepts == again.concepts
    short = generate(10, seed=5)
    assert np.array_equal(short.images, batch.images[:10])          # image i depends on (seed, i) only
    other = generate(10, seed=6)
    assert not np.array_equal(other.images, short.images)


def test_classes_round_robin_and_by_name():
    b = generate(24, seed=0)
    assert b.labels.tolist() == [i % len(WORLD_CLASSES) for i in range(24)]
    only = generate(6, seed=0, classes=["bee", 4])
    assert only.labels.tolist() == [2, 4, 2, 4, 2, 4]
    assert all(r["class_name"] in ("bee", "mug") for r in only.concepts)
    with pytest.raises(UserError, match="unknown world class"):
        generate(3, classes=["unicorn"])
    with pytest.raises(UserError, match="out of range"):
        generate(3, classes=[99])
    with pytest.raises(UserError, match="unknown backgrounds"):
        generate(3, backgrounds=["moon"])


def test_records_and_captions_follow_the_class(batch):
    for label, rec, cap in zip(batch.labels, batch.concepts, batch.captions, strict=True):
        wc = WORLD_CLASSES[label]
        assert (rec["shape"], rec["colour"], rec["texture"], rec["part"]) == wc.concepts
        assert rec["background"] in BACKGROUNDS
        assert cap.startswith(f"a {wc.colour} {wc.texture} {wc.shape} with ")
        assert cap.endswith(f" on {rec['background']}")
    caps = all_captions()
    assert len(caps) == len(set(caps)) == len(WORLD_CLASSES) * len(BACKGROUNDS)
    assert set(batch.captions) <= set(caps)
    assert len(set(CONCEPTS)) == len(CONCEPTS) == 19
    assert class_concepts("ladybug") == {"shape": "circle", "colour": "red", "texture": "dotted",
                                         "part": "legs"}


def _nearest(value: np.ndarray, refs: dict[str, tuple[int, int, int]]) -> str:
    return min(refs, key=lambda k: float(np.linalg.norm(value - np.array(refs[k], dtype=float))))


def test_pixels_show_the_planted_colour_background_part_and_texture(batch):
    for img, rec, om, pm in zip(batch.images, batch.concepts, batch.object_masks, batch.part_masks,
                                strict=True):
        pix = img.reshape(-1, 3).astype(float)
        inside = pix[om.reshape(-1) > 0.99]
        lum = inside.mean(1)
        bright = inside[lum >= np.median(lum)]                    # unmarked surface of the object
        assert _nearest(bright.mean(0), _RGB) == rec["colour"]
        far = (om + pm).reshape(-1) == 0
        assert far.sum() > 0.5 * IMAGE_SIZE ** 2
        assert _nearest(pix[far].mean(0), _BG_REF) == rec["background"]
        part = pix[pm.reshape(-1) > 0.9]
        assert len(part) >= 8 and part.mean() < 70                 # the part is there, drawn dark
        dark = (lum < 0.6 * np.percentile(lum, 90)).mean()          # texture marks are darkened surface
        if rec["texture"] == "plain":
            assert dark < 0.05
        else:
            assert dark > 0.12


def test_stripes_vary_along_one_axis_only():
    b = generate(2, seed=1, classes=["bee"])
    rec = b.concepts[0]
    assert rec["texture"] == "striped"
    om, img = b.object_masks[0], b.images[0].astype(float).mean(2)
    cy, cx = int(rec["cy"]), int(rec["cx"])
    win = img[cy - 4:cy + 4, cx - 4:cx + 4]
    assert om[cy - 4:cy + 4, cx - 4:cx + 4].min() > 0.99
    angle = np.deg2rad(rec["rotation_deg"])
    # along the stripes (object's v axis) the intensity stays nearly constant, across them it alternates
    c, s = np.cos(angle), np.sin(angle)
    along = [img[int(round(cy + t * c)), int(round(cx - t * s))] for t in range(-4, 5)]
    across = [img[int(round(cy + t * s)), int(round(cx + t * c))] for t in range(-4, 5)]
    assert np.ptp(across) > 2 * np.ptp(along) and np.ptp(win) > 60


def test_region_concepts(batch):
    rec, om, pm = batch.concepts[0], batch.object_masks[0], batch.part_masks[0]
    full = region_concepts(rec, om, pm, 0, 0, IMAGE_SIZE)
    assert set(full) == {rec["shape"], rec["colour"], rec["texture"], rec["part"], rec["background"]}
    # find a 16 px window with no object and no part: background only
    found = False
    for t in range(0, IMAGE_SIZE - 15, 8):
        for le in range(0, IMAGE_SIZE - 15, 8):
            if (om + pm)[t:t + 16, le:le + 16].sum() == 0:
                assert region_concepts(rec, om, pm, t, le, 16) == [rec["background"]]
                found = True
    assert found
    # a window fully inside the object: colour and texture only
    cy, cx = int(rec["cy"]), int(rec["cx"])
    assert om[cy - 3:cy + 3, cx - 3:cx + 3].min() > 0.99
    assert set(region_concepts(rec, om, pm, cy - 3, cx - 3, 6)) == {rec["colour"], rec["texture"]}
    assert region_caption(["red", "striped"]) == "red striped"
    assert region_caption(["grass"]) == "grass"
    assert region_caption(["red", "circle", "legs", "sand"]) == "red circle with legs on sand"


def test_tensor_and_pil_views(batch):
    x = batch.tensor()
    assert tuple(x.shape) == (96, 3, IMAGE_SIZE, IMAGE_SIZE)
    raw = batch.tensor(normalize=False)
    assert float(raw.min()) >= 0 and float(raw.max()) <= 1
    assert abs(float(x.mean()) - float(((raw - 0.5) / 0.25).mean())) < 1e-5
    pil = batch.pil()
    assert pil[0].size == (IMAGE_SIZE, IMAGE_SIZE) and np.array_equal(np.asarray(pil[0]), batch.images[0])
    sub = batch.subset([3, 1])
    assert sub.captions == [batch.captions[3], batch.captions[1]] and len(sub) == 2
    assert CLASS_NAMES[int(sub.labels[0])] == sub.concepts[0]["class_name"]


def test_save_writes_class_folders_that_load_images_reads(tmp_path):
    import json

    import torch

    from neurflow_kb.data import load_images
    from neurflow_kb.world import world_preprocess
    from neurflow_kb.world.__main__ import main

    b = generate(6, seed=2, classes=[0, "bee"])
    b.save(tmp_path / "w")
    imgs = load_images(tmp_path / "w", world_preprocess(), class_names=list(CLASS_NAMES))
    assert sorted(imgs.labels.tolist()) == [0, 0, 0, 2, 2, 2]
    # PNG is lossless and the preprocess is the generator's normalisation: identical tensors
    by_source = {s.split("/")[-1]: i for i, s in enumerate(imgs.sources)}
    k = by_source["2_00001.png"]
    assert torch.allclose(imgs.images[k], b.tensor()[1], atol=1e-6)
    lines = [json.loads(x) for x in (tmp_path / "w" / "concepts.jsonl").read_text().splitlines()]
    assert [x["caption"] for x in lines] == b.captions and lines[1]["file"] == "2/2_00001.png"
    assert main(["write", str(tmp_path / "cli"), "--per-class", "2", "--classes", "kite"]) == 0
    assert len(list((tmp_path / "cli" / "11").glob("*.png"))) == 2
