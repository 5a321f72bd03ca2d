"""Labelling: vocabularies, offline weight resolution (fast one-line errors), and the scores of a real
open_clip model (random-init tiny config) against a direct computation of the method."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from neurflow_kb.errors import UserError
from neurflow_kb.labels import (
    DEFAULT_TEMPLATES,
    METHOD,
    LabelMethod,
    Vocabulary,
    group_thumbnails,
    label_circuit,
    label_images,
    load_clip,
    load_vocabulary,
    resolve_weights,
)
from neurflow_kb.labels.broad import broad_sections
from neurflow_kb.labels.clip import _reachable
from neurflow_kb.labels.images import to_pil
from neurflow_kb_dev.cli_runs import invoke, one_line_error, process_env
from neurflow_kb_dev.synthetic import synthetic_circuit

TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def random_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random-init tiny CLIP saved as an open_clip folder (config + weights)."""
    import open_clip

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("random-clip")
    model = open_clip.CLIP(**TINY)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder


def small_circuit():
    return synthetic_circuit(3, model="toy", weights="random", chain=(("a", 8), ("b", 12), ("logits", 5)),
                             nodes_per_layer=(2, 6), tau=3, class_names=[f"c{i}" for i in range(5)])


# -- vocabularies ------------------------------------------------------------------------------------

def test_broad_vocabulary_has_over_a_thousand_distinct_concepts_of_every_kind() -> None:
    vocab = load_vocabulary("broad")
    assert vocab.name == "broad"
    assert len(vocab) >= 1000
    assert len(set(vocab.concepts)) == len(vocab)
    assert all(c == c.strip() and c for c in vocab.concepts)
    sections = broad_sections()
    for kind in ("colours", "textures", "materials", "parts", "objects", "scenes"):
        assert len(sections[kind]) >= 60, kind
    for word in ("red", "striped", "wood", "wheel", "bicycle", "beach"):
        assert word in vocab.concepts


