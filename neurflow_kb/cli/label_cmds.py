"""`label`: CLIP concept labels of neuron groups, in artifacts or in the knowledge base (`view` and
`debug` live in `view_cmds`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import UserError
from .group import main
from .kb_cmds import (
    StoreOptions,
    check_templates,
    clip_options,
    label_method_options,
    open_clip_encoder,
    store_clip_encoder,
    store_options,
)

if TYPE_CHECKING:
    from ..artifact import Circuit


def _print_labels(circuit: Circuit, per_group: int = 3, limit: int = 12) -> None:
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
@label_method_options
@click.option("--model", "kb_model", default=None, help="Store mode: only runs of this model.")
@click.option("--class", "kb_class", default=None, help="Store mode: only runs of this class.")
@click.option("--replace", is_flag=True, help="Store mode: relabel groups that already have labels.")
@click.option("--device", default="cpu", show_default=True, help="Device for CLIP.")
@store_options
def label(artifacts: tuple[str, ...], clip_model: str | None, clip_pretrained: str | None,
          clip_checkpoint: str | None,
          vocabulary: str, top_n: int, templates: tuple[str, ...], label_method: Any, kb_model: str | None,
          kb_class: str | None, replace: bool, device: str, opts: StoreOptions) -> None:
    """Label neuron groups with CLIP concepts: the given artifact folders (rewritten in place), or,
    without ARTIFACTS, the groups of the knowledge base (from their stored thumbnails). By default a
    group's concepts are those that set it apart from the rest of its run (docs/labels.md). Without
    --clip-* options the knowledge base is labelled with the CLIP its groups are already embedded with
    (as it records it), else ViT-B-32 / openai."""
    from ..labels import load_vocabulary

    templates = check_templates(templates)
    paths = [Path(a) for a in artifacts]
    if paths:
        from ..folders import check_destination

        for p in paths:
            if not (p / "manifest.json").is_file():
                raise UserError(f"{p} is not a circuit artifact (no manifest.json); pass folders written by "
                                "`neurflow-kb circuit --out`")
            check_destination(p, flag="artifact")  # rewritten in place: only folders neurflow-kb wrote
    vocab = load_vocabulary(vocabulary)
    if paths:
        from ..artifact import Circuit
        from ..labels import label_circuit

        clip = open_clip_encoder(clip_model, clip_pretrained, clip_checkpoint, device)
        for p in paths:
            circuit = label_circuit(Circuit.load(p), clip, vocab, top_n=top_n, templates=templates,
                                    method=label_method)
            circuit.save(p)
            n = circuit.group_embeddings.shape[0]
            click.echo(f"labelled {n} groups of {circuit.model} class {circuit.target_class} "
                       f"'{circuit.manifest.get('class_name')}' with {clip.encoder} ({vocab.name}, "
                       f"{len(vocab)} concepts, {label_method.name}) -> {p}")
            _print_labels(circuit)
        return
    from ..labels.kb import label_store

    with opts.open() as store:
        clip = store_clip_encoder(store, clip_model, clip_pretrained, clip_checkpoint, device, kb_model)
        summary = label_store(store, clip, vocab, top_n=top_n, model=kb_model, cls=kb_class, replace=replace,
                              templates=templates, method=label_method)
        click.echo(summary)
