"""The one schema of a circuit artifact on disk: manifest fields, table types, ranges, references.

`Circuit.load` reads every file through `read_manifest` and `read_table` and then runs
`validate_circuit`, so anything that reaches a store (or the viewer, or labelling) has passed it. Every
violation is one `UserError` line naming the file, the field and the fix. Sizes are bounded before
anything is allocated from them (a Parquet file's row count and uncompressed size are read from its
footer first; class and channel counts are capped), so a hostile artifact cannot exhaust memory.
"""

from __future__ import annotations

import builtins
import json
import math
import re
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from .errors import UserError

#: Upper bounds (an artifact beyond them is refused, not allocated).
MAX_CLASSES = 1_000_000
MAX_CHANNELS = 1_000_000
MAX_NEURONS = 4_000_000           # all layers of a chain together (the store writes one node each)
MAX_LAYERS = 1_000
MAX_ROWS = 50_000_000             # per table
MAX_TABLE_BYTES = 4 << 30         # uncompressed, per table
MAX_MANIFEST_BYTES = 64 << 20
MAX_TEXT = 4_096                  # class names, concepts, sources, ...
MAX_NAME = 256                    # model, weights and layer names (they become parts of keys)
MAX_PNG_BYTES = 1 << 20
MAX_PNG_SIDE = 4_096
INT64 = (-(2**63), 2**63 - 1)

RECREATE = "re-create the artifact with `neurflow-kb circuit --out` (or NeurFlow.fit + Circuit.save)"

#: Object columns that hold vectors of numbers or PNG bytes; every other object column holds text.
VECTOR_COLUMNS = {("nodes", "concept_vector"), ("group_embeddings", "embedding")}
BINARY_COLUMNS = {("thumbnails", "png")}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEY_UNSAFE = re.compile(r"[/@\s\x00-\x1f\x7f]")


def fail(where: str, field: str, problem: str, fix: str = RECREATE) -> NoReturn:
    """Raise the one-line `UserError` of a schema violation."""
    text = f"{where}: {field} {problem}; {fix}"
    raise UserError(" ".join(text.split()))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# -- manifest -------------------------------------------------------------------------------------------

def read_manifest(path: Path) -> dict[str, Any]:
    """`manifest.json` as a dict (bounded size; JSON errors, NaN and Infinity become one line)."""
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            fail(where, "the file", f"is {size} bytes, more than a manifest may have ({MAX_MANIFEST_BYTES})")
        raw = path.read_bytes()
    except OSError as exc:
        fail(where, "the file", f"cannot be read ({exc.strerror or exc})", "check its permissions")

    def no_constants(name: str) -> NoReturn:
        fail(where, "the file", f"holds {name}, which is not a number JSON allows")

    try:
        data = json.loads(raw, parse_constant=no_constants)
    except UserError:
        raise
    except (ValueError, RecursionError) as exc:
        fail(where, "the file", f"is not valid JSON ({_first_line(exc)})")
    if not isinstance(data, dict):
        fail(where, "the file", f"holds a JSON {type(data).__name__}, not an object of manifest fields")
    return data


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


class _Fields:
    """Typed access to the manifest's fields, failing with the field's name."""

    def __init__(self, manifest: dict[str, Any], where: str) -> None:
        self.m, self.where = manifest, where

    def fail(self, key: str, problem: str, fix: str = RECREATE) -> NoReturn:
        fail(self.where, f"field '{key}'", problem, fix)

    def get(self, key: str, required: bool) -> Any:
        if key not in self.m:
            if required:
                self.fail(key, "is missing")
            return None
        return self.m[key]

    def int(self, key: str, lo: int, hi: int, required: bool = True) -> int | None:
        v = self.get(key, required)
        if v is None and not required:
            return None
        if not _is_int(v):
            self.fail(key, f"must be an integer (got {_show(v)})")
        if not lo <= v <= hi:
            self.fail(key, f"is {_show(v)}, outside {lo}..{hi}")
        return v

    def text(self, key: str, required: bool = True, limit: builtins.int = MAX_TEXT, key_safe: bool = False
             ) -> str | None:
        v = self.get(key, required)
        if v is None and not required:
            return None
        _check_text(v, limit, key_safe, lambda p: self.fail(key, p))
        return v

    def mapping(self, key: str, required: bool = True) -> dict[str, Any] | None:
        v = self.get(key, required)
        if v is None and not required:
            return None
        if not isinstance(v, dict):
            self.fail(key, f"must be a JSON object (got {_show(v)})")
        return v