def test_imagenet_vocabulary_is_torchvisions_class_list() -> None:
    import torchvision

    vocab = load_vocabulary("imagenet")
    assert vocab.concepts == tuple(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(vocab) == 1000


def test_vocabulary_file_skips_comments_blanks_and_repeats(tmp_path: Path) -> None:
    f = tmp_path / "mine.txt"
    f.write_text("# my concepts\nred\n\n  zebra stripes \nred\n#not this\nwood\n")
    vocab = load_vocabulary(str(f))
    assert vocab == Vocabulary("mine", ("red", "zebra stripes", "wood"))
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(UserError, match="no concepts"):
        load_vocabulary(str(tmp_path / "empty.txt"))
    with pytest.raises(UserError, match="unknown vocabulary"):
        load_vocabulary(str(tmp_path / "missing.txt"))


# -- weights -----------------------------------------------------------------------------------------

def _offline_env(tmp_path: Path) -> dict[str, str | None]:
    """No cached weights anywhere: HOME and the Hugging Face cache point into an empty folder."""
    return {"HF_HUB_OFFLINE": "1", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_CACHE": None, "HUGGINGFACE_HUB_CACHE": None}


def test_missing_weights_offline_fail_at_once_with_one_line(tmp_path: Path, network_attempts: list,
                                                            parameters_built: list,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """"At once": no name lookup or connection is tried and no CLIP model is built before the one-line
    error (the time it takes is measured in benchmarks/cli_errors.py)."""
    import huggingface_hub.constants

    # in-process, the Hugging Face cache was fixed when huggingface_hub was imported: empty it too
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    art = small_circuit().save(tmp_path / "art")
    run = invoke(["label", str(art)], env=_offline_env(tmp_path))
    line = one_line_error(run, "--clip-checkpoint PATH", "ViT-B-32/openai")
    assert network_attempts == [] and parameters_built == [], line
    from neurflow_kb import Circuit

    assert Circuit.load(art).labels.empty


def test_weight_resolution_imports_neither_torch_nor_open_clip(tmp_path: Path) -> None:
    code = ("import sys\nfrom neurflow_kb.labels.clip import resolve_weights\n"
            "try:\n    resolve_weights('ViT-B-32', 'openai')\n"
            "except Exception as e:\n    print(type(e).__name__)\n"
            "print('torch' in sys.modules, 'open_clip' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], env=process_env(_offline_env(tmp_path)),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["UserError", "False", "False"], out.stderr


def test_cached_weights_are_found_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # open_clip's own URL cache (~/.cache/clip/<file>) is honoured: a file there resolves with no download
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / ".cache" / "clip"
    cache.mkdir(parents=True)
    (cache / "RN50.pt").write_bytes(b"not really weights")
    w = resolve_weights("RN50", "openai")
    assert w.pretrained == str(cache / "RN50.pt") and not w.download
    assert w.encoder == "RN50/openai" and w.quick_gelu


def test_bad_weight_arguments_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="known tags: .*openai"):
        resolve_weights("ViT-B-32", "no-such-tag")
    with pytest.raises(UserError, match="unknown CLIP model"):
        resolve_weights("ViT-Nope", "openai")
    with pytest.raises(UserError, match="does not exist"):
        resolve_weights(checkpoint=tmp_path / "nothing.pt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="no open_clip_config.json"):
        resolve_weights(checkpoint=tmp_path / "folder")
    (tmp_path / "folder" / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY}))
    with pytest.raises(UserError, match="no weights file"):
        resolve_weights(checkpoint=tmp_path / "folder")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="unknown CLIP architecture"):
        resolve_weights("Tiny-Nope", checkpoint=tmp_path / "w.bin")


def test_an_unreachable_host_is_one_bounded_attempt(network_attempts: list) -> None:
    """One connection attempt to the host, with the caller's timeout (the probe's thread is joined
    within it), never a retry loop."""
    assert not _reachable("127.0.0.1", port=9, timeout=1.0)
    assert [a for a in network_attempts if a[0] == "connect"] == [("connect", ("127.0.0.1", 9), 1.0)]


# -- the method --------------------------------------------------------------------------------------

def _direct_text(model, tokenizer, concepts) -> torch.Tensor:
    """[V, D] prompt-ensembled concept embeddings computed with open_clip directly."""
    text = []
    for c in concepts:
        t = model.encode_text(tokenizer([tpl.format(c) for tpl in DEFAULT_TEMPLATES]))
        t = torch.nn.functional.normalize(t, dim=-1).mean(0)
        text.append(t / t.norm())
    return torch.stack(text).double()


def test_mean_method_scores_match_a_direct_computation(random_clip_dir: Path) -> None:
    import open_clip

    clip = load_clip(checkpoint=random_clip_dir)
    assert clip.encoder == f"local-dir:{random_clip_dir.name}"
    circuit = small_circuit()
    thumbs = group_thumbnails(circuit, max_images=4)
    assert thumbs and all(1 <= len(v) <= 4 for v in thumbs.values())
    concepts = ["red", "green", "blue", "striped", "wood", "sky"]
    result = label_images(thumbs, clip, concepts, top_n=3, method="mean")
    assert result.method == "clip-mean-softmax" and result.labels["contrast"].isna().all()

    # the same numbers computed by hand with open_clip directly
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{random_clip_dir}")
    tok = open_clip.get_tokenizer(f"local-dir:{random_clip_dir}")
    model.eval()
    with torch.no_grad():
        text_m = _direct_text(model, tok, concepts)
        scale = float(model.logit_scale.exp())
        for key, pngs in thumbs.items():
            img = model.encode_image(torch.stack([preprocess(to_pil(p)) for p in pngs]))
            e = torch.nn.functional.normalize(img, dim=-1).mean(0)
            e = (e / e.norm()).double()
            np.testing.assert_allclose(result.embeddings[key], e.numpy(), atol=1e-5)
            sim = text_m @ e
            prob = torch.softmax(scale * sim, 0).numpy()
            order = np.argsort(-sim.numpy(), kind="stable")[:3]
            rows = result.labels[result.labels["key"] == key].sort_values("rank")
            assert rows["rank"].tolist() == [1, 2, 3]
            assert rows["concept"].tolist() == [concepts[i] for i in order]
            np.testing.assert_allclose(rows["score"].to_numpy(), prob[order], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(rows["similarity"].to_numpy(), sim.numpy()[order], atol=1e-5)


def test_label_circuit_fills_the_artifact_tables_and_round_trips(random_clip_dir: Path,
                                                                 tmp_path: Path) -> None:
    from neurflow_kb import Circuit

    clip = load_clip(checkpoint=random_clip_dir)
    circuit = small_circuit()
    labelled = label_circuit(circuit, clip, ["red", "green", "blue", "wood"], top_n=2)
    assert labelled.key == circuit.key
    groups = {(int(d), int(g)) for d, g in zip(circuit.groups["depth"], circuit.groups["group"], strict=True)}
    with_images = set(group_thumbnails(circuit))
    emb = labelled.group_embeddings
    embedded = {(int(d), int(g)) for d, g in zip(emb["depth"], emb["group"], strict=True)}
    assert embedded == with_images and with_images <= groups
    assert np.allclose([np.linalg.norm(v) for v in emb["embedding"]], 1.0, atol=1e-5)
    lab = labelled.labels
    assert len(lab) == 2 * len(with_images)
    assert set(lab["vocabulary"]) == {"custom"}
    assert set(lab["method"]) == {"clip-contrast-run-0.75"} == {METHOD}
    assert set(lab["encoder"]) == {clip.encoder} and set(lab["rank"]) == {1, 2}
    assert ((lab["score"] > 0) & (lab["score"] <= 1)).all()
    assert labelled.manifest["labels"]["vocabulary_size"] == 4
    assert labelled.manifest["labels"]["method"] == METHOD
    assert labelled.manifest["labels"]["kind"] == "contrast" and labelled.manifest["labels"]["weight"] == 0.75
    back = Circuit.load(labelled.save(tmp_path / "a"))
    assert back.equals(labelled)
    mean = label_circuit(circuit, clip, ["red", "green", "blue", "wood"], top_n=2, method="mean")
    assert set(mean.labels["method"]) == {"clip-mean-softmax"}
    np.testing.assert_allclose(np.stack(mean.group_embeddings["embedding"].map(np.asarray)),
                               np.stack(emb["embedding"].map(np.asarray)))          # same search embedding


def _crop_distributions(model, preprocess, tokenizer, pngs, concepts) -> np.ndarray:
    """[n, V] zero-shot distributions of crops, computed with open_clip directly."""
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(to_pil(p)) for p in pngs]))
        img = torch.nn.functional.normalize(img, dim=-1).double()
        sim = img @ _direct_text(model, tokenizer, concepts).T
        return torch.softmax(float(model.logit_scale.exp()) * sim, dim=1).numpy()


