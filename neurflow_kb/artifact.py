"""The `Circuit` artifact: typed tables of one class circuit, saved as Parquet plus a JSON manifest.

It sits between computation and storage: the engine writes it, stores read it, and a knowledge base can
be rebuilt from artifacts at any time. No pickles and no full crops, only small thumbnails.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UserError
from .shares import SHARE_COLUMNS, compute_shares, has_shares

#: Version 2: weights identified by content, preprocessing in the manifest and the key, a folder marker.
FORMAT_VERSION = 2

# Config fields that change how a circuit is computed but not what it is; left out of `Circuit.key`.
EXECUTION_FIELDS = ("device", "batch_size", "ig_batch_size", "allow_tf32", "share_forward", "channels_last")

# Tables an artifact may lack on disk (written by later steps such as labelling).
OPTIONAL_TABLES = ("labels", "group_embeddings")

# Column order and dtypes of every table; `Circuit.validate` checks them (see `artifact_schema`).
TABLES: dict[str, dict[str, str]] = {
    # one row per layer of the chain, depth 0 = lowest ("lower" only) layer, depth T = output layer
    "layers": {"depth": "int64", "name": "object", "channels": "int64"},
    # one row per node (upper neuron n, sub-concept s) of the neuron circuit
    "nodes": {
        "depth": "int64", "layer": "object", "neuron": "int64", "subconcept": "int64",
        "size": "int64", "activation": "float64", "group": "int64", "concept_vector": "object",
    },
    # core concept neurons C_n of each upper neuron, ranked by importance I_n(m) = mean_x |IG_m(x; n)|
    "core": {
        "depth": "int64", "layer": "object", "neuron": "int64", "lower_neuron": "int64",
        "rank": "int64", "importance": "float64",
    },
    # neuron-circuit edges (lower neuron m) -> (upper neuron n, sub-concept s); weight is L1-normalised
    "edges": {
        "depth": "int64", "layer": "object", "neuron": "int64", "subconcept": "int64",
        "lower_layer": "object", "lower_neuron": "int64", "weight": "float64", "raw": "float64",
    },
    # neuron groups per layer; influence = summed path weight to the class (dynamic programming);
    # share / abs_share = the class's attribution flowing through the group (`neurflow_kb.shares`;
    # abs_share sums to 1 per layer)
    "groups": {
        "depth": "int64", "layer": "object", "group": "int64", "size": "int64", "n_neurons": "int64",
        "silhouette": "float64", "influence": "float64", "abs_influence": "float64",
        "share": "float64", "abs_share": "float64",
    },
    # group-to-group weights, lower group -> upper group (signed sum and sum of absolute values); share /
    # abs_share = the part of the class's share the edge passes down (they sum to 1 per transition)
    "group_edges": {
        "depth": "int64", "layer": "object", "group": "int64", "lower_layer": "object",
        "lower_group": "int64", "weight": "float64", "abs_weight": "float64",
        "share": "float64", "abs_share": "float64",
    },
    # top-k exemplar crops of each node; representative = among the crops shown to people
    "exemplars": {
        "depth": "int64", "layer": "object", "neuron": "int64", "subconcept": "int64", "rank": "int64",
        "crop": "int64", "image": "int64", "granularity": "float64", "top": "int64", "left": "int64",
        "size": "int64", "activation": "float64", "representative": "bool",
    },
    # the images the circuit was computed on (after class filtering)
    "images": {"image": "int64", "source": "object", "label": "int64", "predicted": "int64"},
    # small PNG thumbnails of the representative crops
    "thumbnails": {"crop": "int64", "png": "object"},
    # concept labels of groups (filled by `neurflow_kb.labels`; empty until a circuit is labelled)
    "labels": {
        "depth": "int64", "layer": "object", "group": "int64", "concept": "object", "vocabulary": "object",
        "score": "float64", "rank": "int64", "method": "object", "encoder": "object",
    },
    # one CLIP image embedding per group (for text search), unit length
    "group_embeddings": {"depth": "int64", "layer": "object", "group": "int64", "embedding": "object",
                         "encoder": "object"},
}


# Manifest fields that decide what a circuit is (its run key); see `circuit_key`.
KEY_FIELDS = ("model", "weights", "target_class", "layers", "preprocess", "data_fingerprint", "config")


def circuit_key(manifest: Mapping[str, Any]) -> str:
    """The run key: a content hash of the manifest's `KEY_FIELDS` (model, weights id, class, layer chain,
    preprocessing, data fingerprint, and the config without execution-only fields).

    The ingest planner computes it before any work to decide whether a saved circuit can be reused."""
    ident = {k: manifest.get(k) for k in KEY_FIELDS if k != "config"}
    config = dict(manifest.get("config") or {})
    for execution_only in EXECUTION_FIELDS:
        config.pop(execution_only, None)
    ident["config"] = config
    blob = json.dumps(ident, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def empty_table(name: str) -> pd.DataFrame:
    """An empty DataFrame with the columns and dtypes of table `name`."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in TABLES[name].items()})


