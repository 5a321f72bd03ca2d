"""World models: short training runs learn and are reproducible; the shipped checkpoints load and pass."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from neurflow_kb.errors import UserError
from neurflow_kb.world import (
    CLASS_NAMES,
    WORLD_CLIP_NAME,
    WORLD_LAYERS,
    WORLD_PLAIN_LAYERS,
    concept_prompts,
    generate,
    load_world_classifier,
    load_world_clip,
    load_world_plain,
    register_world_clip,
    world_adapter,
    world_clip_checkpoint,
    world_clip_dir,
    world_plain_adapter,
)
from neurflow_kb.world.classifier import CLASSIFIER_FILE
from neurflow_kb.world.plain import PLAIN_FILE
from neurflow_kb_dev.world_train import (
    TEST_SEED,
    ClassifierTraining,
    ClipTraining,
    classifier_accuracy,
    clip_batch,
    clip_caption_accuracy,
    train_classifier,
    train_clip,
    train_plain,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.mark.slow          # training
def test_short_classifier_run_learns():
    cfg = ClassifierTraining(epochs=2, images_per_epoch=768, batch_size=64, test_images=240, lr=3e-3)
    result = train_classifier(cfg, log=None)
    first, last = result.history
    assert last["loss"] < first["loss"]
    assert result.metrics["test_accuracy"] > 3 / len(CLASS_NAMES)      # chance is 1/12


@pytest.mark.slow          # training, twice
def test_classifier_training_is_reproducible():
    cfg = ClassifierTraining(epochs=1, images_per_epoch=128, batch_size=32, test_images=24)
    a = train_classifier(cfg, log=None).model.state_dict()
    b = train_classifier(cfg, log=None).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = train_classifier(ClassifierTraining(seed=1, epochs=1, images_per_epoch=128, batch_size=32,
                                            test_images=24), log=None).model.state_dict()
    assert not torch.equal(a["fc.weight"], c["fc.weight"])


@pytest.mark.slow          # training, twice
def test_short_plain_run_learns_and_is_reproducible():
    cfg = ClassifierTraining(epochs=2, images_per_epoch=384, batch_size=64, test_images=120, lr=3e-3)
    a = train_plain(cfg, log=None)
    first, last = a.history
    assert last["loss"] < first["loss"]
    b = train_plain(cfg, log=None).model.state_dict()
    assert all(torch.equal(a.model.state_dict()[k], b[k]) for k in b)
    assert not any(isinstance(m, torch.nn.Identity) or "shortcut" in n for n, m in a.model.named_modules())


def test_clip_batch_match_matrix_is_consistent():
    x, texts, match = clip_batch(123, ClipTraining(batch_size=16))
    assert x.shape[0] == len(texts) == match.shape[0] == match.shape[1]
    assert bool(match.diagonal().all())                       # every view matches its own text
    for i in range(len(texts)):                               # the same text names the same concepts
        for j in range(i + 1, len(texts)):
            if texts[i] == texts[j]:
                assert torch.equal(match[:, i], match[:, j])
    # a full caption never matches a view that lacks one of its concepts
    assert not bool(match.all())


@pytest.mark.slow          # training
def test_short_clip_run_learns():
    result = train_clip(ClipTraining(steps=24, batch_size=48, eval_images=48, lr=3e-3,
                                         log_every=8), log=None)
    losses = [h["loss"] for h in result.history]
    assert len(losses) >= 2 and losses[-1] < losses[0]


# --------------------------------------------------------------------------------------------------
# shipped checkpoints


def test_shipped_classifier_reaches_95_percent_on_fresh_images():
    assert CLASSIFIER_FILE.stat().st_size < 2_000_000
    model = load_world_classifier()
    acc = classifier_accuracy(model, n=500, seed=TEST_SEED + 1000)    # a seed no run has seen
    assert acc >= 0.95


def test_world_adapter_and_registry_entry():
    from neurflow_kb.models import get_adapter, list_adapters

    adapter = world_adapter()
    assert adapter.layers == list(WORLD_LAYERS) and adapter.num_classes == len(CLASS_NAMES)
    assert adapter.class_names == list(CLASS_NAMES) and adapter.weights.startswith("world-")
    x = generate(4, seed=3).tensor()
    assert adapter.verify_chain(x) <= 1e-5
    same = get_adapter("world")
    assert same.weights == adapter.weights and same.preprocess == adapter.preprocess
    assert torch.equal(same.logits(x), adapter.logits(x))
    info = {i.name: i for i in list_adapters()}["world"]
    assert info.num_classes == 12 and info.layers == WORLD_LAYERS
    assert get_adapter("world", weights="random").weights.startswith("sha256:")
    with pytest.raises(UserError, match="not found"):
        load_world_classifier("/nonexistent/world.pt")
    # the preprocess maps a PIL image of the world to exactly the generator's tensor
    b = generate(2, seed=4)
    assert torch.allclose(adapter.preprocess(b.pil()[0]), b.tensor()[0], atol=1e-6)


def test_shipped_plain_net_reaches_95_percent_on_fresh_images():
    assert PLAIN_FILE.stat().st_size < 2_000_000
    acc = classifier_accuracy(load_world_plain(), n=500, seed=TEST_SEED + 1000)    # a seed no run has seen
    assert acc >= 0.95


def test_world_plain_adapter_and_registry_entry():
    from neurflow_kb.models import get_adapter, list_adapters

    adapter = world_plain_adapter()
    assert adapter.layers == list(WORLD_PLAIN_LAYERS) and adapter.num_classes == len(CLASS_NAMES)
    assert adapter.weights.startswith("world-plain-") and adapter.class_names == list(CLASS_NAMES)
    x = generate(4, seed=3).tensor()
    assert adapter.verify_chain(x) <= 1e-5
    assert [adapter.channels(lay) for lay in WORLD_PLAIN_LAYERS] == [16, 32, 48, 64, 12]
    same = get_adapter("world-plain")
    assert same.name == "world_plain" and same.weights == adapter.weights
    assert torch.equal(same.logits(x), adapter.logits(x))
    info = {i.name: i for i in list_adapters()}["world_plain"]
    assert info.num_classes == 12 and info.layers == WORLD_PLAIN_LAYERS
    with pytest.raises(UserError, match="not found"):
        load_world_plain("/nonexistent/plain.pt")
    with pytest.raises(UserError, match="does not hold WorldPlainNet weights"):
        load_world_plain(CLASSIFIER_FILE)


def test_shipped_clip_ranks_own_caption_first_for_80_percent():
    weights = world_clip_checkpoint()
    assert weights.stat().st_size < 5_000_000
    model, preprocess, tokenizer = load_world_clip()
    acc = clip_caption_accuracy(model, tokenizer, n=500, seed=TEST_SEED + 1000)
    assert acc >= 0.80


def test_shipped_clip_loads_through_open_clip_routes_and_labels_concepts():
    import open_clip

    model, preprocess, tokenizer = load_world_clip()
    name = register_world_clip()
    assert name == WORLD_CLIP_NAME and name in open_clip.list_models()
    other, _, pre2 = open_clip.create_model_and_transforms(name, pretrained=str(world_clip_checkpoint()))
    other.eval()
    b = generate(6, seed=9)
    x = torch.stack([preprocess(im) for im in b.pil()])
    assert torch.allclose(torch.stack([pre2(im) for im in b.pil()]), x)
    with torch.no_grad():
        assert torch.allclose(model.encode_image(x), other.encode_image(x), atol=1e-5)
        tokens = tokenizer(concept_prompts())
        assert tokens.shape[1] == 24
        text = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
        img = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
    # a whole image's best concept word is one of its planted concepts
    words = concept_prompts()
    best = (img @ text.T).argmax(1).tolist()
    planted = [set(v for k, v in r.items() if k in ("shape", "colour", "texture", "part", "background"))
               for r in b.concepts]
    assert np.mean([words[k] in p for k, p in zip(best, planted, strict=True)]) >= 0.5
    assert (world_clip_dir() / "open_clip_config.json").is_file()