def _show(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, float) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_text(v: Any, limit: int, key_safe: bool, bad: Any) -> None:
    if not isinstance(v, str) or not v:
        bad(f"must be a non-empty string (got {_show(v)})")
    if len(v) > limit:
        bad(f"is {len(v)} characters long, more than {limit}")
    if key_safe and _KEY_UNSAFE.search(v):
        bad(f"is {_show(v)}; it becomes part of knowledge-base keys, so it may not hold '/', '@', "
            "spaces or control characters")


def validate_manifest(m: dict[str, Any], where: str) -> None:
    """Types and ranges of every field the project reads (unknown extra fields are allowed)."""
    f = _Fields(m, where)
    f.text("model", limit=MAX_NAME, key_safe=True)
    f.text("weights", limit=MAX_NAME, key_safe=True)
    f.text("weights_source", required=False)
    f.text("arch", required=False, limit=MAX_NAME)
    num_classes = f.int("num_classes", 1, MAX_CLASSES)
    assert num_classes is not None
    f.int("target_class", 0, num_classes - 1)
    f.text("class_name", required=False)
    names = f.get("class_names", required=False)
    if names is not None:
        if not isinstance(names, list) or len(names) != num_classes:
            f.fail("class_names", f"must be a list of {num_classes} class names (one per class)")
        for name in names:
            _check_text(name, MAX_TEXT, False, lambda p: f.fail("class_names", f"entry {p}"))
    layers = f.get("layers", required=True)
    if not isinstance(layers, list) or not 2 <= len(layers) <= MAX_LAYERS:
        f.fail("layers", f"must list 2..{MAX_LAYERS} layer names, bottom to top (got {_show(layers)})")
    for name in layers:
        _check_text(name, MAX_NAME, True, lambda p: f.fail("layers", f"entry {p}"))
    if len(set(layers)) != len(layers):
        f.fail("layers", "names a layer twice")
    channels = f.mapping("channels")
    assert channels is not None
    if set(channels) != set(layers):
        f.fail("channels", "must give the channel count of exactly the layers in 'layers'")
    for name, c in channels.items():
        if not _is_int(c) or not 1 <= c <= MAX_CHANNELS:
            f.fail("channels", f"of layer {name!r} is {_show(c)}, outside 1..{MAX_CHANNELS}")
    if sum(channels.values()) > MAX_NEURONS:
        f.fail("channels", f"add up to {sum(channels.values())} neurons, more than {MAX_NEURONS}")
    if channels[layers[-1]] != num_classes:
        f.fail("num_classes", f"is {num_classes} but the last layer {layers[-1]!r} has "
               f"{channels[layers[-1]]} channels (its outputs are the class logits)")
    _validate_config(f, layers)
    _validate_preprocess(f)
    f.text("data_fingerprint", limit=MAX_TEXT)
    for key in ("n_images", "n_crops"):
        f.int(key, 0, MAX_ROWS, required=False)
    f.int("top_k_used", 1, MAX_ROWS, required=False)
    f.int("seed", *INT64, required=False)
    for key, kind in (("versions", "text"), ("ig_steps", "int"), ("completeness_error", "num"),
                      ("timings", "num")):
        d = f.mapping(key, required=False)
        for k, v in (d or {}).items():
            ok = {"text": lambda v: isinstance(v, str) and len(v) <= MAX_TEXT,
                  "int": lambda v: _is_int(v) and 0 <= v <= INT64[1],
                  "num": _is_num}[kind](v)
            if not ok or len(k) > MAX_TEXT:
                want = "a finite number" if kind == "num" else kind
                f.fail(key, f"entry {k[:60]!r} is {_show(v)}; expected {want}")
    f.mapping("labels", required=False)


