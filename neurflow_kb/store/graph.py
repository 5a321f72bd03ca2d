"""Circuit artifact -> graph rows (one DataFrame per node label and per relationship pair).

Both stores write, export and import the same `GraphRows`, which is what makes a knowledge base move
between them unchanged. Keys follow DESIGN.md: Model `name@weights`, Layer `model/layer`, Neuron
`model/layer/index`, Class `model/index`, Run = circuit key, NeuronGroup `run/layer/g`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..artifact import OPTIONAL_TABLES, TABLES, THUMBNAILS_PER_GROUP, Circuit, model_id
from ..errors import UserError
from .schema import schema

#: Labels shared by many runs: written only where missing.
SHARED_LABELS = ("Model", "Layer", "Neuron", "Class", "Concept", "Image")
#: Labels owned by one run: created with it, deleted with it.
OWNED_LABELS = ("Run", "NeuronGroup")
#: Relationship types of a model's structure (the rest belong to a run).
MODEL_RELS = ("HAS_LAYER", "HAS_NEURON", "HAS_CLASS", "UNIT")
#: Relationship types derived from several runs (`store.links`): recomputed by the store that holds the
#: runs, never exported with one run.
DERIVED_RELS = ("RESEMBLES",)
#: Most thumbnails kept on a group (base64 PNG of representative exemplar crops).
MAX_THUMBNAILS = THUMBNAILS_PER_GROUP

RelKey = tuple[str, str, str]  # (type, source label, target label)


@dataclass
class GraphRows:
    """Node frames by label (column `key` first) and relationship frames by (type, src, dst) with
    columns `src`, `dst` (endpoint keys) and the type's properties."""

    nodes: dict[str, pd.DataFrame] = field(default_factory=dict)
    rels: dict[RelKey, pd.DataFrame] = field(default_factory=dict)

    def node_count(self) -> int:
        return sum(len(df) for df in self.nodes.values())

    def rel_count(self) -> int:
        return sum(len(df) for df in self.rels.values())

    @staticmethod
    def concat(parts: list[GraphRows]) -> GraphRows:
        """One GraphRows holding the rows of all `parts` (one concat per table)."""
        out = GraphRows()
        for label in dict.fromkeys(k for p in parts for k in p.nodes):
            frames = [p.nodes[label] for p in parts if label in p.nodes and len(p.nodes[label])]
            out.nodes[label] = pd.concat(frames, ignore_index=True) if frames else parts[0].nodes.get(
                label, next(p.nodes[label] for p in parts if label in p.nodes))
        for key in dict.fromkeys(k for p in parts for k in p.rels):
            frames = [p.rels[key] for p in parts if key in p.rels and len(p.rels[key])]
            out.rels[key] = pd.concat(frames, ignore_index=True) if frames else next(
                p.rels[key] for p in parts if key in p.rels)
        return out


def model_key(circuit: Circuit) -> str:
    """`name@weights` of the circuit's model."""
    m = circuit.manifest
    return model_id(m["model"], m.get("weights"))


