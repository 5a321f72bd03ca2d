"""Commands that compute circuits: `circuit`, `models`, `demo`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..pipeline.classes import resolve_class
from .group import main
from .options import config_values, engine_options, parse_layers

if TYPE_CHECKING:
    from ..artifact import Circuit
    from ..config import NeurFlowConfig


def build_config(**kw: Any) -> NeurFlowConfig:
    """`NeurFlowConfig` from the shared engine options."""
    from ..config import NeurFlowConfig

    return NeurFlowConfig(**config_values(kw))


def compute_circuit(model: str, images: str, cls: str, **kw: Any) -> Circuit:
    """Adapter + images + class name/index -> Circuit (the work behind `circuit`): one streamed prediction
    pass over the images, then only the class's images (at most --max-images, seeded choice) are decoded."""
    from ..data import select_images
    from ..engine import NeurFlow
    from ..models import get_adapter

    config = build_config(**kw)          # bad settings fail before a model is built
    adapter = get_adapter(model, weights=kw["weights"], layers=parse_layers(kw.get("layers")),
                          device=kw["device"], seed=kw["seed"])
    target = resolve_class(cls, adapter.class_names, adapter.num_classes)
    imageset = select_images(images, adapter, target, config.class_filter, max_images=kw.get("max_images"),
                             seed=config.seed, batch_size=config.batch_size, device=config.device,
                             progress=not kw.get("quiet"))
    return NeurFlow(config).fit(adapter, imageset, target, progress=not kw.get("quiet"))


def print_circuit(circuit: Circuit, per_layer: int = 3) -> None:
    """Each layer's strongest groups (by their share of the class) with their leading member neurons."""
    from ..shares import percent

    m = circuit.manifest
    click.echo(f"{m['model']} ({m['weights']}) class {m['target_class']} '{m['class_name']}': "
               f"{m['n_images']} images, {m['n_crops']} crops, {len(circuit.nodes)} nodes, "
               f"{len(circuit.groups)} groups")
    nodes = circuit.nodes
    for _, g in circuit.strongest_groups(per_layer).iterrows():
        members = nodes[(nodes.depth == g["depth"]) & (nodes.group == g["group"])]
        lead = members.sort_values("activation", ascending=False)["neuron"].drop_duplicates().head(6)
        share = percent(g["abs_share"], signed=False)
        click.echo(f"  {g['layer']:<28} group {int(g['group']):>3}  share {share:>6} "
                   f"(net {percent(g['share']):>7})  nodes {int(g['size']):>3}  "
                   f"neurons {', '.join(str(int(n)) for n in lead)}")


@main.command()
@click.option("--model", required=True, help="A built-in (`neurflow-kb models`), torchvision:NAME or "
              "timm:NAME (`neurflow-kb models --all`).")
@click.option("--images", required=True, help="Image folder, ImageNet-val folder or file list.")
@click.option("--class", "cls", required=True, help="Class index or name.")
@click.option("--out", required=True, help="Folder for the circuit artifact.")
@click.option("--per-layer", default=3, show_default=True, help="Groups printed per layer.")
@engine_options
def circuit(model: str, images: str, cls: str, out: str, per_layer: int, **kw: Any) -> None:
    """Compute one class circuit and save it as an artifact (Parquet + JSON)."""
    from ..folders import check_destination

    check_destination(out)  # refuse a user's folder, a file or a link before computing anything
    result = compute_circuit(model, images, cls, **kw)
    path = result.save(out)
    print_circuit(result, per_layer)
    click.echo(f"saved {path}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "everything", is_flag=True,
              help="Also every torchvision classifier and timm model (when timm is installed) a --model can "
                   "name; their layer chains are derived when they are built.")
def models(as_json: bool, everything: bool) -> None:
    """List the built-in model adapters and their default layer chains (--all: every referable model)."""
    import json

    from ..models import list_adapters, referable_models
    from ..models.reference import timm_models

    infos = list_adapters()
    rows: list[dict[str, Any]] = [
        {"name": i.name, "source": "builtin", "description": i.description, "layers": list(i.layers),
         "weights": i.weights} for i in infos]
    if everything:
        rows += [{"name": r["name"], "source": r["source"], "description": f"{r['source']} {r['name']}",
                  "layers": None, "weights": "default"}
                 for r in referable_models() if r["source"] != "builtin"]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        if r["source"] == "builtin":
            click.echo(f"{r['name']:<20} {r['description']}")
            click.echo(f"{'':<20} layers: {' -> '.join(r['layers'])}")
        else:
            click.echo(f"{r['name']:<34} {r['source']:<12} chain: derived (or --layers)")
    if everything and timm_models() is None:
        click.echo("(timm models: not listed, timm is not installed: pip install timm)")


def demo_images(folder: Path) -> Path:
    """Write scikit-image's cat photo (Chelsea) and a few flips and zooms of it as PNGs into `folder`."""
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    cat = data.chelsea()
    h, w = cat.shape[:2]
    variants = {
        "chelsea": cat,
        "chelsea_flipped": cat[:, ::-1],
        "chelsea_face": cat[: h * 3 // 4, w // 8: w * 7 // 8],
        "chelsea_zoom": cat[h // 10: h * 9 // 10, w // 5: w * 4 // 5],
        "chelsea_zoom_flipped": cat[h // 10: h * 9 // 10, w // 5: w * 4 // 5][:, ::-1],
        "chelsea_left": cat[:, : w * 3 // 4],
    }
    for name, img in variants.items():
        Image.fromarray(np.ascontiguousarray(img)).save(folder / f"{name}.png")
    return folder
