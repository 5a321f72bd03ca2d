"""Commands that explain circuits to people: `label` (CLIP concepts), `view` (HTML viewer) and `debug`
(which groups fire on an image and why)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import UserError
from . import main
from .kb_cmds import (
    StoreOptions,
    check_templates,
    clip_options,
    label_method_options,
    open_clip_encoder,
    store_clip_encoder,
    store_options,
)


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


def _view_from(artifact: str | None, cls: str | None, model: str | None, run: str | None, opts: StoreOptions,
               store=None):
    """A `CircuitView` from an artifact folder, or from the knowledge base (class and optional model/run)."""
    from ..viewer import from_circuit

    if artifact:
        from ..artifact import Circuit

        return from_circuit(Circuit.load(artifact))
    if cls is None and run is None:
        raise UserError("say which circuit: --class CLASS (with --model when several models have it), "
                        "--run KEY, or --artifact DIR")
    from ..viewer.store_view import circuit_view

    if store is not None:
        return circuit_view(store, cls=cls, model=model, run=run)
    with opts.open(read_only=True) as st:
        return circuit_view(st, cls=cls, model=model, run=run)


@main.command()
@click.option("--class", "cls", default=None, help="Class index or name (knowledge-base mode).")
@click.option("--model", default=None, help="Model name or key (when several models have the class).")
@click.option("--run", default=None, help="A run key instead of --class.")
@click.option("--artifact", default=None, type=click.Path(file_okay=False),
              help="Read a circuit artifact folder instead of the knowledge base.")
@click.option("--compare-class", default=None, help="Show this class of the same model beside it.")
@click.option("--compare-model", default=None, help="Show the same class of this model beside it.")
@click.option("--compare-run", default=None, help="Show this run beside it.")
@click.option("--compare-artifact", default=None, type=click.Path(file_okay=False),
              help="Show this circuit artifact beside --artifact.")
@click.option("-o", "--out", default="circuit.html", show_default=True, help="HTML file to write.")
@store_options
def view(cls: str | None, model: str | None, run: str | None, artifact: str | None, compare_class: str | None,
         compare_model: str | None, compare_run: str | None, compare_artifact: str | None, out: str,
         opts: StoreOptions) -> None:
    """Write a self-contained HTML view of a class circuit (opens offline in any browser): layers, groups
    ranked and sized by their share of the class, exemplar thumbnails and labels, edges as wide as the
    share they pass; click a group for its details. With --compare-*, two circuits side by side (two
    classes of one model, or one class of two models), matched groups linked and highlighted."""
    from ..viewer import write_html

    if compare_artifact or compare_class or compare_model or compare_run:
        v = _compare_from(artifact, cls, model, run, compare_artifact, compare_class, compare_model,
                          compare_run, opts)
        path = write_html(v, out)
        click.echo(f"wrote {path} ({len(v.a.groups)} + {len(v.b.groups)} groups, {len(v.links)} matched "
                   f"pairs by {v.link_kind}) - {v.title}")
        return
    v = _view_from(artifact, cls, model, run, opts)
    path = write_html(v, out)
    click.echo(f"wrote {path} ({len(v.groups)} groups, {len(v.edges)} edges) - {v.title}")


def _compare_from(artifact: str | None, cls: str | None, model: str | None, run: str | None,
                  compare_artifact: str | None, compare_class: str | None, compare_model: str | None,
                  compare_run: str | None, opts: StoreOptions):
    """A `CompareView` of two artifacts, or of two runs of the knowledge base."""
    if artifact or compare_artifact:
        if not (artifact and compare_artifact):
            raise UserError("--compare-artifact needs --artifact (two artifact folders side by side)")
        from ..artifact import Circuit
        from ..viewer import compare_artifacts

        return compare_artifacts(Circuit.load(artifact), Circuit.load(compare_artifact))
    from ..viewer.store_view import compare_store_view

    with opts.open(read_only=True) as st:
        return compare_store_view(st, cls=cls, model=model, run=run, other_cls=compare_class,
                                  other_model=compare_model, other_run=compare_run)


@main.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--model", required=True, help="Built-in model name (see `neurflow-kb models`).")
@click.option("--weights", default="default", show_default=True,
              help="'default' (pretrained), 'random', or a state_dict file: the weights of the circuit.")
@click.option("--layers", default=None, help="Comma-separated layer chain (default: the model's chain).")
@click.option("--class", "cls", default=None, help="Circuit class (default: the class the model predicts).")
@click.option("--artifact", default=None, type=click.Path(file_okay=False),
              help="Read the circuit from an artifact folder instead of the knowledge base.")
@click.option("--threshold", default=0.8, show_default=True, type=float,
              help="A group fires at score >= this.")
@click.option("--floor", default=0.05, show_default=True, type=float,
              help="Floor of a neuron's activation ratio (instead of the official 1e-6).")
@click.option("-o", "--out", default=None, help="HTML explanation file (default: debug-<image>.html).")
@click.option("--save", is_flag=True,
              help="Write (:Image)-[:ACTIVATES]->(:NeuronGroup) for the firing groups.")
@click.option("--json", "as_json", is_flag=True, help="Print the group scores and path as JSON.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of random weights.")
@click.option("--device", default="cpu", show_default=True)
@store_options
def debug(image: str, model: str, weights: str, layers: str | None, cls: str | None, artifact: str | None,
          threshold: float, floor: float, out: str | None, save: bool, as_json: bool, seed: int, device: str,
          opts: StoreOptions) -> None:
    """Explain the model's decision on IMAGE with a class circuit: which groups fire on which crops, the
    strongest circuit path to the class, and an HTML explanation."""
    import json

    from ..debug import DebugConfig, debug_image

    if artifact and save:
        raise UserError("--save writes to the knowledge base; drop --artifact (the circuit must be in the "
                        "store)")
    if not Path(image).is_file():
        raise UserError(f"image {image} does not exist; give an image file (PNG, JPEG, ...)")
    config = DebugConfig(floor=floor, threshold=threshold, device=device)
    from ..models import get_adapter
    from ..viewer.explain import write_explanation
    from .engine_cmds import parse_layers, resolve_class

    adapter = get_adapter(model, weights=weights, layers=parse_layers(layers), device=device, seed=seed)
    target = None if cls is None else resolve_class(cls, adapter.class_names, adapter.num_classes)
    if target is None:
        from ..debug import _load_image

        x, _, _ = _load_image(image, adapter)
        import torch

        with torch.no_grad():
            target = int(adapter.logits(x.unsqueeze(0).to(device)).argmax(1)[0])
    if artifact:
        from ..artifact import Circuit
        from ..viewer import from_circuit

        circuit = Circuit.load(artifact)
        if circuit.model != adapter.name or str(circuit.manifest.get("weights")) != adapter.weights:
            have = f"{circuit.model} ({circuit.manifest.get('weights')})"
            given = adapter.weights if adapter.weights_source == adapter.weights else \
                f"{adapter.weights_source}, {adapter.weights}"
            raise UserError(f"the artifact is a circuit of {have} but --model/--weights give {adapter.name} "
                            f"({given}); pass the same model")
        if circuit.target_class != target:
            how = "--class" if cls is not None else "the model's prediction"
            raise UserError(f"the artifact explains class {circuit.target_class} but {how} is class "
                            f"{target}; pass --class {circuit.target_class} or an artifact of class {target}")
        result = debug_image(adapter, image, from_circuit(circuit), config)
    else:
        with opts.open(read_only=not save) as store:
            view = _view_from(None, str(target), f"{adapter.name}@{adapter.weights}", None, opts, store=store)
            result = debug_image(adapter, image, view, config)
            if save:
                from ..debug import save_result

                n = save_result(store, result)
                click.echo(f"saved image {result.image_key} with {n} ACTIVATES relationships to "
                           f"{store.describe()}")
    path = write_explanation(result, out or f"debug-{Path(image).stem}.html")
    if as_json:
        click.echo(json.dumps({
            "image": result.image_key, "source": result.source, "predicted": result.predicted,
            "predicted_name": result.predicted_name, "class": result.target,
            "groups": result.scores.drop(columns=["labels"]).to_dict("records"),
            "path": result.path.to_dict("records"), "html": str(path)}, default=_plain))
        return
    _print_debug(result)
    click.echo(f"explanation: {path}")


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return None if v != v else str(v)


def _print_debug(result) -> None:
    verdict = "" if result.predicted == result.target else f" (the circuit explains class {result.target})"
    click.echo(f"{result.source}: predicted {result.predicted} '{result.predicted_name}'{verdict}; top-5 "
               + ", ".join(f"{n} {p:.2f}" for _, n, p in result.top5))
    firing = result.firing()
    click.echo(f"{len(firing)} of {len(result.scores)} groups fire (score >= {result.config.threshold}):")
    for row in firing.itertuples(index=False):
        crops = result.firing_crops(row.gid)
        c_ = result.crops
        where = "; ".join(f"g{c_.granularity[c]:g} at ({c_.top[c]},{c_.left[c]})" for c in crops)
        labels = f"  [{row.labels}]" if row.labels else ""
        click.echo(f"  {row.layer:<20} group {row.index:>3}  score {row.score:6.3f}  crops {where}{labels}")
    quiet = result.scores[~result.scores["fires"]]
    if len(quiet):
        names = ", ".join(f"{r.layer} g{r.index} ({r.score:.2f})" for r in quiet.head(8).itertuples())
        click.echo(f"silent: {names}" + (" ..." if len(quiet) > 8 else ""))
    click.echo("strongest path to the class:")
    for row in result.path.itertuples(index=False):
        if row.gid == "class":
            click.echo(f"  -> class {result.target} '{result.target_name}'")
        else:
            click.echo(f"  {row.layer:<20} {row.gid}  score {row.score:.3f}  edge {row.weight:+.3f}")
