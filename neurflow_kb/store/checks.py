"""What the stores accept: graph rows and query parameters checked once at the store's boundary, so that
bad values fail in one line before anything is written (never half-way, never as a traceback)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from .graph import GraphRows
from .schema import indexed_properties

#: Longest key or indexed text in UTF-8 bytes: Neo4j's range indexes refuse keys over about 8 KB (and
#: a run whose concept were longer would fail half-written); both stores keep the same limit so a
#: knowledge base moves between them.
MAX_INDEXED_BYTES = 4000
#: Numbers a run's meaning rests on: they must be finite (NaN elsewhere, e.g. the silhouette of a group
#: of one, is stored as null).
FINITE = frozenset({("INFLUENCES", "weight"), ("DRIVES", "weight"), ("DRIVES", "abs_weight"),
                    ("DRIVES", "share"), ("DRIVES", "abs_share"), ("NeuronGroup", "influence"),
                    ("NeuronGroup", "abs_influence"), ("NeuronGroup", "share"), ("NeuronGroup", "abs_share"),
                    ("MEMBER_OF", "activation"), ("LABELED", "score"), ("ACTIVATES", "score"),
                    ("RESEMBLES", "cosine")})
INT64 = (-(2**63), 2**63 - 1)


def _float_problem(owner: str, col: str, s: pd.Series) -> str | None:
    if not (pd.api.types.is_float_dtype(s.dtype) and len(s)):
        return None
    values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    inf = int(np.isinf(values).sum())
    nan = int(np.isnan(values).sum()) if (owner, col) in FINITE else 0
    if inf or nan:
        what = " and ".join(x for x in (f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else "") if x)
        return f"{what} {owner}.{col} value(s)"
    return None


def _long_text(owner: str, col: str, s: pd.Series) -> str | None:
    if not len(s):
        return None
    try:
        arr = pa.array(s, from_pandas=True)
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            raise pa.ArrowTypeError("not text")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array([None if v is None else str(v) for v in s.tolist()], type=pa.string())
    lengths = pc.binary_length(arr).to_numpy(zero_copy_only=False)
    lengths = np.nan_to_num(lengths.astype(np.float64), nan=0.0)
    if not len(lengths) or lengths.max() <= MAX_INDEXED_BYTES:
        return None
    first = str(arr[int(lengths.argmax())].as_py())
    return (f"{owner}.{col} {first[:40]!r}... is {int(lengths.max())} bytes long (at most "
            f"{MAX_INDEXED_BYTES} are indexable)")


def check_rows(rows: GraphRows, what: str = "the circuits to write") -> None:
    """Raise `UserError` (one line, before any write) if `rows` hold non-finite weights, influences or
    scores, infinite numbers anywhere, or keys and indexed texts too long for an index."""
    indexed = indexed_properties()
    problems: list[str] = []
    for label, df in rows.nodes.items():
        for col in df.columns:
            p = _float_problem(label, col, df[col])
            if p is None and (label, col) in indexed and not pd.api.types.is_numeric_dtype(df[col].dtype):
                p = _long_text(label, col, df[col])
            if p:
                problems.append(p)
    for (rtype, _, _), df in rows.rels.items():
        for col in df.columns:
            p = _float_problem(rtype, col, df[col])
            if p is None and (col in ("src", "dst") or (rtype, col) in indexed) and \
                    not pd.api.types.is_numeric_dtype(df[col].dtype):
                p = _long_text(rtype, col, df[col])
            if p:
                problems.append(p)
    if problems:
        raise UserError(f"{what} have {problems[0]}" + (f" (and {len(problems) - 1} more problem(s))"
                                                        if len(problems) > 1 else "")
                        + "; nothing was written, fix or re-create the artifact")


def check_params(params: dict[str, Any]) -> None:
    """Raise `UserError` if a query parameter holds an integer outside 64 bits (the drivers would fail
    with a traceback), at any depth of lists and maps."""
    def walk(name: str, v: Any) -> None:
        if isinstance(v, bool):
            return
        if isinstance(v, int | np.integer) and not INT64[0] <= int(v) <= INT64[1]:
            raise UserError(f"parameter ${name} = {int(v)} does not fit in a 64-bit integer")
        if isinstance(v, float) and math.isnan(v):
            return
        if isinstance(v, list | tuple):
            for x in v:
                walk(name, x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(name, x)

    for k, v in params.items():
        walk(str(k), v)
