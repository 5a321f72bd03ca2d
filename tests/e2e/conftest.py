"""End-to-end fixtures: the planted-concept world (a trained CNN, a trained tiny CLIP, circuits of two
classes) and a headless Chromium driven by Playwright (Debian's /usr/bin/chromium, never downloaded)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from neurflow_kb import Circuit, NeurFlow, NeurFlowConfig
from neurflow_kb.models import ModelAdapter
from neurflow_kb.store import LadybugStore, Neo4jStore

sys.path.insert(0, str(Path(__file__).parent))

from planted import (  # noqa: E402
    CHAIN,
    CLASS_NAMES,
    MEAN,
    STD,
    World,
    make_world,
    train_classifier,
    train_tiny_clip,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
#: The two classes whose circuits the tests use: 'red circle' and 'blue square'.
PLANTED_CLASSES = (0, 7)


@dataclass
class Planted:
    """The trained world: model adapter, probe images, and a saved circuit artifact per class."""

    adapter: ModelAdapter
    world: World
    artifacts: dict[int, Path]
    clip_dir: Path

    def circuit(self, cls: int) -> Circuit:
        return Circuit.load(self.artifacts[cls])


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny open_clip model trained on the planted world, saved as an open_clip folder."""
    return train_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "tiny-clip")


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Planted:
    """The colour x shape CNN trained on 600 images, and circuits of two classes on 120 others (all
    images count: class_filter='all'), saved as artifacts."""
    torch.manual_seed(0)
    model = train_classifier(make_world(600, seed=1))
    adapter = ModelAdapter.from_module(model, CHAIN, name="planted", mean=MEAN, std=STD, input_size=32,
                                       class_names=CLASS_NAMES, weights="trained-seed0")
    world = make_world(120, seed=2)
    config = NeurFlowConfig(tau=4, top_k=12, ig_steps=8, class_filter="all", granularities=(1.0, 0.5),
                            max_groups=12)
    root = tmp_path_factory.mktemp("planted-artifacts")
    artifacts = {}
    for cls in PLANTED_CLASSES:
        circuit = NeurFlow(config).fit(adapter, world.images, cls, progress=False)
        artifacts[cls] = circuit.save(root / f"class-{cls}")
    return Planted(adapter, world, artifacts, tiny_clip_dir)


@pytest.fixture(params=["ladybug", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def kb(request, tmp_path: Path):
    """(store, CLI options) of an empty knowledge base of each kind."""
    if request.param == "ladybug":
        path = tmp_path / "kb.lbug"
        with LadybugStore(path) as st:
            st.init_schema()
        yield (lambda read_only=False: LadybugStore(path, read_only=read_only)), ["--store", str(path)]
        return
    srv = request.getfixturevalue("neo4j_clean")
    args = ["--neo4j", srv.uri, "--user", srv.user, "--password", srv.password]
    yield (lambda read_only=False: Neo4jStore(srv.uri, user=srv.user, password=srv.password,
                                              database=srv.database, read_only=read_only)), args


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium (Debian's package) through Playwright; fails when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run scripts/install-chromium (the test command does)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