def test_contrast_scores_match_a_direct_computation(random_clip_dir: Path) -> None:
    import open_clip

    clip = load_clip(checkpoint=random_clip_dir)
    thumbs = group_thumbnails(small_circuit(), max_images=4)
    concepts = ["red", "green", "blue", "striped", "wood", "sky"]
    weight = 0.6
    result = label_images(thumbs, clip, concepts, top_n=4, method=LabelMethod("contrast", "run", weight))
    assert result.method == "clip-contrast-run-0.6"
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{random_clip_dir}")
    tok = open_clip.get_tokenizer(f"local-dir:{random_clip_dir}")
    model.eval()
    dist = {k: _crop_distributions(model, preprocess, tok, v, concepts) for k, v in thumbs.items()}
    for key, p in dist.items():
        g = np.exp(np.log(p).mean(0))
        g /= g.sum()                                                  # what all the group's crops show
        ref = np.concatenate([d for k, d in dist.items() if k != key]).mean(0)   # the rest of the run
        contrast = g * (weight * np.log(g / ref) + 1 - weight)
        order = np.argsort(-contrast, kind="stable")[:4]
        rows = result.labels[result.labels["key"] == key].sort_values("rank")
        assert rows["concept"].tolist() == [concepts[i] for i in order]
        np.testing.assert_allclose(rows["score"].to_numpy(), g[order], rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(rows["contrast"].to_numpy(), contrast[order], rtol=1e-4, atol=1e-7)


def test_reference_falls_back_from_the_layer_to_the_run_to_uniform(random_clip_dir: Path) -> None:
    clip = load_clip(checkpoint=random_clip_dir)
    thumbs = group_thumbnails(small_circuit(), max_images=4)
    keys = sorted(thumbs)
    concepts = ["red", "green", "blue", "striped", "wood", "sky"]
    # one group alone in its layer: its reference is the run, as with reference 'run'
    layers = {k: ("alone" if k == keys[0] else "shared") for k in keys}
    by_layer = label_images(thumbs, clip, concepts, top_n=6, method=LabelMethod(reference="layer"),
                            layers=layers)
    by_run = label_images(thumbs, clip, concepts, top_n=6)
    def rows_of(result, wanted) -> pd.DataFrame:
        return result.labels[result.labels["key"].isin(wanted)].reset_index(drop=True)

    pd.testing.assert_frame_equal(rows_of(by_layer, keys[:1]), rows_of(by_run, keys[:1]))
    assert by_layer.method == "clip-contrast-layer-0.75"
    with pytest.raises(UserError, match="needs the layer of every group"):
        label_images(thumbs, clip, concepts, method=LabelMethod(reference="layer"))
    # a group alone in its run: the uniform reference, so it ranks by its own probability
    alone = label_images({keys[1]: thumbs[keys[1]]}, clip, concepts, top_n=6).labels
    assert alone["score"].tolist() == sorted(alone["score"], reverse=True)
    # labelling a subset with the whole run as reference gives those groups' rows of the full labelling
    part = label_images(thumbs, clip, concepts, top_n=3, label_keys=keys[:2])
    full = label_images(thumbs, clip, concepts, top_n=3)
    pd.testing.assert_frame_equal(part.labels, rows_of(full, keys[:2]))
    assert set(part.embeddings) == set(keys[:2])


def test_label_method_names_parse_and_bad_values_are_user_errors() -> None:
    assert LabelMethod.parse("contrast") == LabelMethod() and LabelMethod().name == METHOD
    assert LabelMethod.parse("mean").name == "clip-mean-softmax"
    assert LabelMethod.parse("clip-mean-softmax") == LabelMethod("mean")
    assert LabelMethod.parse("clip-contrast-layer-0.5") == LabelMethod("contrast", "layer", 0.5)
    for bad in ("clip-contrast-x-1", "nearest", "clip-contrast-run-abc"):
        with pytest.raises(UserError):
            LabelMethod.parse(bad)
    with pytest.raises(UserError, match="between 0 and 1"):
        LabelMethod(weight=1.5)


@pytest.mark.parametrize("background", ["snow", "sky"])
def test_contrast_names_the_one_concept_two_groups_differ_in_and_mean_does_not(background: str) -> None:
    """Kettles and teapots (blue circles with a handle) differ only in texture: plain vs striped. On the
    same background, with the world's tiny CLIP, the mean embedding names what both show most (the
    background, the handle); the contrast names each group's own texture."""
    from neurflow_kb.world import CONCEPTS, generate, world_clip_dir
    from neurflow_kb.world.clip import CONCEPT_TEMPLATES

    clip = load_clip(checkpoint=world_clip_dir())
    crops = {"kettle": generate(8, seed=1, classes=["kettle"], backgrounds=[background]).pil(),
             "teapot": generate(8, seed=2, classes=["teapot"], backgrounds=[background]).pil()}
    want = {"kettle": "plain", "teapot": "striped"}
    for method, names in (("contrast", True), ("mean", False)):
        lab = label_images(crops, clip, list(CONCEPTS), top_n=1, templates=CONCEPT_TEMPLATES,
                           method=method).labels
        top = dict(zip(lab["key"], lab["concept"], strict=True))
        assert all((top[k] == want[k]) == names for k in want), (method, top)