_CONFIG_TYPES: dict[str, str] = {
    "tau": "int", "top_k": "int", "ig_steps": "int", "max_subconcepts": "int", "max_groups": "int",
    "num_representatives": "int", "thumbnail_size": "int", "batch_size": "int", "ig_batch_size": "int",
    "seed": "int", "max_nodes_per_layer": "int?", "error_range": "num?", "subconcept_min_silhouette": "num?",
    "stride_ratio": "num", "fast_tolerance": "num", "granularities": "nums", "fast_steps": "ints",
    "class_filter": "str", "strategy": "str", "device": "str", "dtype": "str", "allow_tf32": "bool",
    "layers": "strs?", "extra": "dict",
}
_TYPE_CHECKS = {
    "int": lambda v: _is_int(v) and INT64[0] <= v <= INT64[1],
    "num": _is_num,
    "str": lambda v: isinstance(v, str) and len(v) <= MAX_TEXT,
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "nums": lambda v: isinstance(v, list | tuple) and len(v) <= 1000 and all(_is_num(x) for x in v),
    "ints": lambda v: isinstance(v, list | tuple) and len(v) <= 1000 and all(_is_int(x) and 0 <= x <= 1 << 31
                                                                               for x in v),
    "strs": lambda v: isinstance(v, list | tuple) and all(isinstance(x, str) for x in v),
}


def _validate_config(f: _Fields, layers: list[str]) -> None:
    from .config import NeurFlowConfig

    config = f.mapping("config")
    assert config is not None
    for key, kind in _CONFIG_TYPES.items():
        if key not in config or (kind.endswith("?") and config[key] is None):
            continue
        if not _TYPE_CHECKS[kind.rstrip("?")](config[key]):
            f.fail("config", f"entry {key!r} is {_show(config[key])}, not a valid {kind.rstrip('?')}")
    if config.get("layers") is not None and list(config["layers"]) != list(layers):
        f.fail("config", "entry 'layers' differs from the manifest's 'layers'")
    try:
        NeurFlowConfig.from_dict(config)
    except UserError as exc:
        f.fail("config", f"is not a valid NeurFlow configuration ({exc})")
    except (TypeError, ValueError, OverflowError) as exc:
        f.fail("config", f"is not a valid NeurFlow configuration ({_first_line(exc)})")


def _validate_preprocess(f: _Fields) -> None:
    pre = f.mapping("preprocess")
    assert pre is not None
    for key in ("resize", "crop"):
        v: Any = pre.get(key)
        if not _is_int(v) or not 1 <= v <= 16_384:
            f.fail("preprocess", f"entry {key!r} is {_show(v)}, not an image size in 1..16384")
    if pre["crop"] > pre["resize"]:
        f.fail("preprocess", "entry 'crop' is larger than 'resize'")
    for key in ("mean", "std"):
        v = pre.get(key)
        if not isinstance(v, list) or len(v) != 3 or not all(_is_num(x) for x in v):
            f.fail("preprocess", f"entry {key!r} must be three finite numbers (got {_show(v)})")
    if min(pre["std"]) <= 0:
        f.fail("preprocess", "entry 'std' must be positive")
    if pre.get("interpolation") not in ("nearest", "bilinear", "bicubic"):
        f.fail("preprocess", f"entry 'interpolation' is {_show(pre.get('interpolation'))}, not nearest, "
               "bilinear or bicubic")


# -- tables ---------------------------------------------------------------------------------------------