def _digest_parts(s: pd.Series) -> Callable[[int, int], bytes]:
    """Rows lo..hi of one (stacked) table column as bytes in a fixed form, whatever the column was built
    or read as: numbers as int64 / float64 (NaN normalised); texts and bytes as codes in order of first
    appearance plus the distinct values; float lists as lengths plus values. Converted once per batch,
    sliced per run."""
    kind = s.dtype.kind if isinstance(s.dtype, np.dtype) else "O"
    if kind in "iub":
        ints = np.ascontiguousarray(s.to_numpy(dtype=np.int64))
        return lambda lo, hi: b"i" + ints[lo:hi].tobytes()
    if kind == "f":
        a = s.to_numpy(dtype=np.float64)
        floats = np.where(np.isnan(a), np.nan, a)
        return lambda lo, hi: b"f" + floats[lo:hi].tobytes()
    try:
        codes, uniques = pd.factorize(s)      # texts and bytes (few distinct layer names, one PNG a row)
    except TypeError:                          # float lists: concept vectors
        return _list_parts(s)
    codes = np.asarray(codes, dtype=np.int64)
    is_bytes = len(uniques) > 0 and isinstance(uniques[0], bytes | bytearray)
    encoded = [bytes(v) if is_bytes else str(v).encode() for v in uniques]
    tag = b"b" if is_bytes else b"s"

    def part(lo: int, hi: int) -> bytes:
        # the run's own codes, in order of first appearance: what factorizing it alone gives
        c = codes[lo:hi]
        valid = c >= 0
        distinct, first, inverse = np.unique(c[valid], return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        local = np.full(len(c), -1, dtype=np.int64)
        local[valid] = rank[inverse]
        names = [encoded[g] for g in distinct[order]]
        return (tag + local.tobytes() + np.array([len(x) for x in names], dtype=np.int64).tobytes()
                + b"".join(names))
    return part


def _list_parts(s: pd.Series) -> Callable[[int, int], bytes]:
    """`_digest_parts` of a column of float lists: null flags, lengths, then the values as float64."""
    arr = pa.chunked_array([pa.array(s, from_pandas=True)]).combine_chunks().cast(pa.large_list(pa.float64()))
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    flat = arr.values.to_numpy(zero_copy_only=False).astype(np.float64)
    data = np.where(np.isnan(flat), np.nan, flat)
    return lambda lo, hi: (b"l" + nulls[lo:hi].tobytes() + np.diff(offsets[lo:hi + 1]).tobytes()
                           + data[offsets[lo]:offsets[hi]].tobytes())


def run_digests(circuits: list[Circuit], stack: Callable[[str], pd.DataFrame] | None = None) -> list[str]:
    """SHA-256 per circuit of the tables its run is written from (labels and embeddings aside: they are
    added to a complete run later). The run key names the computation; the digest tells whether an
    artifact with that key holds the same circuit as the run in a store. Each table is stacked (`stack`:
    tables already stacked with `_stack`) and converted once for all circuits, then hashed run by run,
    which gives each circuit the digest it has alone."""
    hashes = [hashlib.sha256() for _ in circuits]
    for name in sorted(n for n in TABLES if n not in OPTIONAL_TABLES):
        df = (stack or functools.partial(_stack, circuits))(name)
        counts = np.bincount(df["_i"].to_numpy(dtype=np.int64), minlength=len(circuits))
        bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        for i, h in enumerate(hashes):
            h.update(f"table {name}:{counts[i]}\n".encode())
        for col in df.columns:
            if col == "_i":
                continue
            part = _digest_parts(df[col])
            for i, h in enumerate(hashes):
                h.update(f"{col}:".encode())
                h.update(part(int(bounds[i]), int(bounds[i + 1])))
    return [h.hexdigest() for h in hashes]


def run_digest(circuit: Circuit) -> str:
    """`run_digests` of one circuit."""
    return run_digests([circuit])[0]


def _json(v: Any) -> str | None:
    return None if v is None else json.dumps(v, sort_keys=True, default=str)


def _layers(circuit: Circuit) -> pd.DataFrame:
    layers = circuit.tables["layers"].sort_values("depth").reset_index(drop=True)
    if layers.empty:
        raise UserError(f"circuit {circuit.key} has no layers table; re-create the artifact")
    return layers


def model_rows(circuit: Circuit) -> GraphRows:
    """The model's structure: Model, its Layers (all neurons of each), Classes and output UNITs."""
    m = circuit.manifest
    mk = model_key(circuit)
    layers = _layers(circuit)
    num_classes = int(m.get("num_classes") or layers["channels"].iloc[-1])
    rows = GraphRows()
    rows.nodes["Model"] = pd.DataFrame({
        "key": [mk], "name": [str(m["model"])], "arch": [m.get("arch")],
        "weights": [str(m.get("weights") or "unknown")], "num_classes": [num_classes]})
    lkeys = mk + "/" + layers["name"].astype(str)
    rows.nodes["Layer"] = pd.DataFrame({
        "key": lkeys, "model": mk, "name": layers["name"].astype(str),
        "depth": layers["depth"].astype("int64"), "channels": layers["channels"].astype("int64")})
    rows.rels[("HAS_LAYER", "Model", "Layer")] = pd.DataFrame({"src": mk, "dst": lkeys})
    names = np.repeat(layers["name"].astype(str).to_numpy(), layers["channels"].to_numpy())
    idx = np.concatenate([np.arange(c, dtype=np.int64) for c in layers["channels"]])
    nkeys = pd.Series(mk + "/" + names, dtype=object) + "/" + pd.Series(idx).astype(str)
    rows.nodes["Neuron"] = pd.DataFrame({"key": nkeys, "model": mk, "layer": names, "index": idx})
    rows.rels[("HAS_NEURON", "Layer", "Neuron")] = pd.DataFrame({
        "src": pd.Series(mk + "/" + names, dtype=object), "dst": nkeys})
    class_names = m.get("class_names")
    cnames: list[Any] = [None] * num_classes
    if class_names and len(class_names) == num_classes:
        cnames = [str(c) for c in class_names]
    target = int(m["target_class"])
    if m.get("class_name") and 0 <= target < num_classes:
        cnames[target] = str(m["class_name"])
    cidx = np.arange(num_classes, dtype=np.int64)
    ckeys = mk + "/" + pd.Series(cidx).astype(str)
    rows.nodes["Class"] = pd.DataFrame({"key": ckeys, "model": mk, "index": cidx, "name": cnames})
    rows.rels[("HAS_CLASS", "Model", "Class")] = pd.DataFrame({"src": mk, "dst": ckeys})
    top = layers.iloc[-1]
    if int(top["channels"]) == num_classes:
        rows.rels[("UNIT", "Class", "Neuron")] = pd.DataFrame({
            "src": ckeys, "dst": f"{mk}/{top['name']}/" + pd.Series(cidx).astype(str)})
    return rows


def _stack(circuits: list[Circuit], name: str) -> pd.DataFrame:
    """One table of many circuits, with the run's index in column `_i`."""
    frames = [c.tables[name] for c in circuits]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].copy()
    df["_i"] = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    return df


