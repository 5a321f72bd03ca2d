"""Shared by the artifact tests: one small real circuit of the shipped world classifier, its images on
disk (the CLI in-process: `neurflow_kb_dev.cli_runs`)."""

from __future__ import annotations

import functools
from pathlib import Path

from neurflow_kb import Circuit, NeurFlow, NeurFlowConfig

#: Settings that keep a world circuit to a few seconds on two CPU cores.
SMALL = dict(tau=2, top_k=4, ig_steps=4, class_filter="all", max_nodes_per_layer=3, granularities=(1.0, 0.5))
CHAIN = ["layer3", "layer4", "fc"]
#: The same settings as `neurflow-kb circuit` options.
SMALL_CLI = ["--tau", "2", "--top-k", "4", "--ig-steps", "4", "--filter", "all", "--max-nodes", "3",
             "--quiet", "--layers", ",".join(CHAIN)]


@functools.lru_cache(maxsize=1)
def world_circuit() -> Circuit:
    """A real circuit of world class 0 on six generated images (computed once per test process)."""
    from neurflow_kb.models import get_adapter
    from neurflow_kb.world import generate

    adapter = get_adapter("world", layers=CHAIN)
    images = generate(6, seed=1, classes=[0, 1]).tensor()
    return NeurFlow(NeurFlowConfig(**SMALL)).fit(adapter, images, 0, progress=False)


def world_images(folder: Path) -> Path:
    """Six world images as PNG files in `folder`."""
    from neurflow_kb.world import generate

    return generate(6, seed=1, classes=[0, 1]).save(folder)