def read_table(path: Path, name: str, columns: dict[str, str]) -> pd.DataFrame:
    """One Parquet table, its size bounded from the footer before reading, its column types checked and
    cast (integers to int64 without overflow, numbers to float64), no nulls, vectors of finite numbers."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    where = str(path)
    try:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        rows = meta.num_rows
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        schema = pf.schema_arrow
    except UserError:
        raise
    except MemoryError:
        fail(where, "the file", "claims more data than fits in memory")
    except Exception as exc:  # pyarrow raises many types for a corrupt or truncated file
        fail(where, "the file", f"is not a readable Parquet file ({_first_line(exc)})")
    if rows > MAX_ROWS or size > MAX_TABLE_BYTES or rows < 0:
        fail(where, "the table", f"has {rows} rows / {size} bytes, more than the {MAX_ROWS} rows / "
             f"{MAX_TABLE_BYTES} bytes a table may have")
    missing = [c for c in columns if c not in schema.names]
    if missing:
        fail(where, f"column '{missing[0]}'", "is missing")
    if rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    for col, dtype in columns.items():
        t = schema.field(col).type
        ok = {
            "int64": pa.types.is_integer(t),
            "float64": pa.types.is_integer(t) or pa.types.is_floating(t),
            "bool": pa.types.is_boolean(t),
        }.get(dtype)
        if ok is None:  # object columns
            if (name, col) in VECTOR_COLUMNS:
                ok = ((pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))
                      and (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)))
            elif (name, col) in BINARY_COLUMNS:
                ok = pa.types.is_binary(t) or pa.types.is_large_binary(t)
            else:
                ok = pa.types.is_string(t) or pa.types.is_large_string(t)
        if not ok:
            fail(where, f"column '{col}'", f"has type {t}, expected {_expected(name, col, dtype)}")
    try:
        table = pf.read(columns=list(columns))
        table.validate(full=True)          # offsets, UTF-8 of every string: corrupt data fails here
        for col, dtype in columns.items():
            arr = table.column(col)
            if arr.null_count and dtype != "float64":   # missing numbers read as NaN (checked below)
                fail(where, f"column '{col}'", f"has {arr.null_count} missing values")
            if dtype in ("int64", "float64"):
                cast = pc.cast(arr, pa.int64() if dtype == "int64" else pa.float64())
                table = table.set_column(table.schema.get_field_index(col), col, cast)
            elif (name, col) in VECTOR_COLUMNS:
                table = table.set_column(table.schema.get_field_index(col), col,
                                         _vector_column(arr, where, col))
        frame = table.to_pandas(ignore_metadata=True)
    except UserError:
        raise
    except MemoryError:
        fail(where, "the file", "holds more data than fits in memory")
    except Exception as exc:
        fail(where, "the file", f"cannot be read ({_first_line(exc)})")
    for col in columns:
        if (name, col) in VECTOR_COLUMNS:
            frame[col] = [v.tolist() for v in frame[col]]
    return frame


def _vector_column(arr: Any, where: str, col: str) -> Any:
    """A list column as list<double>: no missing elements, every element finite, at most MAX_CHANNELS."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = arr.combine_chunks()
    if pa.types.is_fixed_size_list(arr.type):
        arr = arr.cast(pa.list_(arr.type.value_type))
    values = arr.flatten()
    if values.null_count:
        fail(where, f"column '{col}'", "has vectors with missing elements")
    numbers = values.to_numpy(zero_copy_only=False).astype(np.float64)
    if not np.isfinite(numbers).all():
        fail(where, f"column '{col}'", "holds NaN or infinite numbers")
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() < 1 or lengths.max() > MAX_CHANNELS):
        fail(where, f"column '{col}'", f"holds vectors of lengths {int(lengths.min())}..{int(lengths.max())},"
             f" outside 1..{MAX_CHANNELS}")
    return pc.cast(arr, pa.list_(pa.float64()))


def _expected(name: str, col: str, dtype: str) -> str:
    if (name, col) in VECTOR_COLUMNS:
        return "a list of numbers"
    if (name, col) in BINARY_COLUMNS:
        return "binary (PNG bytes)"
    return {"int64": "integers", "float64": "numbers", "bool": "booleans"}.get(dtype, "strings")


# -- the circuit as a whole -------------------------------------------------------------------------------

