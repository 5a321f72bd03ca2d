"""A `CircuitView` of one run read from a knowledge base (either store), through named queries."""

from __future__ import annotations

import json
from typing import Any

from ..errors import UserError
from ..queries import ClassLike, StoreLike, class_run_keys, opened_store, run_named
from ..values import number
from .data import CLASS_ID, CircuitView

LABELS_PER_GROUP = 5


def resolve_run(store: Any, cls: ClassLike | None = None, model: str | None = None,
                run: str | None = None) -> str:
    """The key of the complete run to show: `run` itself, or the only run of class `cls` (of `model`)."""
    if run:
        if store.run_status(run) != "complete":
            raise UserError(f"no complete run {run!r} in {store.describe()}; see `neurflow-kb query runs`")
        return run
    if cls is None:
        raise UserError("say which circuit: --class CLASS or --run KEY")
    keys = class_run_keys(store, cls, model)
    runs = run_named(store, "runs", models=sorted({k.rsplit("/", 1)[0] for k in keys}), classes=keys)
    if runs.empty:
        raise UserError(f"class {cls!r} has no circuit in {store.describe()} yet; compute it with "
                        "`neurflow-kb ingest` or `neurflow-kb load`")
    if len(runs) > 1:
        listed = ", ".join(f"{r.run} ({r.model})" for r in runs.itertuples(index=False))
        raise UserError(f"class {cls!r} has {len(runs)} runs ({listed}); pass --model or --run KEY")
    return str(runs["run"].iloc[0])


def circuit_view(store: StoreLike, cls: ClassLike | None = None, model: str | None = None,
                 run: str | None = None) -> CircuitView:
    """The viewer data of one complete run: groups with members, labels and thumbnails, DRIVES edges."""
    with opened_store(store) as st:
        key = resolve_run(st, cls, model, run)
        head = run_named(st, "view_run", run=key).iloc[0]
        groups_df = run_named(st, "view_groups", run=key)
        members_df = run_named(st, "view_members", run=key)
        labels_df = run_named(st, "view_labels", run=key)
        edges_df = run_named(st, "view_edges", run=key)
        layers_df = run_named(st, "view_layers", model=str(head["model"]))
    r: Any                                   # one row of a query's result (named columns)
    members: dict[str, list[dict[str, Any]]] = {}
    for r in members_df.itertuples(index=False):
        members.setdefault(r.group_key, []).append({"neuron": int(r.neuron), "subconcept": int(r.subconcept),
                                                    "activation": float(r.activation)})
    labels: dict[str, list[dict[str, Any]]] = {}
    for r in labels_df.itertuples(index=False):
        items = labels.setdefault(r.group_key, [])
        if len(items) < LABELS_PER_GROUP:
            items.append({"concept": str(r.concept), "score": float(r.score), "rank": int(r.rank),
                          "vocabulary": str(r.vocabulary)})
    groups = []
    for r in groups_df.itertuples(index=False):
        groups.append({
            "id": r.group_key, "depth": int(r.depth), "layer": str(r.layer), "index": int(r.group_index),
            "size": int(r.size), "neurons": int(r.neurons), "silhouette": number(r.silhouette),
            "share": number(r.share), "abs_share": number(r.abs_share),
            "influence": number(r.influence), "abs_influence": number(r.abs_influence),
            "members": members.get(r.group_key, []), "labels": labels.get(r.group_key, []),
            "thumbnails": list(r.thumbnails or [])})
    edge_rows: Any = edges_df.itertuples(index=False)
    edges = [{"source": r.source, "target": CLASS_ID if r.target_kind == "Class" else r.target,
              "weight": number(r.weight), "abs_weight": number(r.abs_weight), "share": number(r.share),
              "abs_share": number(r.abs_share)}
             for r in edge_rows]
    layer_names = list(head["layers"] or [])
    layer_rows: Any = layers_df.itertuples(index=False)
    channels = {str(r.name): int(r.channels) for r in layer_rows}
    layers = [{"depth": d, "name": name, "channels": channels.get(name, 0)}
              for d, name in enumerate(layer_names)]
    config = json.loads(head["config"]) if isinstance(head["config"], str) and head["config"] else {}
    name = head["class_name"] if isinstance(head["class_name"], str) and head["class_name"] else str(
        head["class"])
    encoder = str(labels_df["encoder"].iloc[0]) if len(labels_df) else None
    meta = {"model": head["model_name"], "weights": head["weights"], "class_index": int(head["class"]),
            "class_name": name, "run": key, "images": None, "crops": None,
            "nodes": int(head["n_nodes"] or 0),
            "labelled": bool(len(labels_df)), "encoder": encoder,
            "source": "store", "granularities": list(config.get("granularities") or []),
            "stride_ratio": config.get("stride_ratio")}
    top = len(layer_names)
    return CircuitView(title=f"{head['model_name']} - class {int(head['class'])} '{name}'", meta=meta,
                       layers=layers, groups=groups, edges=edges,
                       class_node={"id": CLASS_ID, "depth": top, "index": int(head["class"]), "name": name})


def compare_store_view(store: StoreLike, cls: ClassLike | None = None, model: str | None = None,
                       run: str | None = None, other_cls: ClassLike | None = None,
                       other_model: str | None = None, other_run: str | None = None) -> Any:
    """Two runs side by side (`CompareView`): `other_cls` of the same model (matched by shared neurons),
    or the same class of `other_model` (matched by RESEMBLES, the CLIP embedding cosine)."""
    import pandas as pd

    from ..compare import group_links
    from .compare import COSINE, SHARED_NEURONS, compare_view, resemblance_pairs

    with opened_store(store) as st:
        key_a = resolve_run(st, cls, model, run)
        if other_run is None and other_cls is None and other_model is None:
            raise UserError("say what to compare with: --compare-class CLASS (same model), --compare-model "
                            "MODEL (same class) or --compare-run KEY")
        key_b = resolve_run(st, other_cls if other_cls is not None else cls, other_model or model, other_run)
        if key_a == key_b:
            raise UserError("both sides are the same run; compare another class or another model")
        va, vb = circuit_view(st, run=key_a), circuit_view(st, run=key_b)
        model_a = run_named(st, "view_run", run=key_a)["model"].iloc[0]
        model_b = run_named(st, "view_run", run=key_b)["model"].iloc[0]
        if model_a == model_b:
            members = run_named(st, "similar_members", runs=[key_a, key_b])
            rows = group_links(members[members["run"] == key_a], members[members["run"] == key_b])
            links = pd.DataFrame({"a": rows["group_a"], "b": rows["group_b"], "score": rows["score"]})
            kind = SHARED_NEURONS
        else:
            rel = run_named(st, "compare_links", runs=[key_a, key_b])
            rel = rel.rename(columns={"source": "src", "target": "dst"})
            links = resemblance_pairs(rel, {g["id"] for g in va.groups})
            kind = COSINE
    return compare_view(va, vb, links, kind)
