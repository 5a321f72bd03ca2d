"""What the viewer (and image debugging) needs of one class circuit, as plain JSON-ready data.

`CircuitView` is built from a `Circuit` artifact (`from_circuit`) or from a knowledge base
(`neurflow_kb.store.view.circuit_view`), so the HTML viewer and `debug` work the same on both.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from ..artifact import THUMBNAILS_PER_GROUP, Circuit
from ..values import number

#: Thumbnails shown per group (as many as the stores keep).
MAX_THUMBNAILS = THUMBNAILS_PER_GROUP
CLASS_ID = "class"


@dataclass
class CircuitView:
    """One class circuit for people: layers, groups (members, labels, thumbnails), weighted edges.

    Group ids are `depth/group` for artifacts and NeuronGroup keys for stores; the class node's id is
    ``"class"``. Edges go from a lower group to an upper group (or the class), with the signed weight.
    """

    title: str
    meta: dict[str, Any]
    layers: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    class_node: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object the HTML page reads."""
        return {"title": self.title, "meta": self.meta, "layers": self.layers, "groups": self.groups,
                "edges": self.edges, "classNode": self.class_node}

    def group(self, gid: str) -> dict[str, Any]:
        for g in self.groups:
            if g["id"] == gid:
                return g
        raise KeyError(gid)

    def groups_at(self, depth: int) -> list[dict[str, Any]]:
        return [g for g in self.groups if g["depth"] == depth]


def _b64(png: Any) -> str:
    return png if isinstance(png, str) else base64.b64encode(bytes(png)).decode("ascii")


def group_id(depth: int, group: int) -> str:
    """Id of a group of an artifact in a `CircuitView`."""
    return f"{int(depth)}/{int(group)}"


def _thumbnails(circuit: Circuit, max_thumbnails: int) -> dict[tuple[int, int], list[str]]:
    ex = circuit.exemplars
    ex = ex[ex["representative"].astype(bool)]
    ex = ex.merge(circuit.nodes[["depth", "neuron", "subconcept", "group"]],
                  on=["depth", "neuron", "subconcept"], how="inner")
    ex = ex.merge(circuit.thumbnails[["crop", "png"]], on="crop", how="inner")
    ex = ex.sort_values(["depth", "group", "activation", "crop"], ascending=[True, True, False, True])
    ex = ex.drop_duplicates(["depth", "group", "crop"]).groupby(["depth", "group"], sort=False).head(
        max_thumbnails)
    out: dict[tuple[int, int], list[str]] = {}
    for d, g, png in zip(ex["depth"].tolist(), ex["group"].tolist(), ex["png"].tolist(), strict=True):
        out.setdefault((int(d), int(g)), []).append(_b64(png))
    return out


def from_circuit(circuit: Circuit, max_thumbnails: int = MAX_THUMBNAILS,
                 per_group_labels: int = 5) -> CircuitView:
    """A `CircuitView` of an artifact (labels appear when the artifact has been labelled)."""
    m = circuit.manifest
    thumbs = _thumbnails(circuit, max_thumbnails)
    labels: dict[tuple[int, int], list[dict[str, Any]]] = {}
    lab = circuit.labels.sort_values(["depth", "group", "rank"])
    for row in lab.itertuples(index=False):
        items = labels.setdefault((int(row.depth), int(row.group)), [])
        if len(items) < per_group_labels:
            items.append({"concept": str(row.concept), "score": float(row.score), "rank": int(row.rank),
                          "vocabulary": str(row.vocabulary)})
    members: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in circuit.nodes.sort_values(["depth", "group", "neuron", "subconcept"]).itertuples(index=False):
        members.setdefault((int(row.depth), int(row.group)), []).append(
            {"neuron": int(row.neuron), "subconcept": int(row.subconcept),
             "activation": float(row.activation), "size": int(row.size)})
    groups: list[dict[str, Any]] = []
    ordered = circuit.groups.sort_values(["depth", "abs_share", "group"], ascending=[False, False, True])
    for g in ordered.itertuples(index=False):
        key = (int(g.depth), int(g.group))
        groups.append({
            "id": group_id(*key), "depth": key[0], "layer": str(g.layer), "index": key[1],
            "size": int(g.size),
            "neurons": int(g.n_neurons), "silhouette": number(g.silhouette), "share": number(g.share),
            "abs_share": number(g.abs_share), "influence": number(g.influence),
            "abs_influence": number(g.abs_influence), "members": members.get(key, []),
            "labels": labels.get(key, []), "thumbnails": thumbs.get(key, [])})
    layer_rows: Any = circuit.layers.itertuples(index=False)       # rows of typed tables (artifact schema)
    depth_of = {str(r.name): int(r.depth) for r in layer_rows}
    edges = []
    e: Any
    for e in circuit.group_edges.itertuples(index=False):
        lower_depth = depth_of.get(str(e.lower_layer), int(e.depth) - 1)
        edges.append({"source": group_id(lower_depth, int(e.lower_group)),
                      "target": group_id(int(e.depth), int(e.group)),
                      "weight": number(e.weight), "abs_weight": number(e.abs_weight),
                      "share": number(e.share), "abs_share": number(e.abs_share)})
    top = int(circuit.layers["depth"].max()) if len(circuit.layers) else 0
    for g in groups:
        if g["depth"] == top:
            edges.append({"source": g["id"], "target": CLASS_ID, "weight": g["influence"],
                          "abs_weight": g["abs_influence"], "share": g["share"], "abs_share": g["abs_share"]})
    layers = [{"depth": int(r.depth), "name": str(r.name), "channels": int(r.channels)}
              for r in circuit.layers.sort_values("depth").itertuples(index=False)]
    name = m.get("class_name") or str(m.get("target_class"))
    meta = {"model": m.get("model"), "weights": m.get("weights"), "class_index": int(m["target_class"]),
            "class_name": name, "run": circuit.key, "images": m.get("n_images"), "crops": m.get("n_crops"),
            "nodes": len(circuit.nodes), "labelled": bool(len(circuit.labels)),
            "encoder": (m.get("labels") or {}).get("encoder"), "source": "artifact",
            "granularities": list((m.get("config") or {}).get("granularities") or []),
            "stride_ratio": (m.get("config") or {}).get("stride_ratio")}
    node = {"id": CLASS_ID, "depth": top + 1, "index": int(m["target_class"]), "name": name}
    return CircuitView(title=f"{m.get('model')} - class {m['target_class']} '{name}'", meta=meta,
                       layers=layers, groups=groups, edges=edges, class_node=node)


__all__ = ["CircuitView", "from_circuit", "group_id", "CLASS_ID", "MAX_THUMBNAILS"]