class _Table:
    """A table and its file name, with vectorised checks that name the first offending row."""

    def __init__(self, folder: str, name: str, df: pd.DataFrame) -> None:
        self.name, self.df = name, df
        self.where = f"{folder}/{name}.parquet" if folder else f"table {name}"

    def col(self, c: str) -> np.ndarray:
        return self.df[c].to_numpy()

    def bad(self, mask: np.ndarray, column: str, problem: str, fix: str = RECREATE) -> None:
        if len(mask) and mask.any():
            row = int(np.flatnonzero(mask)[0])
            value = self.df[column].iloc[row]
            fail(self.where, f"column '{column}'", f"is {_show(_plain(value))} at row {row}: {problem}", fix)

    def in_range(self, column: str, lo: float, hi: np.ndarray | float, what: str) -> None:
        v = self.col(column)
        hi_v = np.asarray(hi)
        self.bad(~((v >= lo) & (v <= hi_v)), column, f"{what} must lie in {lo}..{_bound_text(hi_v)}")

    def finite(self, *columns: str, allow_nan: bool = False) -> None:
        for c in columns:
            v = self.col(c).astype(np.float64)
            ok = np.isfinite(v) | (np.isnan(v) if allow_nan else False)
            self.bad(~ok, c, "numbers must be finite" + (" (or NaN)" if allow_nan else ""))

    def unique(self, columns: list[str]) -> None:
        dup = self.df.duplicated(columns).to_numpy()
        self.bad(dup, columns[-1], f"({', '.join(columns)}) appears twice")

    def text(self, *columns: str, limit: int = MAX_TEXT) -> None:
        for c in columns:
            lengths = self.df[c].astype(str).str.len().to_numpy()
            self.bad((lengths < 1) | (lengths > limit), c, f"text must have 1..{limit} characters")


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    return v.item() if hasattr(v, "item") else v


def _bound_text(hi: np.ndarray) -> str:
    return str(_plain(hi)) if hi.ndim == 0 else "its layer's channels - 1"


def _codes(*cols: np.ndarray) -> np.ndarray:
    """One int64 per row of small non-negative integer columns (already range-checked)."""
    code = np.zeros(len(cols[0]), dtype=np.int64)
    for c in cols:
        code = code * (1 << 21) + c.astype(np.int64)
    return code


