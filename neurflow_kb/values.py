"""Plain Python values from NumPy and pandas cells, with missing values (None, NaN, pandas NA) as None:
the one converter every room uses before JSON, Cypher parameters, HTML or tables."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def is_missing(v: Any) -> bool:
    """None, pandas NA or a float NaN (NumPy floats included)."""
    return v is None or v is pd.NA or (isinstance(v, float | np.floating) and v != v)


def plain(v: Any) -> Any:
    """One cell as plain Python: missing -> None, NumPy arrays -> lists, NumPy scalars -> Python scalars."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def number(v: Any) -> float | None:
    """A float, or None for a missing value or one that is not a number."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def json_value(v: Any) -> Any:
    """A value JSON can hold: NaN and infinities become null (JSON has no such numbers), NumPy scalars
    and arrays plain Python, at any depth of lists and maps."""
    if hasattr(v, "item") and not isinstance(v, list | str | dict):
        v = v.item() if getattr(v, "ndim", 0) == 0 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list | tuple):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    return v


__all__ = ["is_missing", "json_value", "number", "plain"]
