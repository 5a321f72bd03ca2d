"""`neurflow-kb demo`: the main job, offline, on the embedded store: circuit -> knowledge base -> answer."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from . import main
from .engine_cmds import demo_images, print_circuit, save_atomically


@main.command()
@click.option("--out", default="demo-output", show_default=True, help="Folder for images and the artifact.")
@click.option("--store", "store_path", default=None,
              help="Embedded knowledge-base file (default: neurflow-kb.lbug in the working directory).")
@click.option("--class", "cls", default="tiger cat", show_default=True, help="ImageNet class to explain.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out: str, store_path: str | None, cls: str, quiet: bool) -> None:
    """Explain an ImageNet class of EfficientNet-Lite0 (real weights, offline) and query the result.

    Computes the circuit on scikit-image's cat photo and variants of it, saves the artifact, writes it
    into the embedded knowledge base and prints which groups drive the class.
    """
    from ..data import load_images
    from ..engine import NeurFlow
    from ..models import get_adapter
    from ..queries import drivers
    from ..store import DEFAULT_STORE, open_store
    from .engine_cmds import resolve_class

    folder = demo_images(Path(out) / "images")
    adapter = get_adapter("efficientnet_lite0", layers=["_blocks.10", "_blocks.14", "_blocks.15", "_fc"])
    target = resolve_class(cls, adapter.class_names, adapter.num_classes)
    images = load_images(str(folder), adapter.preprocess)
    engine = NeurFlow(tau=4, top_k=16, max_nodes_per_layer=6, strategy="fast", class_filter="predicted")
    circuit = engine.fit(adapter, images, target, progress=not quiet)
    path = save_atomically(circuit, str(Path(out) / f"circuit-{target}"))
    print_circuit(circuit)
    click.echo(f"artifact: {path}")

    with open_store(store_path=store_path or DEFAULT_STORE) as store:
        store.write_circuit(circuit)
        table = drivers(store, target, model=circuit.model, limit=10)
    click.echo(f"\nWhich groups drive class {target} '{circuit.manifest['class_name']}'? "
               f"(query `drivers` on the embedded store)")
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        click.echo(table.to_string(index=False))
