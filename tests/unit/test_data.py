"""Data room: image sources on real photos (scikit-image), class filtering with a test-built model, crops."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data as skdata
from torch import nn
from torchvision import transforms

from neurflow_kb.data import (
    ImageSet,
    filter_by_class,
    iter_batches,
    load_images,
    materialize,
    plan_crops,
    thumbnail_png,
)
from neurflow_kb.errors import UserError

torch.set_num_threads(1)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PHOTOS = {"chelsea": skdata.chelsea, "coffee": skdata.coffee, "astronaut": skdata.astronaut,
          "rocket": skdata.rocket}


def small_preprocess(pil: Image.Image) -> torch.Tensor:
    """Resize 40 -> centre crop 32 -> normalise: the model-preprocessing shape, tiny for speed."""
    return _SMALL(pil)


_SMALL = transforms.Compose([transforms.Resize(40), transforms.CenterCrop(32), transforms.ToTensor(),
                             transforms.Normalize(MEAN, STD)])
_IMAGENET = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                transforms.Normalize(MEAN, STD)])


def write_photo(path: Path, name: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(PHOTOS[name]()).save(path)
    return path


@pytest.fixture()
def flat_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "flat"
    write_photo(folder / "b_coffee.JPG", "coffee")          # upper-case extension counts
    write_photo(folder / "a_chelsea.png", "chelsea")
    write_photo(folder / "c_astronaut.jpeg", "astronaut")
    write_photo(folder / "d_rocket.png", "rocket")
    (folder / "notes.md").write_text("not an image")
    return folder


class ChannelMeanClassifier:
    """A real torch model built by the test: class = dominant mean colour channel (R=0, G=1, B=2, 3 never)."""

    def __init__(self) -> None:
        linear = nn.Linear(3, 4)
        with torch.no_grad():
            linear.weight.zero_()
            linear.weight[:3, :3] = torch.eye(3)
            linear.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -1e6]))
        self.model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear).eval()
        self.num_classes = 4
        self.class_names = ["red", "green", "blue", "never"]
        self.calls = 0

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(images)


def dominant_channel(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=(2, 3)).argmax(dim=1)


# ------------------------------------------------------------------------------------------ crops


def official_crops(x: torch.Tensor, granularities, stride_ratio: float) -> torch.Tensor:
    """The official construction (NEURFLOW.md section 2.4): F.unfold, reshape, bilinear resize."""
    size_img = x.shape[-1]
    parts = []
    for g in granularities:
        s = int(g * size_img)
        if s == size_img:
            parts.append(x)
            continue
        t = max(min(int(stride_ratio * s), size_img - s), 1)
        cols = F.unfold(x, kernel_size=s, stride=t)                     # [N, 3*s*s, L]
        patches = cols.transpose(1, 2).reshape(-1, 3, s, s)
        parts.append(F.interpolate(patches, size=size_img, mode="bilinear", align_corners=False))
    return torch.cat(parts)


def test_plan_has_59_crops_per_224_image_in_official_order() -> None:
    plan = plan_crops(3)
    assert len(plan) == 3 * 59 and plan.crops_per_image == 59 and plan.n_images == 3
    sizes, counts = np.unique(plan.size, return_counts=True)
    assert dict(zip(sizes.tolist(), counts.tolist(), strict=True)) == {56: 3 * 49, 112: 3 * 9, 224: 3}
    # granularities in the given order, then image-major, then row-major positions
    assert plan.size[:3].tolist() == [224] * 3 and plan.image[:3].tolist() == [0, 1, 2]
    g2 = slice(3, 3 + 27)
    assert plan.image[g2].tolist() == [0] * 9 + [1] * 9 + [2] * 9
    assert list(zip(plan.top[3:12].tolist(), plan.left[3:12].tolist(), strict=True)) == [
        (0, 0), (0, 56), (0, 112), (56, 0), (56, 56), (56, 112), (112, 0), (112, 56), (112, 112)]
    assert sorted(set(plan.top[plan.size == 56].tolist())) == list(range(0, 169, 28))
    assert plan_crops(2, granularities=(0.25, 1.0)).size.tolist()[:2] == [56, 56]


def test_materialize_equals_official_unfold_construction_for_every_crop() -> None:
    photos = torch.stack([_IMAGENET(Image.fromarray(skdata.chelsea())),
                          _IMAGENET(Image.fromarray(skdata.coffee()))])
    plan = plan_crops(2, 224, (1.0, 0.5, 0.25), 0.5)
    expected = official_crops(photos, (1.0, 0.5, 0.25), 0.5)
    assert expected.shape[0] == len(plan) == 2 * 59
    got = torch.cat([batch for _, batch in iter_batches(photos, plan, batch_size=37)])
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    assert torch.equal(materialize(photos, plan, [0, 1]), photos)   # g = 1 crops are the images unchanged
    # any subset, any order, through an ImageSet too
    pick = [117, 3, 60, 0, 2]
    imageset = ImageSet(photos, torch.tensor([-1, -1]), ["tensor:0", "tensor:1"])
    assert torch.allclose(materialize(imageset, plan, pick), expected[pick], atol=1e-6, rtol=0)


def test_materialize_matches_official_for_other_sizes_and_strides() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    for grans, ratio in [((0.25, 0.5, 1.0), 0.5), ((0.7, 0.3), 0.3), ((0.9,), 1.0)]:
        plan = plan_crops(3, 32, grans, ratio)
        expected = official_crops(x, grans, ratio)
        assert len(plan) == expected.shape[0]
        assert torch.allclose(materialize(x, plan, np.arange(len(plan))), expected, atol=1e-6, rtol=0)


def test_iter_batches_covers_requested_crops_in_order() -> None:
    x = torch.randn(2, 3, 32, 32)
    plan = plan_crops(2, 32)
    seen = [(idx, batch.shape[0]) for idx, batch in iter_batches(x, plan, batch_size=50)]
    assert [n for _, n in seen] == [50, 50, 18]
    assert np.concatenate([i for i, _ in seen]).tolist() == list(range(118))
    sub = list(iter_batches(x, plan, batch_size=4, indices=[5, 1, 100]))
    assert [i.tolist() for i, _ in sub] == [[5, 1, 100]]


def test_crop_errors_are_user_errors() -> None:
    plan = plan_crops(2, 32)
    with pytest.raises(UserError, match=r"\[N,3,32,32\]"):
        materialize(torch.zeros(2, 3, 40, 40), plan, [0])
    with pytest.raises(UserError, match="out of range"):
        materialize(torch.zeros(2, 3, 32, 32), plan, [len(plan)])
    with pytest.raises(UserError, match="only 1 images"):
        materialize(torch.zeros(1, 3, 32, 32), plan, [1])
    with pytest.raises(UserError, match="granularities"):
        plan_crops(1, 224, (0.0, 0.5))
    with pytest.raises(UserError, match="stride_ratio"):
        plan_crops(1, 224, (1.0,), 0.0)


def test_thumbnail_png_is_the_denormalised_crop() -> None:
    photo = _IMAGENET(Image.fromarray(skdata.chelsea())).unsqueeze(0)
    plan = plan_crops(1)
    crop = int(np.nonzero(plan.size == 112)[0][4])                      # the centre 112 crop
    png = thumbnail_png(photo, plan, crop, MEAN, STD, size=48)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    thumb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64) / 255.0
    assert thumb.shape == (48, 48, 3)
    t, le = int(plan.top[crop]), int(plan.left[crop])
    region = photo[0, :, t:t + 112, le:le + 112] * torch.tensor(STD).view(3, 1, 1)
    region = region + torch.tensor(MEAN).view(3, 1, 1)
    small = F.interpolate(region.unsqueeze(0), size=48, mode="area")[0].permute(1, 2, 0).numpy()
    assert np.abs(thumb - small).mean() < 0.03                          # same picture, up to resampling
    # values beyond [0,1] after de-normalising are clipped, not wrapped around
    bright = thumbnail_png(torch.full((1, 3, 224, 224), 50.0), plan, 0, MEAN, STD, size=8)
    assert np.asarray(Image.open(io.BytesIO(bright))).min() == 255


# ------------------------------------------------------------------------------------------ sources


def test_flat_folder_loads_sorted_images_with_unknown_labels(flat_folder: Path) -> None:
    s = load_images(flat_folder, small_preprocess)
    assert len(s) == 4 and s.images.shape == (4, 3, 32, 32) and s.images.dtype == torch.float32
    assert [Path(p).name for p in s.sources] == ["a_chelsea.png", "b_coffee.JPG", "c_astronaut.jpeg",
                                                  "d_rocket.png"]
    assert s.labels.tolist() == [-1] * 4 and not s.has_labels and "unknown" in s.label_note
    expected = small_preprocess(Image.fromarray(skdata.chelsea()))
    assert torch.equal(s.images[0], expected)
    assert len(load_images(flat_folder, small_preprocess, max_images=2)) == 2


def test_class_subfolders_by_index_by_name_and_by_wnid(tmp_path: Path) -> None:
    root = tmp_path / "by_index"
    write_photo(root / "285" / "x.png", "chelsea")
    write_photo(root / "7" / "y.png", "coffee")
    write_photo(root / "7" / "z.jpg", "rocket")
    s = load_images(root, small_preprocess)
    assert s.labels.tolist() == [7, 7, 285]                             # class folders sorted by index
    assert [Path(p).parent.name for p in s.sources] == ["7", "7", "285"]

    named = tmp_path / "by_name"
    write_photo(named / "Egyptian_cat" / "a.png", "chelsea")
    write_photo(named / "espresso" / "b.png", "coffee")
    names = ["tench", "espresso", "Egyptian cat"]
    assert load_images(named, small_preprocess, class_names=names).labels.tolist() == [1, 2]
    unknown = load_images(named, small_preprocess)                       # no class_names: labels unknown
    assert unknown.labels.tolist() == [-1, -1] and "Egyptian_cat" in unknown.label_note

    wnids = tmp_path / "by_wnid"
    write_photo(wnids / "n02124075" / "cat.png", "chelsea")              # Egyptian cat, ImageNet index 285
    write_photo(wnids / "n01440764" / "fish.png", "coffee")              # tench, index 0
    s = load_images(wnids, small_preprocess)
    assert s.labels.tolist() == [0, 285] and "wordnet-id" in s.label_note.lower()


def test_flat_imagenet_val_with_loc_solution_labels_txt_and_ambiguous_ground_truth(tmp_path: Path) -> None:
    val = tmp_path / "val"
    write_photo(val / "ILSVRC2012_val_00000001.JPEG", "chelsea")
    write_photo(val / "ILSVRC2012_val_00000002.JPEG", "coffee")
    write_photo(val / "ILSVRC2012_val_00000003.JPEG", "rocket")
    (val / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000002,n01440764 1 2 30 40 n01440764 5 6 7 8\n"
        "ILSVRC2012_val_00000001,n02124075 10 20 300 400\n")
    s = load_images(val, small_preprocess)
    assert s.labels.tolist() == [285, 0, -1]                             # val_3 is not in the csv

    (val / "labels.txt").write_text("ILSVRC2012_val_00000001.JPEG 3\nILSVRC2012_val_00000003.JPEG 9\n")
    assert load_images(val, small_preprocess).labels.tolist() == [3, -1, 9]   # labels.txt wins

    gt = tmp_path / "val_gt"
    write_photo(gt / "ILSVRC2012_val_00000001.JPEG", "chelsea")
    (gt / "ILSVRC2012_validation_ground_truth.txt").write_text("65\n")
    s = load_images(gt, small_preprocess)
    assert s.labels.tolist() == [-1] and "meta.mat" in s.label_note
    with pytest.raises(UserError, match="LOC_val_solution.csv"):
        filter_by_class(s, ChannelMeanClassifier(), 0, "true")

    bad = tmp_path / "bad_labels"
    write_photo(bad / "a.png", "chelsea")
    (bad / "labels.txt").write_text("a.png cat\n")
    with pytest.raises(UserError, match=r"labels.txt line 1"):
        load_images(bad, small_preprocess)


def test_wnids_without_timm_use_sorted_order_only_for_all_1000(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm.data", None)                  # timm is optional: act as if absent
    val = tmp_path / "val"
    write_photo(val / "ILSVRC2012_val_00000001.JPEG", "chelsea")
    write_photo(val / "ILSVRC2012_val_00000002.JPEG", "coffee")
    wnids = sorted({f"n{i * 7919 % 10**8:08d}" for i in range(1, 1001)})
    assert len(wnids) == 1000
    rows = [f"ILSVRC2012_val_{i + 3:08d},{w} 0 0 1 1" for i, w in enumerate(wnids)]
    rows += [f"ILSVRC2012_val_00000001,{wnids[500]} 0 0 1 1", f"ILSVRC2012_val_00000002,{wnids[7]} 0 0 1 1"]
    (val / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows[::-1]) + "\n")
    s = load_images(val, small_preprocess)
    assert s.labels.tolist() == [500, 7] and "sorted wnid order" in s.label_note

    few = tmp_path / "few"
    write_photo(few / "n02124075" / "cat.png", "chelsea")
    write_photo(few / "n01440764" / "fish.png", "coffee")
    s = load_images(few, small_preprocess)
    assert s.labels.tolist() == [-1, -1] and "not all 1000" in s.label_note


def test_list_file_and_list_of_paths(tmp_path: Path, flat_folder: Path) -> None:
    listing = tmp_path / "images.txt"
    absolute = flat_folder / "d_rocket.png"
    listing.write_text(f"# my class\nflat/a_chelsea.png 285\n\n{absolute}\nflat/b_coffee.JPG 7\n")
    s = load_images(listing, small_preprocess)
    assert [Path(p).name for p in s.sources] == ["a_chelsea.png", "d_rocket.png", "b_coffee.JPG"]
    assert s.labels.tolist() == [285, -1, 7]

    paths = [flat_folder / "d_rocket.png", str(flat_folder / "a_chelsea.png")]
    s2 = load_images(paths, small_preprocess, labels=[4, 5])
    assert s2.labels.tolist() == [4, 5] and torch.equal(s2.images[1], s.images[0])
    single = load_images(flat_folder / "d_rocket.png", small_preprocess)
    assert torch.equal(single.images[0], s.images[1])

    listing.write_text("flat/missing.png\n")
    with pytest.raises(UserError, match=r"missing.png.*images.txt"):
        load_images(listing, small_preprocess)
    with pytest.raises(UserError, match="3 labels for 2 images"):
        load_images(paths, small_preprocess, labels=[1, 2, 3])


def test_tensor_and_imageset_specs() -> None:
    x = torch.randn(5, 3, 16, 16)
    s = load_images(x, small_preprocess, labels=[0, 1, 2, 3, 3], max_images=4)
    assert len(s) == 4 and s.sources == ["tensor:0", "tensor:1", "tensor:2", "tensor:3"]
    assert torch.equal(s.images, x[:4]) and s.labels.tolist() == [0, 1, 2, 3]
    assert load_images(s, small_preprocess) is s
    assert load_images(s, small_preprocess, max_images=2).sources == ["tensor:0", "tensor:1"]
    with pytest.raises(UserError, match=r"\[N,3,H,W\].*unsqueeze"):
        load_images(x[0], small_preprocess)
    with pytest.raises(UserError, match=r"\[N,3,H,W\]; got \[5, 1, 16, 16\]"):
        load_images(x[:, :1], small_preprocess)
    with pytest.raises(UserError, match="float"):
        load_images(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), small_preprocess)


def test_loading_errors_name_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nowhere.*does not exist"):
        load_images(tmp_path / "nowhere", small_preprocess)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("hello")
    with pytest.raises(UserError, match=r"empty has no images"):
        load_images(empty, small_preprocess)

    broken = tmp_path / "broken"
    write_photo(broken / "a_good.png", "chelsea")
    (broken / "b_bad.jpg").write_bytes(os.urandom(64) + b"this is not a jpeg")
    with pytest.raises(UserError, match=r"b_bad\.jpg.*corrupt") as info:
        load_images(broken, small_preprocess)
    assert "\n" not in str(info.value)
    assert len(load_images(broken, small_preprocess, max_images=1)) == 1   # files past the limit are not read

    mixed = tmp_path / "mixed"
    write_photo(mixed / "loose.png", "chelsea")
    write_photo(mixed / "285" / "cat.png", "chelsea")
    with pytest.raises(UserError, match="mixes images with class subfolders"):
        load_images(mixed, small_preprocess)
    with pytest.raises(UserError, match="max_images"):
        load_images(mixed / "285", small_preprocess, max_images=0)


@pytest.mark.slow          # the fingerprint in a second process
def test_imageset_subset_to_and_fingerprint(flat_folder: Path) -> None:
    s = load_images(flat_folder, small_preprocess, labels=[1, 2, 3, 4])
    sub = s.subset([2, 0])
    assert sub.sources == [s.sources[2], s.sources[0]] and sub.labels.tolist() == [3, 1]
    assert torch.equal(sub.images[1], s.images[0])
    assert s.subset(torch.tensor([False, True, False, True])).labels.tolist() == [2, 4]
    moved = s.to("cpu")
    assert moved.images.device.type == "cpu" and moved.fingerprint() == s.fingerprint()

    fp = s.fingerprint()
    assert len(fp) == 64
    assert fp == load_images(flat_folder, small_preprocess, labels=[1, 2, 3, 4]).fingerprint()
    relabelled = ImageSet(s.images, torch.tensor([1, 2, 3, 5]), s.sources)
    assert relabelled.fingerprint() != fp
    nudged = s.images.clone()
    nudged[3, 2, 31, 31] += 1e-3
    assert ImageSet(nudged, s.labels, s.sources).fingerprint() != fp
    # a fresh interpreter (new process, new hash seed) gets the same fingerprint for the same data
    saved = flat_folder.parent / "set.pt"
    torch.save({"images": s.images, "labels": s.labels}, saved)
    code = ("import sys, torch; from neurflow_kb.data import ImageSet; d = torch.load(sys.argv[1]); "
            "print(ImageSet(d['images'], d['labels'], ['x'] * len(d['labels'])).fingerprint())")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "123", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == fp


# ------------------------------------------------------------------------------------------ filtering


def test_filter_by_class_predicted_true_and_all(flat_folder: Path) -> None:
    clf = ChannelMeanClassifier()
    s = load_images(flat_folder, small_preprocess, labels=[2, 0, 2, 1])
    expected = dominant_channel(s.images)
    assert len(set(expected.tolist())) >= 2                             # the photos differ in colour

    target = int(expected[0])
    kept = filter_by_class(s, clf, target, "predicted", batch_size=3)
    want = [i for i in range(4) if int(expected[i]) == target]
    assert kept.sources == [s.sources[i] for i in want]
    assert kept.predicted is not None and kept.predicted.tolist() == [target] * len(want)
    assert clf.calls == 2                                               # 4 images in batches of 3

    true = filter_by_class(s, clf, 2, "true")
    assert true.sources == [s.sources[0], s.sources[2]]
    assert true.predicted.tolist() == expected[[0, 2]].tolist()
    every = filter_by_class(s, clf, 3, "all")
    assert len(every) == 4 and every.predicted.tolist() == expected.tolist()


def test_filter_by_class_errors(flat_folder: Path) -> None:
    clf = ChannelMeanClassifier()
    s = load_images(flat_folder, small_preprocess)
    message = r"no image is predicted as class 3 \('never'\) among 4 images; .* use --filter true/all"
    with pytest.raises(UserError, match=message):
        filter_by_class(s, clf, 3, "predicted")
    with pytest.raises(UserError, match=r"outside \[0, 4\)"):
        filter_by_class(s, clf, 4, "predicted")
    with pytest.raises(UserError, match=r"outside \[0, 4\)"):
        filter_by_class(s, clf, -1, "all")
    with pytest.raises(UserError, match="labels of the 4 images are unknown"):
        filter_by_class(s, clf, 0, "true")
    labelled = load_images(flat_folder, small_preprocess, labels=[0, 0, 1, 1])
    with pytest.raises(UserError, match=r"no image is labelled class 2 \('blue'\)"):
        filter_by_class(labelled, clf, 2, "true")
    with pytest.raises(UserError, match="class filter must be"):
        filter_by_class(s, clf, 0, "maybe")  # type: ignore[arg-type]
