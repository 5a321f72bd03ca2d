"""The world's two shipped classifiers as named models: ``world`` (WorldNet) and ``world_plain``
(WorldPlainNet), registered with the models room on import so `get_adapter("world")` builds them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..models.adapter import Preprocess
from ..models.registry import Built, RegisteredAdapter, build_shipped, register_adapter
from .classifier import CLASSIFIER_FILE, WORLD_LAYERS, WorldNet
from .generator import CLASS_NAMES, IMAGE_SIZE, WORLD_MEAN, WORLD_STD
from .plain import PLAIN_FILE, WORLD_PLAIN_LAYERS, WorldPlainNet


def world_preprocess() -> Preprocess:
    """The classifier's `Preprocess` (64 px, world mean/std) for PIL images and thumbnails."""
    return Preprocess(resize=IMAGE_SIZE, crop=IMAGE_SIZE, mean=WORLD_MEAN, std=WORLD_STD)


def world_weights_id() -> str:
    """A short id of the shipped classifier weights ('world-' + first 12 hex digits of their SHA-256)."""
    return _file_id("world-", CLASSIFIER_FILE)


def world_plain_weights_id() -> str:
    """A short id of the shipped plain world net ('world-plain-' + first 12 hex digits of its SHA-256)."""
    return _file_id("world-plain-", PLAIN_FILE)


def _file_id(prefix: str, path: Path) -> str:
    return prefix + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _build_world(weights: str, seed: int) -> Built:
    return build_shipped("world", WorldNet, weights, seed, preprocess=world_preprocess(),
                         class_names=list(CLASS_NAMES), shipped=lambda: CLASSIFIER_FILE,
                         shipped_id=world_weights_id)


def _build_world_plain(weights: str, seed: int) -> Built:
    return build_shipped("world_plain", WorldPlainNet, weights, seed, preprocess=world_preprocess(),
                         class_names=list(CLASS_NAMES), shipped=lambda: PLAIN_FILE,
                         shipped_id=world_plain_weights_id)


register_adapter(RegisteredAdapter(
    "world", "the planted-concept world's ResNet-style classifier (12 classes, 64 px; weights shipped with "
    "neurflow-kb; see neurflow_kb.world)", tuple(WORLD_LAYERS), _build_world, world_weights_id,
    num_classes=len(CLASS_NAMES)))
register_adapter(RegisteredAdapter(
    "world_plain", "the planted-concept world's plain convolutional net (12 classes, 64 px, no skip "
    "connections; weights shipped with neurflow-kb)", tuple(WORLD_PLAIN_LAYERS), _build_world_plain,
    world_plain_weights_id, num_classes=len(CLASS_NAMES)))