def _conform(name: str, df: pd.DataFrame) -> pd.DataFrame:
    cols = TABLES[name]
    if df.empty and len(df.columns) == 0:
        return empty_table(name)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"table {name!r} lacks columns {missing}")
    out = df[list(cols)].reset_index(drop=True).copy()
    for c, t in cols.items():
        if t != "object":
            out[c] = out[c].astype(t)
    return out


@dataclass
class Circuit:
    """One class circuit of one model: a manifest and the tables listed in `TABLES`.

    Fitted results of `NeurFlow.fit`. `manifest` holds model, class, layer chain, config, data
    fingerprint, package versions, seed and timings.
    """

    manifest: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        groups, edges = self.tables.get("groups"), self.tables.get("group_edges")
        if groups is not None and len(groups.columns) and not has_shares(groups):
            # shares are derived from groups and group edges: tables made before they existed (older
            # artifacts, hand-built tables) get them here, by the same rule the engine applies
            edges = edges if edges is not None and len(edges.columns) else empty_table("group_edges").drop(
                columns=["share", "abs_share"])
            self.tables["groups"], self.tables["group_edges"] = compute_shares(groups, edges)
        for name in TABLES:
            df = self.tables.get(name)
            self.tables[name] = empty_table(name) if df is None else _conform(name, df)

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    # -- identity -------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return str(self.manifest["model"])

    @property
    def target_class(self) -> int:
        return int(self.manifest["target_class"])

    @property
    def key(self) -> str:
        """Content hash of what determines the circuit (model, weights, class, chain, preprocessing,
        config, data); see `circuit_key`."""
        return circuit_key(self.manifest)

    def __repr__(self) -> str:
        """One short line (model, class, layer chain, node and group counts), not the tables themselves:
        a circuit's tables run to thousands of rows."""
        m = self.manifest
        layers = [str(x) for x in m.get("layers") or []]
        chain = " > ".join(layers if len(layers) <= 6 else [*layers[:2], "...", *layers[-3:]])
        name = m.get("class_name")
        cls = f"{self.target_class} {name!r}" if name else str(self.target_class)
        labelled = ", labelled" if len(self.tables["labels"]) else ""
        return (f"Circuit(model={m.get('model')}@{m.get('weights')}, class={cls}, layers={len(layers)} "
                f"[{chain}], nodes={len(self.tables['nodes'])}, groups={len(self.tables['groups'])}"
                f"{labelled})")

    # -- views ----------------------------------------------------------------------------------
    def strongest_groups(self, per_layer: int = 3) -> pd.DataFrame:
        """Top groups of every layer by their share of the class (`abs_share`), top layer first."""
        g = self.tables["groups"]
        if g.empty:
            return g.copy()
        g = g.sort_values(["depth", "abs_share", "group"], ascending=[False, False, True])
        return g.groupby("depth", sort=False).head(per_layer).reset_index(drop=True)

    def group_members(self, depth: int, group: int) -> pd.DataFrame:
        """Nodes (neuron, sub-concept) of one group."""
        n = self.tables["nodes"]
        return n[(n["depth"] == depth) & (n["group"] == group)].reset_index(drop=True)

    # -- persistence ----------------------------------------------------------------------------
    def validate(self, where: str = "") -> None:
        """Check the circuit against the artifact schema (`artifact_schema`); one-line `UserError`."""
        from .artifact_schema import validate_circuit

        validate_circuit(self.manifest, self.tables, where)

    def save(self, directory: str | Path) -> Path:
        """Write `manifest.json` and one Parquet file per table into `directory`, atomically.

        The folder is written beside its destination and swapped into place; it carries the marker of
        `neurflow_kb.folders`. An existing `directory` is replaced only when neurflow-kb wrote it (and it
        holds nothing else); a user's folder, a file or a symbolic link is refused with a `UserError`.
        """
        from .folders import replace_folder

        self.validate()
        manifest = dict(self.manifest, format_version=FORMAT_VERSION, key=self.key)

        def write(tmp: Path) -> list[str]:
            for name, df in self.tables.items():
                df.to_parquet(tmp / f"{name}.parquet", index=False)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
            return ["manifest.json", *(f"{name}.parquet" for name in self.tables)]

        return replace_folder(Path(directory), write, kind="circuit", key=self.key)

    @classmethod
    def load(cls, directory: str | Path) -> Circuit:
        """Read an artifact written by `save`, validated against the artifact schema: any problem is one
        `UserError` naming the file, the field and the fix (nothing half-read reaches a store)."""
        from .artifact_schema import check_key, read_manifest, read_table, validate_circuit

        d = Path(directory)
        mpath = d / "manifest.json"
        if not d.is_dir():
            raise UserError(f"{d} is not a folder; point to a circuit artifact folder written by "
                            "`neurflow-kb circuit --out`")
        if not mpath.is_file():
            raise UserError(f"{d} is not a circuit artifact (no manifest.json); point to a folder written "
                            "by `neurflow-kb circuit --out`")
        manifest = read_manifest(mpath)
        if manifest.get("format_version") != FORMAT_VERSION:
            version = manifest.get("format_version")
            raise UserError(f"{mpath} has artifact format {str(version)[:20]!r}, this version reads "
                            f"{FORMAT_VERSION}; re-create the artifact with this version of neurflow-kb")
        manifest.pop("format_version", None)
        saved_key = manifest.pop("key", None)
        tables = {}
        for name, columns in TABLES.items():
            p = d / f"{name}.parquet"
            if not p.exists() and name in OPTIONAL_TABLES:
                continue
            if not p.is_file():
                raise UserError(f"{d} is missing {p.name}; the artifact is incomplete, re-create it")
            if name in ("groups", "group_edges") and not _has_share_columns(p):
                # written before shares existed: they are derived, so they are computed below
                columns = {c: t for c, t in columns.items() if c not in SHARE_COLUMNS}
            tables[name] = read_table(p, name, columns)
        for name in OPTIONAL_TABLES:
            tables.setdefault(name, empty_table(name))
        validate_circuit(manifest, tables, str(d))
        _check_shares(tables, d)
        circuit = cls(manifest=manifest, tables=tables)
        check_key({"key": saved_key}, circuit.key, str(mpath))
        return circuit

    def equals(self, other: Circuit) -> bool:
        """Same manifest (timings aside) and identical tables."""
        def strip(m: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in m.items() if k != "timings"}

        if json.dumps(strip(self.manifest), sort_keys=True, default=str) != json.dumps(
                strip(other.manifest), sort_keys=True, default=str):
            return False
        for name in TABLES:
            a, b = self.tables[name], other.tables[name]
            if list(a.columns) != list(b.columns) or len(a) != len(b):
                return False
            for c in a.columns:
                if a[c].dtype == object:
                    if [_norm(x) for x in a[c]] != [_norm(x) for x in b[c]]:
                        return False
                elif not a[c].equals(b[c]):
                    return False
        return True