def _arrow(part: Any) -> Any:
    if isinstance(part, str):
        return pa.scalar(part)
    if isinstance(part, pd.Series) and isinstance(part.dtype, pd.ArrowDtype):
        array: Any = part.array
        arr = array._pa_array  # noqa: SLF001
        return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())
    vals = np.asarray(part)
    if vals.dtype.kind in "iub":
        return pc.cast(pa.array(vals), pa.string())
    return pa.array(part, type=pa.string(), from_pandas=True)


def _col(arr: Any) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(arr))


def _join(*parts: Any) -> pd.Series:
    """Element-wise string concatenation of scalars and columns (Arrow kernels, for building keys)."""
    return _col(pc.binary_join_element_wise(*[_arrow(p) for p in parts], ""))


def _codes(columns: list[np.ndarray], dims: tuple[int, ...]) -> np.ndarray | None:
    """One int64 code per row of non-negative integer columns (None if they do not fit in 62 bits)."""
    if any(len(c) and c.min() < 0 for c in columns) or float(np.prod(dims, dtype=float)) >= 2.0**62:
        return None
    return np.ravel_multi_index(columns, dims)


def _unit_keys(prefixes: np.ndarray, which: np.ndarray, layer: pd.Series, unit: Any) -> pd.Series:
    """`prefix/layer/unit` keys (model/layer/neuron, run/layer/group), the same as `_join` gives, but each
    distinct key is formatted once and then gathered: millions of rows repeat a few thousand keys."""
    unit = np.asarray(unit, dtype=np.int64)
    pcodes, pnames = pd.factorize(np.asarray(prefixes, dtype=object))   # runs of one model share a prefix
    lcodes, lnames = pd.factorize(layer)
    dims = (max(len(pnames), 1), max(len(lnames), 1), int(unit.max()) + 1 if len(unit) else 1)
    code = _codes([pcodes[np.asarray(which, dtype=np.int64)], lcodes, unit], dims) if len(unit) else None
    if code is None:
        return _join(_take(prefixes, which), "/", layer, "/", unit)
    inverse, distinct = pd.factorize(code)
    w, lay, u = np.unravel_index(distinct, dims)
    prefix_names, layer_names = list(pnames), list(lnames)
    texts = [f"{prefix_names[a]}/{layer_names[b]}/{c}"
             for a, b, c in zip(w.tolist(), lay.tolist(), u.tolist(), strict=True)]
    return _col(pc.take(pa.array(texts, type=pa.string()), pa.array(inverse)))


def _lookup(left: pd.DataFrame, right: pd.DataFrame, on: list[str], column: str) -> np.ndarray:
    """`right[column]` at each row of `left` matched on the integer columns `on` (NaN where `right` has
    no such row; `right` is unique on `on`): a left merge without building the joined frame."""
    lcols = [left[c].to_numpy(np.int64) for c in on]
    rcols = [right[c].to_numpy(np.int64) for c in on]
    dims = tuple(int(max(a.max() if len(a) else 0, b.max() if len(b) else 0)) + 1
                 for a, b in zip(lcols, rcols, strict=True))
    lcode, rcode = _codes(lcols, dims), _codes(rcols, dims)
    if lcode is None or rcode is None:
        merged = left[on].merge(right[[*on, column]], on=on, how="left")
        return merged[column].to_numpy(np.float64)
    pos = pd.Index(rcode).get_indexer(lcode)
    values = right[column].to_numpy(np.float64)
    return np.where(pos >= 0, values[pos], np.nan)


