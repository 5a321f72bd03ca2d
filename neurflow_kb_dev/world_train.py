"""Seeded, reproducible training of the world classifier and the tiny world CLIP on this CPU.

    python -m neurflow_kb_dev.world_train classifier          # ~3 min, writes assets/world_classifier.pt
    python -m neurflow_kb_dev.world_train plain               # ~4 min, writes assets/world_plain.pt
    python -m neurflow_kb_dev.world_train clip                # ~5 min, writes assets/world_clip/
    python -m neurflow_kb_dev.world_train evaluate            # accuracy of the shipped checkpoints

Training data are drawn fresh from the generator (a new seed per epoch or step), never the test seeds.
Determinism: fixed seeds, `torch.use_deterministic_algorithms`, a fixed thread count (1 by default);
the same command on the same machine and library versions writes the same weights.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurflow_kb.engine.neurflow import package_versions
from neurflow_kb.world.classifier import CLASSIFIER_FILE, WorldNet, load_world_classifier
from neurflow_kb.world.clip import (
    CLIP_DIR,
    CLIP_WEIGHTS,
    CONCEPT_TEMPLATES,
    CONTEXT_LENGTH,
    OPENAI_MEAN,
    OPENAI_STD,
    concept_prompts,
    new_world_clip,
    write_clip_configs,
)
from neurflow_kb.world.generator import (
    CONCEPTS,
    IMAGE_SIZE,
    WorldBatch,
    all_captions,
    generate,
    region_caption,
    region_concepts,
)
from neurflow_kb.world.plain import PLAIN_FILE, WorldPlainNet, load_world_plain

TEST_SEED = 7            # the held-out test set of the accuracy figures and the tests
_CLASSIFIER_SEEDS = 1_000_000
_CLIP_SEEDS = 2_000_000
_PLAIN_SEEDS = 3_000_000


def _say(message: str) -> None:
    print(message, flush=True)


def _versions() -> dict[str, str]:
    return package_versions(("torch", "numpy", "pillow", "open_clip_torch"), missing="absent")


@contextlib.contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seed torch, fix the thread count and force deterministic kernels; restore everything on exit."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def _one_cycle(optimizer: torch.optim.Optimizer, total: int, warmup: float = 0.05) -> Any:
    """Linear warm-up then cosine decay to zero, per step."""
    w = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < w:
            return (step + 1) / w
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total - w))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (recorded next to each checkpoint)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class TrainResult:
    """What a training run produced: the model, per-epoch (or per-interval) history, final metrics."""

    model: nn.Module
    history: list[dict[str, float]]
    metrics: dict[str, float]
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# classifier


@dataclass
class ClassifierTraining:
    """Settings of the classifier run (defaults: the shipped checkpoint)."""

    seed: int = 0
    epochs: int = 6
    images_per_epoch: int = 5000
    batch_size: int = 64
    lr: float = 4e-3
    weight_decay: float = 5e-4
    test_images: int = 1000
    threads: int = 1


@torch.no_grad()
def classifier_accuracy(model: nn.Module, n: int = 1000, seed: int = TEST_SEED,
                        batch: WorldBatch | None = None) -> float:
    """Top-1 accuracy of a world classifier on `n` fresh world images of `seed` (or on `batch`)."""
    data = batch if batch is not None else generate(n, seed)
    model.eval()
    x, y = data.tensor(), data.labels_tensor()
    pred = torch.cat([model(x[i:i + 256]).argmax(1) for i in range(0, len(y), 256)])
    return float((pred == y).float().mean())


def train_classifier(cfg: ClassifierTraining | None = None, log: Callable[[str], None] | None = _say
                     ) -> TrainResult:
    """Train `WorldNet` on fresh world images with AdamW and a one-cycle schedule."""
    return _train(cfg or ClassifierTraining(), log, WorldNet, _CLASSIFIER_SEEDS, "classifier")


def train_plain(cfg: ClassifierTraining | None = None,
                log: Callable[[str], None] | None = _say) -> TrainResult:
    """Train `WorldPlainNet` the same way (fresh images every epoch, one-cycle AdamW), other data seeds."""
    return _train(cfg or ClassifierTraining(), log, WorldPlainNet, _PLAIN_SEEDS, "plain")


def _train(cfg: ClassifierTraining, log: Callable[[str], None] | None, factory: Callable[[], nn.Module],
           seeds: int, what: str) -> TrainResult:
    log = log or (lambda _: None)
    started = time.perf_counter()
    cpu0 = time.process_time()
    history: list[dict[str, float]] = []
    test = generate(cfg.test_images, TEST_SEED)
    with deterministic(cfg.seed, cfg.threads):
        model = factory()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = cfg.images_per_epoch // cfg.batch_size
        sched = _one_cycle(opt, cfg.epochs * steps_per_epoch)
        order_gen = torch.Generator().manual_seed(cfg.seed)
        for epoch in range(cfg.epochs):
            data = generate(cfg.images_per_epoch, seeds + 10_000 * cfg.seed + epoch)
            x, y = data.tensor(), data.labels_tensor()
            order = torch.randperm(len(y), generator=order_gen)
            model.train()
            losses, correct = [], 0
            for s in range(steps_per_epoch):
                idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
                logits = model(x[idx])
                loss = F.cross_entropy(logits, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                correct += int((logits.argmax(1) == y[idx]).sum())
            acc = classifier_accuracy(model, batch=test)
            row = {"epoch": epoch, "loss": float(np.mean(losses)), "train_accuracy":
                   correct / (steps_per_epoch * cfg.batch_size), "test_accuracy": acc,
                   "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu0}
            history.append(row)
            log(f"{what} epoch {epoch}: loss {row['loss']:.4f} train {row['train_accuracy']:.3f} "
                f"test {acc:.4f} ({row['seconds']:.0f} s)")
    model.eval()
    seconds = time.perf_counter() - started
    metrics = {"test_accuracy": history[-1]["test_accuracy"], "cpu_seconds": time.process_time() - cpu0}
    return TrainResult(model, history, metrics, seconds, asdict(cfg))


def save_classifier(result: TrainResult, path: Path = CLASSIFIER_FILE) -> Path:
    """Write the state dict and a JSON record (config, history, accuracy, time, versions, sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result.model.state_dict(), path)
    record = {"config": result.config, "history": result.history, "metrics": result.metrics,
              "train_seconds": round(result.seconds, 1), "test_seed": TEST_SEED, "versions": _versions(),
              "sha256": sha256(path), "bytes": path.stat().st_size}
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------------------------------
# tiny CLIP


