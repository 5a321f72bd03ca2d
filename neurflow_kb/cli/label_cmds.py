"""Commands that explain circuits to people: `label` (CLIP concepts), `view` (HTML viewer) and `debug`
(which groups fire on an image and why)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from . import main
from .kb_cmds import StoreOptions, store_options


def clip_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """CLIP model, vocabulary and how many labels per group (shared by `label`, `ingest --label` and
    `query search`)."""
    options = [
        click.option("--clip-model", default="ViT-B-32", show_default=True,
                     help="open_clip architecture (used with --clip-pretrained or a weights file)."),
        click.option("--clip-pretrained", default="openai", show_default=True,
                     help="open_clip pretrained tag; weights come from the local cache or are downloaded."),
        click.option("--clip-checkpoint", default=None, metavar="PATH",
                     help="Offline weights: an open_clip checkpoint file (with --clip-model) or a folder "
                     "with open_clip_config.json and weights."),
        click.option("--vocabulary", default="broad", show_default=True,
                     help="'broad' (built-in visual concepts), 'imagenet' (class names) or a text file with "
                     "one concept per line."),
        click.option("--top-n", default=5, show_default=True, type=int, help="Labels kept per group."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def open_clip_encoder(clip_model: str, clip_pretrained: str, clip_checkpoint: str | None,
                      device: str = "cpu"):
    """Load CLIP from the shared options (missing weights offline fail at once with a UserError)."""
    from ..labels import load_clip

    return load_clip(clip_model, clip_pretrained, clip_checkpoint, device=device)


def _print_labels(circuit, per_group: int = 3, limit: int = 12) -> None:
    from ..labels import top_labels

    tops = top_labels(circuit, per_group)
    groups = circuit.strongest_groups(per_layer=3)
    shown = 0
    for _, g in groups.iterrows():
        key = (int(g["depth"]), int(g["group"]))
        if key not in tops or shown >= limit:
            continue
        text = ", ".join(f"{c} ({s:.2f})" for c, s in tops[key])
        click.echo(f"  {g['layer']:<24} group {int(g['group']):>3}  influence {g['influence']:+.4f}  {text}")
        shown += 1


@main.command()
@click.argument("artifacts", nargs=-1, type=click.Path(file_okay=False))
@clip_options
@click.option("--model", "kb_model", default=None, help="Store mode: only runs of this model.")
@click.option("--class", "kb_class", default=None, help="Store mode: only runs of this class.")
@click.option("--replace", is_flag=True, help="Store mode: relabel groups that already have labels.")
@click.option("--device", default="cpu", show_default=True, help="Device for CLIP.")
@store_options
def label(artifacts: tuple[str, ...], clip_model: str, clip_pretrained: str, clip_checkpoint: str | None,
          vocabulary: str, top_n: int, kb_model: str | None, kb_class: str | None, replace: bool, device: str,
          opts: StoreOptions) -> None:
    """Label neuron groups with CLIP concepts: the given artifact folders (rewritten in place), or,
    without ARTIFACTS, the groups of the knowledge base (from their stored thumbnails)."""
    from ..labels import load_vocabulary

    paths = [Path(a) for a in artifacts]
    for p in paths:
        if not (p / "manifest.json").is_file():
            raise UserError(f"{p} is not a circuit artifact (no manifest.json); pass folders written by "
                            "`neurflow-kb circuit --out`")
    vocab = load_vocabulary(vocabulary)
    clip = open_clip_encoder(clip_model, clip_pretrained, clip_checkpoint, device)
    if paths:
        from ..artifact import Circuit
        from ..labels import label_circuit
        from .engine_cmds import save_atomically

        for p in paths:
            circuit = label_circuit(Circuit.load(p), clip, vocab, top_n=top_n)
            save_atomically(circuit, str(p))
            n = circuit.group_embeddings.shape[0]
            click.echo(f"labelled {n} groups of {circuit.model} class {circuit.target_class} "
                       f"'{circuit.manifest.get('class_name')}' with {clip.encoder} ({vocab.name}, "
                       f"{len(vocab)} concepts) -> {p}")
            _print_labels(circuit)
        return
    from ..store.labels import label_store

    with opts.open() as store:
        summary = label_store(store, clip, vocab, top_n=top_n, model=kb_model, cls=kb_class, replace=replace)
        click.echo(summary)
