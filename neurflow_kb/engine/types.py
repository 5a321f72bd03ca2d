"""The engine's shared record types: what one layer transition produced (`LayerResult`).

A module of its own so that `groups` (which reads results) and `neurflow` (which makes them) both import it
and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .certify import Certification


@dataclass
class LayerResult:
    """What one transition (lower -> upper) produced for the nodes of the upper layer.

    `importance` holds every node's full importance vector; `exact` says whether a node's IG was computed
    exactly (float32, `ig_steps`). Certified runs add the remaining error bound per node (`bound`, zero
    where exact), what the approximation alone gave (`approx_importance`, with its bound `approx_bound`)
    and the transition's `certification` record.
    """

    depth: int
    upper: str
    lower: str
    neurons: list[int]
    exemplars: dict[int, np.ndarray]
    importance: dict[int, np.ndarray]
    core: dict[int, np.ndarray]
    subconcepts: dict[int, np.ndarray]
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    representatives: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    ig_steps: int = 0
    completeness_error: float = 0.0
    seconds: float = 0.0
    ig_seconds: float = 0.0
    exact: dict[int, bool] = field(default_factory=dict)
    bound: dict[int, np.ndarray] = field(default_factory=dict)
    certification: Certification | None = None
    approx_importance: dict[int, np.ndarray] = field(default_factory=dict)
    approx_bound: dict[int, np.ndarray] = field(default_factory=dict)