def _has_share_columns(path: Path) -> bool:
    try:
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
    except Exception:  # noqa: BLE001  (read_table reports an unreadable file in one line)
        return True
    return all(c in names for c in SHARE_COLUMNS)


def _check_shares(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Fill in the shares of groups and group edges, derived from their weights (`neurflow_kb.shares`);
    stored shares must be the ones the rule gives (1e-9), else the artifact was altered."""
    groups, edges = tables["groups"], tables["group_edges"]
    base_g = groups.drop(columns=[c for c in SHARE_COLUMNS if c in groups.columns])
    base_e = edges.drop(columns=[c for c in SHARE_COLUMNS if c in edges.columns])
    want_g, want_e = compute_shares(base_g, base_e)
    for name, have, want in (("groups", groups, want_g), ("group_edges", edges, want_e)):
        for c in SHARE_COLUMNS:
            if c in have.columns and not np.allclose(have[c].to_numpy(float), want[c].to_numpy(float),
                                                      rtol=0.0, atol=1e-9, equal_nan=False):
                raise UserError(f"{folder}/{name}.parquet: column '{c}' does not follow from the group "
                                "weights (docs/decisions.md, influence as a share); re-create the artifact")
    tables["groups"], tables["group_edges"] = want_g, want_e


def _norm(x: Any) -> Any:
    if isinstance(x, bytes | str | int | float | bool) or x is None:
        return x
    return [float(v) for v in x]
