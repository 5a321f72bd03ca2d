"""One converter of cells to plain Python: missing values (None, NaN, pandas NA, NumPy NaN) are None."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from neurflow_kb.values import is_missing, json_value, number, plain


def test_missing_values_are_recognised() -> None:
    assert all(is_missing(v) for v in (None, float("nan"), np.float32("nan"), np.float64("nan"), pd.NA))
    assert not any(is_missing(v) for v in (0, 0.0, "", "nan", [], np.int64(3), float("inf")))


def test_plain_turns_cells_into_python() -> None:
    assert plain(np.int64(3)) == 3 and type(plain(np.int64(3))) is int
    assert plain(np.array([1.5, 2.5])) == [1.5, 2.5]
    assert plain(pd.NA) is None and plain(float("nan")) is None and plain(None) is None
    assert plain("text") == "text"


def test_number_is_a_float_or_none() -> None:
    assert number("2.5") == 2.5 and number(np.float32(0.5)) == 0.5
    assert number(np.float32("nan")) is None and number(pd.NA) is None and number("x") is None
    assert number(float("inf")) == math.inf


def test_json_value_writes_valid_json_at_any_depth() -> None:
    value = {"a": [np.float64("nan"), np.int64(2), {"b": float("-inf")}], "c": np.array([[1, 2]])}
    out = json_value(value)
    assert out == {"a": [None, 2, {"b": None}], "c": [[1, 2]]}
    json.dumps(out, allow_nan=False)
