"""DataFrames to and from the rows both stores exchange with their databases (plain Python values,
missing values as None)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..values import plain


def to_frame(columns: list[str], rows: list[list[Any]]) -> pd.DataFrame:
    """Query rows -> DataFrame, built the same way for both stores so that equal rows compare equal."""
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    return pd.DataFrame([list(r) for r in rows], columns=columns)


def columns(df: pd.DataFrame) -> list[list[Any]]:
    """DataFrame -> one list of plain Python values per column (NaN / NA -> None)."""
    data = []
    for c in df.columns:
        s = df[c]
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub":
            vals = s.tolist()
        elif isinstance(s.dtype, np.dtype) and s.dtype.kind == "f":
            vals = s.astype(object).where(s.notna(), None).tolist() if s.isna().any() else s.tolist()
        elif isinstance(s.dtype, pd.ArrowDtype | pd.StringDtype):
            vals = pa.array(s.array).to_pylist()                    # missing values come back as None
        elif pd.api.types.infer_dtype(s.to_numpy(), skipna=False) == "string":   # only str: as they are
            vals = s.tolist()
        else:
            vals = [plain(v) for v in s.tolist()]
        data.append(vals)
    return data


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame -> list of dicts of plain Python values (NaN / NA -> None), column by column."""
    cols = list(df.columns)
    return [dict(zip(cols, row, strict=True)) for row in zip(*columns(df), strict=True)]


def tuples(df: pd.DataFrame) -> list[list[Any]]:
    """DataFrame -> list of rows as plain-value lists (a smaller Bolt payload than `records`)."""
    return [list(row) for row in zip(*columns(df), strict=True)]



__all__ = ["columns", "records", "to_frame", "tuples"]