@dataclass
class ClipTraining:
    """Settings of the tiny-CLIP run (defaults: the shipped checkpoint).

    Each step draws `batch_size // 2` fresh images and makes two views of each: the whole image and a
    random square crop (16 or 32 px, like NeurFlow's crops). A view's text is its full caption, a
    partial caption of the concepts visible in it, or one visible concept name (`CONCEPT_TEMPLATES`).
    """

    seed: int = 0
    steps: int = 400
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    single_concept_fraction: float = 0.3
    partial_fraction: float = 0.2
    crop_sizes: tuple[int, ...] = (16, 32)
    eval_images: int = 500
    threads: int = 1
    log_every: int = 50


def _clip_normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def clip_views(batch: WorldBatch, boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
    """CLIP inputs [N,3,64,64] of (image, top, left, size) boxes: cropped, resized bilinearly, normalised."""
    x = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float().div_(255.0)
    out = torch.empty(len(boxes), 3, IMAGE_SIZE, IMAGE_SIZE)
    for k, (i, t, le, s) in enumerate(boxes):
        patch = x[i:i + 1, :, t:t + s, le:le + s]
        out[k] = patch[0] if s == IMAGE_SIZE else F.interpolate(patch, size=(IMAGE_SIZE, IMAGE_SIZE),
                                                               mode="bilinear", align_corners=False)[0]
    return _clip_normalize(out)


def _text_for(visible: list[str], rng: np.random.Generator, cfg: ClipTraining, caption: str | None
              ) -> tuple[str, list[str]]:
    """A training text for a view and the concepts it mentions."""
    u = rng.random()
    if u < cfg.single_concept_fraction:
        c = visible[int(rng.integers(len(visible)))]
        template = CONCEPT_TEMPLATES[int(rng.integers(len(CONCEPT_TEMPLATES)))]
        return template.format(c), [c]
    if u < cfg.single_concept_fraction + cfg.partial_fraction and len(visible) > 1:
        keep = [c for c in visible if rng.random() < 0.5] or [visible[0]]
        return region_caption(keep), keep
    if caption is not None:
        return caption, visible
    return region_caption(visible), visible


def _concept_bits(concepts: list[str]) -> int:
    return sum(1 << CONCEPTS.index(c) for c in concepts)


def clip_batch(step_seed: int, cfg: ClipTraining) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """One training batch: views, texts, match matrix (M[i,j]: text j names only concepts of view i)."""
    half = cfg.batch_size // 2
    data = generate(half, step_seed)
    rng = np.random.default_rng([step_seed, 1])
    boxes, texts, vis_bits, txt_bits = [], [], [], []
    for i in range(half):
        rec, om, pm = data.concepts[i], data.object_masks[i], data.part_masks[i]
        full = region_concepts(rec, om, pm, 0, 0, IMAGE_SIZE)
        s = int(cfg.crop_sizes[int(rng.integers(len(cfg.crop_sizes)))])
        t, le = (int(v) for v in rng.integers(0, IMAGE_SIZE - s + 1, size=2))
        crop = region_concepts(rec, om, pm, t, le, s)
        views = [((i, 0, 0, IMAGE_SIZE), full, data.captions[i])]
        if crop:
            views.append(((i, t, le, s), crop, None))
        for box, visible, cap in views:
            text, named = _text_for(visible, rng, cfg, cap)
            boxes.append(box)
            texts.append(text)
            vis_bits.append(_concept_bits(visible))
            txt_bits.append(_concept_bits(named))
    v = torch.tensor(vis_bits, dtype=torch.int64)
    t_ = torch.tensor(txt_bits, dtype=torch.int64)
    match = (t_.view(1, -1) & ~v.view(-1, 1)) == 0
    return clip_views(data, boxes), texts, match


def _soft_ce(logits: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    target = match.float() / match.float().sum(1, keepdim=True)
    return -(target * logits.log_softmax(1)).sum(1).mean()


@torch.no_grad()
def clip_caption_accuracy(model: nn.Module, tokenizer: Any, n: int = 500, seed: int = TEST_SEED
                          ) -> float:
    """Share of `n` test images whose own caption ranks first among the world's distinct captions."""
    model.eval()
    data = generate(n, seed)
    captions = all_captions()
    text = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)
    x = clip_views(data, [(i, 0, 0, IMAGE_SIZE) for i in range(n)])
    img = torch.cat([F.normalize(model.encode_image(x[i:i + 256]), dim=-1) for i in range(0, n, 256)])
    best = (img @ text.T).argmax(1).numpy()
    own = np.array([captions.index(c) for c in data.captions])
    return float((best == own).mean())


@torch.no_grad()
def clip_concept_accuracy(model: nn.Module, tokenizer: Any, n: int = 500, seed: int = TEST_SEED,
                          crop_sizes: tuple[int, ...] = (16, 32), template: str = "{}") -> float:
    """Share of random crops (16/32 px of `n` test images) whose top concept word is visible in the crop."""
    model.eval()
    data = generate(n, seed)
    rng = np.random.default_rng([seed, 99])
    boxes, visible = [], []
    for i in range(n):
        s = int(crop_sizes[i % len(crop_sizes)])
        t, le = (int(v) for v in rng.integers(0, IMAGE_SIZE - s + 1, size=2))
        vis = region_concepts(data.concepts[i], data.object_masks[i], data.part_masks[i], t, le, s)
        if vis:
            boxes.append((i, t, le, s))
            visible.append(set(vis))
    text = F.normalize(model.encode_text(tokenizer(concept_prompts(template))), dim=-1)
    x = clip_views(data, boxes)
    img = torch.cat([F.normalize(model.encode_image(x[i:i + 256]), dim=-1) for i in range(0, len(x), 256)])
    top = (img @ text.T).argmax(1).numpy()
    return float(np.mean([CONCEPTS[k] in vis for k, vis in zip(top, visible, strict=True)]))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        plain = p.ndim < 2 or "embedding" in name or "logit_scale" in name
        (no_decay if plain else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_clip(cfg: ClipTraining | None = None, log: Callable[[str], None] | None = _say) -> TrainResult:
    """Train the tiny CLIP contrastively (multi-positive InfoNCE over image views and texts)."""
    import open_clip

    cfg = cfg or ClipTraining()
    log = log or (lambda _: None)
    tokenizer = open_clip.get_tokenizer("RN50", context_length=CONTEXT_LENGTH)
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    seen_tokens: set[int] = set()
    with deterministic(cfg.seed, cfg.threads):
        model = new_world_clip()
        opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
        sched = _one_cycle(opt, cfg.steps)
        losses = []
        for step in range(cfg.steps):
            model.train()
            x, texts, match = clip_batch(_CLIP_SEEDS + 10_000 * cfg.seed + step, cfg)
            tokens = tokenizer(texts)
            seen_tokens.update(int(t) for t in torch.unique(tokens))
            out = model(x, tokens)
            logits = out["logit_scale"] * out["image_features"] @ out["text_features"].T
            loss = 0.5 * (_soft_ce(logits, match) + _soft_ce(logits.T, match.T))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(float(loss.detach()))
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                row = {"step": step + 1, "loss": float(np.mean(losses[-cfg.log_every:])),
                       "seconds": time.perf_counter() - started}
                history.append(row)
                log(f"clip step {step + 1}: loss {row['loss']:.4f} ({row['seconds']:.0f} s)")
        model.eval()
        # token rows never seen in training carry no information: zero them (they compress to nothing)
        with torch.no_grad():
            unused = torch.ones(model.token_embedding.weight.shape[0], dtype=torch.bool)
            unused[sorted(seen_tokens)] = False
            model.token_embedding.weight[unused] = 0.0
        metrics = {"caption_top1": clip_caption_accuracy(model, tokenizer, cfg.eval_images),
                   "concept_top1_crops": clip_concept_accuracy(model, tokenizer, cfg.eval_images)}
    seconds = time.perf_counter() - started
    log(f"clip: caption top-1 {metrics['caption_top1']:.3f}, concept top-1 on crops "
        f"{metrics['concept_top1_crops']:.3f} ({seconds:.0f} s)")
    return TrainResult(model, history, metrics, seconds, asdict(cfg))


def save_clip(result: TrainResult, directory: Path = CLIP_DIR) -> Path:
    """Write the open_clip folder: configs, fp16 safetensors weights and a JSON training record."""
    from safetensors.torch import save_file

    write_clip_configs(directory)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in result.model.state_dict().items()}
    weights = directory / CLIP_WEIGHTS
    save_file(state, str(weights))
    weights.chmod(0o644)
    record = {"config": result.config, "history": result.history, "metrics": result.metrics,
              "train_seconds": round(result.seconds, 1), "test_seed": TEST_SEED, "versions": _versions(),
              "sha256": sha256(weights), "bytes": weights.stat().st_size, "stored_dtype": "float16"}
    (directory / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return weights


# --------------------------------------------------------------------------------------------------
# command line


def evaluate_shipped(n: int = 1000, threads: int = 1) -> dict[str, float]:
    """Accuracy figures of the shipped checkpoints on the held-out test seed."""
    from neurflow_kb.world.clip import load_world_clip

    torch.set_num_threads(threads)
    out = {"classifier_test_accuracy": classifier_accuracy(load_world_classifier(), n),
           "plain_test_accuracy": classifier_accuracy(load_world_plain(), n)}
    model, _, tokenizer = load_world_clip()
    out["clip_caption_top1"] = clip_caption_accuracy(model, tokenizer, n)
    out["clip_concept_top1_crops"] = clip_concept_accuracy(model, tokenizer, n)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: train the classifier or the tiny CLIP, or evaluate the shipped checkpoints."""
    p = argparse.ArgumentParser(prog="python -m neurflow_kb_dev.world_train",
                                description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["classifier", "plain", "clip", "evaluate"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="classifier epochs")
    p.add_argument("--images-per-epoch", type=int, default=None, help="classifier images per epoch")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--steps", type=int, default=None, help="CLIP steps")
    p.add_argument("--out", type=Path, default=None, help="output file (classifier) or folder (clip)")
    args = p.parse_args(argv)
    if args.what == "evaluate":
        print(json.dumps(evaluate_shipped(threads=args.threads)))
        return 0
    if args.what in ("classifier", "plain"):
        ccfg = ClassifierTraining(seed=args.seed, threads=args.threads)
        if args.epochs:
            ccfg.epochs = args.epochs
        if args.images_per_epoch:
            ccfg.images_per_epoch = args.images_per_epoch
        if args.lr:
            ccfg.lr = args.lr
        if args.what == "classifier":
            result = train_classifier(ccfg)
            path = save_classifier(result, args.out or CLASSIFIER_FILE)
        else:
            result = train_plain(ccfg)
            path = save_classifier(result, args.out or PLAIN_FILE)
    else:
        kcfg = ClipTraining(seed=args.seed, threads=args.threads)
        if args.steps:
            kcfg.steps = args.steps
        if args.lr:
            kcfg.lr = args.lr
        result = train_clip(kcfg)
        path = save_clip(result, args.out or CLIP_DIR)
    print(json.dumps({"model": args.what, "path": str(path), "seconds": round(result.seconds, 1),
                      **result.metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