def _take(values: np.ndarray, idx: Any) -> pd.Series:
    """`values[idx]` for a small array of strings (run or model keys per row), as an Arrow column."""
    return _col(pc.take(pa.array(list(values), type=pa.string()), pa.array(np.asarray(idx))))


def _isin(col: pd.Series, known: pd.Series) -> np.ndarray:
    return pc.is_in(_arrow(col), value_set=pa.array(_arrow(known))).to_numpy(zero_copy_only=False)


def _thumbnails(nodes: pd.DataFrame, ex: pd.DataFrame, th: pd.DataFrame,
                groups: pd.DataFrame) -> tuple[list[list[str]], list[int]]:
    """Per group: base64 PNG thumbnails of its representative crops and its number of exemplars."""
    n = len(groups)
    if nodes.empty or ex.empty:
        return [[] for _ in range(n)], [0] * n
    member = nodes[["_i", "depth", "neuron", "subconcept", "group"]]
    ex = ex.merge(member, on=["_i", "depth", "neuron", "subconcept"], how="inner")
    counts = ex.groupby(["_i", "depth", "group"]).size()
    rep = ex[ex["representative"].astype(bool)]
    rep = rep.merge(th[["_i", "crop", "png"]], on=["_i", "crop"], how="inner")
    rep = rep.sort_values(["_i", "depth", "group", "activation", "crop"],
                          ascending=[True, True, True, False, True])
    rep = rep.drop_duplicates(["_i", "depth", "group", "crop"])
    rep = rep.groupby(["_i", "depth", "group"], sort=False).head(MAX_THUMBNAILS)
    thumbs: dict[tuple[int, int, int], list[str]] = {}
    for i, d, g, png in zip(rep["_i"].tolist(), rep["depth"].tolist(), rep["group"].tolist(),
                            rep["png"].tolist(), strict=True):
        thumbs.setdefault((i, d, g), []).append(base64.b64encode(png).decode())
    keys = list(zip(groups["_i"].tolist(), groups["depth"].tolist(), groups["group"].tolist(), strict=True))
    cnt = counts.to_dict()
    return [thumbs.get(k, []) for k in keys], [int(cnt.get(k, 0)) for k in keys]


def _labels(circuits: list[Circuit], rk: np.ndarray, groups: pd.DataFrame,
            gkeys: pd.Series) -> tuple[list[Any], list[Any], pd.DataFrame, pd.DataFrame]:
    """From labelled artifacts: each group's CLIP embedding (float32 values) and its encoder, the Concept
    nodes (key `vocabulary/text`) and the LABELED rows (group key -> concept key)."""
    n = len(groups)
    embedding: list[Any] = [None] * n
    encoder: list[Any] = [None] * n
    keyed = groups[["_i", "depth", "group"]].assign(_key=np.asarray(gkeys.tolist(), dtype=object))
    emb = _stack(circuits, "group_embeddings")
    if len(emb):
        pos = {k: j for j, k in enumerate(keyed["_key"])}
        hit = emb.merge(keyed, on=["_i", "depth", "group"], how="inner")
        for k, vec, enc in zip(hit["_key"], hit["embedding"], hit["encoder"], strict=True):
            j = pos[k]
            embedding[j] = np.asarray(vec, dtype=np.float32).astype(float).tolist()
            encoder[j] = str(enc)
    lab = _stack(circuits, "labels")
    if lab.empty:
        return embedding, encoder, pd.DataFrame(columns=["key", "text", "vocabulary"]), pd.DataFrame()
    lab = lab.merge(keyed, on=["_i", "depth", "group"], how="inner")
    ckeys = lab["vocabulary"].astype(str) + "/" + lab["concept"].astype(str)
    concepts = pd.DataFrame({"key": ckeys, "text": lab["concept"].astype(str),
                             "vocabulary": lab["vocabulary"].astype(str)}).drop_duplicates("key")
    rels = pd.DataFrame({"src": lab["_key"].astype(str), "dst": ckeys, "score": lab["score"].astype(float),
                         "rank": lab["rank"].astype("int64"), "method": lab["method"].astype(str),
                         "encoder": lab["encoder"].astype(str)})
    return embedding, encoder, concepts.reset_index(drop=True), rels.reset_index(drop=True)