def validate_circuit(manifest: dict[str, Any], tables: dict[str, pd.DataFrame], folder: str = "") -> None:
    """Check a whole circuit: the manifest, every table's ranges and finiteness, and that every row refers
    to layers, nodes, groups and images that exist. Raises a one-line `UserError` at the first problem."""
    mwhere = f"{folder}/manifest.json" if folder else "manifest"
    validate_manifest(manifest, mwhere)
    layers_m: list[str] = manifest["layers"]
    T = len(layers_m) - 1
    channels = np.array([manifest["channels"][n] for n in layers_m], dtype=np.int64)
    names = np.array(layers_m, dtype=object)
    t = {name: _Table(folder, name, df) for name, df in tables.items()}

    lay = t["layers"]
    if len(lay.df) != T + 1 or not (lay.col("depth") == np.arange(T + 1)).all():
        fail(lay.where, "column 'depth'", f"must list depths 0..{T} in order, one row per layer of the "
             "manifest's 'layers'")
    lay.bad(lay.col("name") != names, "name", "layer names must be the manifest's 'layers', in order")
    lay.bad(lay.col("channels") != channels, "channels", "must equal the manifest's 'channels'")

    def depth_layer(tab: _Table, lo: int = 1, lower: bool = False) -> np.ndarray:
        tab.in_range("depth", lo, T, "depth")
        d = tab.col("depth").astype(np.int64)
        tab.bad(tab.col("layer") != names[d], "layer", "must be the chain's layer at that depth")
        if lower:
            tab.bad(tab.col("lower_layer") != names[d - 1], "lower_layer", "must be the layer below 'layer'")
        return d

    nodes, core, edges, groups = t["nodes"], t["core"], t["edges"], t["groups"]
    gedges, ex, images, thumbs = t["group_edges"], t["exemplars"], t["images"], t["thumbnails"]
    big = 1 << 20   # indices of sub-concepts, groups, ranks, crops: far below 2^21 (see `_codes`)

    # groups
    gd = depth_layer(groups)
    groups.in_range("group", 0, big - 1, "group index")
    groups.unique(["depth", "group"])
    groups.in_range("size", 1, MAX_ROWS, "group size")
    groups.in_range("n_neurons", 1, MAX_CHANNELS, "number of neurons")
    groups.bad(groups.col("n_neurons") > groups.col("size"), "n_neurons", "a group has no more neurons than "
               "members")
    groups.finite("influence", "abs_influence")
    groups.finite("silhouette", allow_nan=True)
    groups.bad(groups.col("abs_influence") < 0, "abs_influence", "must be >= 0")
    group_ids = _codes(gd, groups.col("group"))

    # nodes
    nd = depth_layer(nodes)
    nodes.in_range("neuron", 0, channels[nd] - 1, "neuron index")
    nodes.in_range("subconcept", 0, big - 1, "sub-concept index")
    nodes.unique(["depth", "neuron", "subconcept"])
    nodes.in_range("size", 1, MAX_ROWS, "node size")
    nodes.in_range("group", -1, big - 1, "group index (-1: none)")
    nodes.finite("activation")
    grouped = nodes.col("group") >= 0
    missing = grouped & ~np.isin(_codes(nd, np.maximum(nodes.col("group"), 0)), group_ids)
    nodes.bad(missing, "group", "names a group that groups.parquet lacks at that depth")
    if len(nodes.df):
        top = nd == T
        nodes.bad(top & (nodes.col("neuron") != manifest["target_class"]), "neuron",
                  f"the top layer's nodes must be the class unit {manifest['target_class']} (the manifest's "
                  "'target_class')")
        lengths = np.array([len(v) for v in nodes.df["concept_vector"]], dtype=np.int64)
        first = pd.Series(lengths).groupby(nd).transform("first").to_numpy()
        nodes.bad(lengths != first, "concept_vector", "vectors of one layer must have one length")
    node_ids = _codes(nd, nodes.col("neuron"), nodes.col("subconcept"))
    node_neurons = _codes(nd, nodes.col("neuron"))

    # core neurons and edges
    cd = depth_layer(core)
    core.in_range("neuron", 0, channels[cd] - 1, "neuron index")
    core.in_range("lower_neuron", 0, channels[cd - 1] - 1, "lower neuron index")
    core.in_range("rank", 0, big - 1, "rank")
    core.finite("importance")
    core.bad(core.col("importance") < 0, "importance", "a mean absolute attribution is >= 0")
    core.bad(~np.isin(_codes(cd, core.col("neuron")), node_neurons), "neuron",
             "names a neuron with no node in nodes.parquet")
    ed = depth_layer(edges, lower=True)
    edges.in_range("neuron", 0, channels[ed] - 1, "neuron index")
    edges.in_range("lower_neuron", 0, channels[ed - 1] - 1, "lower neuron index")
    edges.in_range("subconcept", 0, big - 1, "sub-concept index")
    edges.finite("weight", "raw")
    edges.bad(np.abs(edges.col("weight")) > 1 + 1e-6, "weight", "weights are L1-normalised, |weight| <= 1")
    edges.bad(~np.isin(_codes(ed, edges.col("neuron"), edges.col("subconcept")), node_ids), "subconcept",
              "names a node (neuron, sub-concept) that nodes.parquet lacks")
    core_ids = _codes(cd, core.col("neuron"), core.col("lower_neuron"))
    edges.bad(~np.isin(_codes(ed, edges.col("neuron"), edges.col("lower_neuron")), core_ids), "lower_neuron",
              "is not a core neuron of the edge's upper neuron in core.parquet")

    # group edges
    ged = depth_layer(gedges, lo=2, lower=True)
    gedges.in_range("group", 0, big - 1, "group index")
    gedges.in_range("lower_group", 0, big - 1, "group index")
    gedges.unique(["depth", "group", "lower_group"])
    gedges.finite("weight", "abs_weight")
    gedges.bad(gedges.col("abs_weight") < 0, "abs_weight", "must be >= 0")
    gedges.bad(~np.isin(_codes(ged, gedges.col("group")), group_ids), "group",
               "names a group that groups.parquet lacks")
    gedges.bad(~np.isin(_codes(ged - 1, gedges.col("lower_group")), group_ids), "lower_group",
               "names a lower group that groups.parquet lacks")

    # images, exemplars, thumbnails
    n_crops = manifest.get("n_crops")
    crop_hi = (n_crops - 1) if n_crops is not None else MAX_ROWS
    images.in_range("image", 0, MAX_ROWS, "image index")
    images.unique(["image"])
    images.in_range("label", -1, manifest["num_classes"] - 1, "class label (-1: unknown)")
    images.in_range("predicted", -1, manifest["num_classes"] - 1, "predicted class (-1: none)")
    images.text("source")
    if manifest.get("n_images") is not None and manifest["n_images"] != len(images.df):
        fail(mwhere, "field 'n_images'", f"is {manifest['n_images']} but images.parquet has "
             f"{len(images.df)} rows")
    xd = depth_layer(ex)
    ex.in_range("neuron", 0, channels[xd] - 1, "neuron index")
    ex.in_range("subconcept", 0, big - 1, "sub-concept index")
    ex.in_range("rank", 0, big - 1, "rank")
    ex.in_range("crop", 0, crop_hi, "crop index")
    ex.finite("activation", "granularity")
    ex.in_range("granularity", 1e-9, 1.0, "granularity")
    ex.in_range("top", 0, 16_384, "crop position")
    ex.in_range("left", 0, 16_384, "crop position")
    ex.in_range("size", 1, 16_384, "crop size")
    ex.bad(~np.isin(_codes(xd, ex.col("neuron"), ex.col("subconcept")), node_ids), "subconcept",
           "names a node (neuron, sub-concept) that nodes.parquet lacks")
    ex.bad(~np.isin(ex.col("image"), images.col("image")), "image",
           "names an image that images.parquet lacks")
    thumbs.in_range("crop", 0, crop_hi, "crop index")
    thumbs.unique(["crop"])
    for row, png in enumerate(thumbs.df["png"]):
        problem = _png_problem(png)
        if problem:
            fail(thumbs.where, "column 'png'", f"at row {row} {problem}")

    # labels and embeddings
    lab, emb = t["labels"], t["group_embeddings"]
    for tab in (lab, emb):
        d = depth_layer(tab)
        tab.in_range("group", 0, big - 1, "group index")
        tab.bad(~np.isin(_codes(d, tab.col("group")), group_ids), "group",
                "names a group that groups.parquet lacks")
        tab.text("encoder")
    lab.text("concept", "vocabulary", "method")
    lab.in_range("rank", 0, big - 1, "rank")
    lab.finite("score")
    emb.unique(["depth", "group"])
    if len(emb.df):
        lengths = np.array([len(v) for v in emb.df["embedding"]])
        emb.bad(lengths != lengths[0], "embedding", "embeddings must all have one length")


def _png_problem(png: Any) -> str | None:
    """Why `png` is not a small PNG thumbnail (None when it is one); reads the header only."""
    if not isinstance(png, bytes | bytearray):
        return "is not bytes"
    if len(png) > MAX_PNG_BYTES:
        return f"holds {len(png)} bytes, more than {MAX_PNG_BYTES} for a thumbnail"
    if len(png) < 24 or not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR":
        return "is not a PNG image"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    if not (1 <= width <= MAX_PNG_SIDE and 1 <= height <= MAX_PNG_SIDE):
        return f"is a {width}x{height} PNG, outside 1..{MAX_PNG_SIDE} pixels a side"
    return None


def check_key(manifest: dict[str, Any], computed: str, where: str) -> None:
    """The key stored in a manifest must be the one its content gives (else it was edited)."""
    saved = manifest.get("key")
    if saved != computed:
        fail(where, "field 'key'", f"is {_show(saved)} but the manifest's content gives {computed!r} (was "
             "the manifest edited?)")


__all__ = ["MAX_CHANNELS", "MAX_CLASSES", "MAX_ROWS", "VECTOR_COLUMNS", "check_key", "fail", "read_manifest",
           "read_table", "validate_circuit", "validate_manifest"]