def artifact_labels(circuit: Circuit) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A labelled artifact's labels and embeddings as `write_labels` takes them: (group_key, concept_key,
    concept, vocabulary, score, rank, method, encoder) and (group_key, embedding, encoder)."""
    groups = _stack([circuit], "groups")
    gkeys = _join(_take(np.array([circuit.key], dtype=object), groups["_i"].to_numpy()), "/", groups["layer"],
                  "/", groups["group"])
    embedding, encoder, _, rels = _labels([circuit], np.array([circuit.key], dtype=object), groups, gkeys)
    keys = gkeys.tolist()
    emb = pd.DataFrame({"group_key": [k for k, v in zip(keys, embedding, strict=True) if v is not None],
                        "embedding": [v for v in embedding if v is not None],
                        "encoder": [e for e, v in zip(encoder, embedding, strict=True) if v is not None]})
    if rels.empty:
        return pd.DataFrame(columns=["group_key", "concept_key", "concept", "vocabulary", "score", "rank",
                                     "method", "encoder"]), emb
    lab = pd.DataFrame({"group_key": rels["src"], "concept_key": rels["dst"],
                        "concept": rels["dst"].str.split("/", n=1).str[1],
                        "vocabulary": rels["dst"].str.split("/", n=1).str[0], "score": rels["score"],
                        "rank": rels["rank"], "method": rels["method"], "encoder": rels["encoder"]})
    return lab, emb


def run_rows(circuit: Circuit) -> GraphRows:
    """One run as graph rows (see `runs_rows`)."""
    return runs_rows([circuit])


def runs_rows(circuits: list[Circuit]) -> GraphRows:
    """Runs, their NeuronGroups and the EXPLAINS, HAS_GROUP, AT_LAYER, MEMBER_OF, INFLUENCES and DRIVES
    relationships of many circuits at once (vectorised; group influence comes from the artifact)."""
    rk = np.array([c.key for c in circuits], dtype=object)
    mk = np.array([model_key(c) for c in circuits], dtype=object)
    stack = functools.cache(functools.partial(_stack, circuits))   # each table stacked once
    layer_tabs = [_layers(c) for c in circuits]
    top_depth = np.array([int(t["depth"].iloc[-1]) for t in layer_tabs])
    target = np.array([int(c.manifest["target_class"]) for c in circuits])
    ckey = np.array([f"{m}/{t}" for m, t in zip(mk, target, strict=True)], dtype=object)
    rows = GraphRows()
    man = [c.manifest for c in circuits]
    rows.nodes["Run"] = pd.DataFrame({
        "key": rk, "model": mk, "target_class": target, "class_name": [m.get("class_name") for m in man],
        "status": "complete", "layers": [[str(x) for x in t["name"]] for t in layer_tabs],
        "config": [_json(m.get("config")) for m in man],
        "data_fingerprint": [m.get("data_fingerprint") for m in man],
        "versions": [_json(m.get("versions")) for m in man],
        "seed": pd.array([m.get("seed") for m in man], dtype="Int64"),
        "timings": [_json(m.get("timings")) for m in man], "written_at": [None] * len(circuits),
        "n_groups": [len(c.tables["groups"]) for c in circuits],
        "n_nodes": [len(c.tables["nodes"]) for c in circuits],
        "n_edges": [len(c.tables["edges"]) for c in circuits],
        "digest": run_digests(circuits, stack)})
    rows.rels[("EXPLAINS", "Run", "Class")] = pd.DataFrame({"src": rk, "dst": ckey})
    groups, nodes = stack("groups"), stack("nodes")
    edges, gedges = stack("edges"), stack("group_edges")
    gi = groups["_i"].to_numpy()
    gkeys = _unit_keys(rk, gi, groups["layer"], groups["group"])
    thumbs, n_ex = _thumbnails(nodes, stack("exemplars"), stack("thumbnails"), groups)
    embedding, encoder, concepts, label_rows = _labels(circuits, rk, groups, gkeys)
    rows.nodes["NeuronGroup"] = pd.DataFrame({
        "key": gkeys, "run": _take(rk, gi), "model": _take(mk, gi), "target_class": target[gi],
        "layer": groups["layer"].astype(str), "depth": groups["depth"].to_numpy(),
        "index": groups["group"].to_numpy(), "size": groups["size"].to_numpy(),
        "n_neurons": groups["n_neurons"].to_numpy(), "silhouette": groups["silhouette"].to_numpy(),
        "influence": groups["influence"].to_numpy(), "abs_influence": groups["abs_influence"].to_numpy(),
        "share": groups["share"].to_numpy(), "abs_share": groups["abs_share"].to_numpy(),
        "n_exemplars": n_ex, "thumbnails": thumbs, "embedding": embedding, "embedding_encoder": encoder})
    if len(label_rows):
        rows.nodes["Concept"] = concepts
        rows.rels[("LABELED", "NeuronGroup", "Concept")] = label_rows
    rows.rels[("HAS_GROUP", "Run", "NeuronGroup")] = pd.DataFrame({"src": _take(rk, gi), "dst": gkeys})
    rows.rels[("AT_LAYER", "NeuronGroup", "Layer")] = pd.DataFrame({
        "src": gkeys, "dst": _join(_take(mk, gi), "/", groups["layer"])})
    mem = nodes[nodes["group"] >= 0].reset_index(drop=True)
    mi = mem["_i"].to_numpy()
    mkeys = _unit_keys(rk, mi, mem["layer"], mem["group"])
    ok = _isin(mkeys, gkeys)
    rows.rels[("MEMBER_OF", "Neuron", "NeuronGroup")] = pd.DataFrame({
        "src": _unit_keys(mk, mi, mem["layer"], mem["neuron"])[ok].reset_index(drop=True),
        "dst": mkeys[ok].reset_index(drop=True), "subconcept": mem["subconcept"].to_numpy()[ok],
        "activation": mem["activation"].to_numpy()[ok]})
    on = ["_i", "depth", "neuron", "lower_neuron"]
    core = stack("core")[[*on, "importance"]].drop_duplicates(on)
    ei = edges["_i"].to_numpy()
    rows.rels[("INFLUENCES", "Neuron", "Neuron")] = pd.DataFrame({
        "src": _unit_keys(mk, ei, edges["lower_layer"], edges["lower_neuron"]),
        "dst": _unit_keys(mk, ei, edges["layer"], edges["neuron"]),
        "run": _take(rk, ei), "subconcept": edges["subconcept"].to_numpy(),
        "weight": edges["weight"].to_numpy(), "importance": _lookup(edges, core, on, "importance")})
    gei = gedges["_i"].to_numpy()
    src = _unit_keys(rk, gei, gedges["lower_layer"], gedges["lower_group"])
    dst = _unit_keys(rk, gei, gedges["layer"], gedges["group"])
    ok = _isin(src, gkeys) & _isin(dst, gkeys)
    rows.rels[("DRIVES", "NeuronGroup", "NeuronGroup")] = pd.DataFrame({
        "src": src[ok].reset_index(drop=True), "dst": dst[ok].reset_index(drop=True),
        "weight": gedges["weight"].to_numpy()[ok], "abs_weight": gedges["abs_weight"].to_numpy()[ok],
        "share": gedges["share"].to_numpy()[ok], "abs_share": gedges["abs_share"].to_numpy()[ok]})
    top = groups["depth"].to_numpy() == top_depth[gi]
    rows.rels[("DRIVES", "NeuronGroup", "Class")] = pd.DataFrame({
        "src": gkeys[top].reset_index(drop=True), "dst": _take(ckey, gi[top]),
        "weight": groups["influence"].to_numpy()[top], "abs_weight": groups["abs_influence"].to_numpy()[top],
        "share": groups["share"].to_numpy()[top], "abs_share": groups["abs_share"].to_numpy()[top]})
    return rows


def conform(rows: GraphRows) -> GraphRows:
    """Order and fill columns as the schema declares them (missing properties become null)."""
    sch = schema()
    out = GraphRows()
    for label, df in rows.nodes.items():
        cols = sch.nodes[label].columns
        out.nodes[label] = pd.DataFrame({c: (df[c] if c in df else [None] * len(df)) for c in cols})
    for key, df in rows.rels.items():
        cols = ["src", "dst", *sch.rels[key[0]].columns]
        out.rels[key] = pd.DataFrame({c: (df[c] if c in df else [None] * len(df)) for c in cols})
    return out
