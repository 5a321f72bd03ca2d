"""`NeurFlowConfig`: every knob of one circuit extraction, in one dataclass recorded in each artifact."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import UserError

#: Gauss-Legendre nodes come from an eigenproblem of this size: a bound keeps it to seconds and MBs.
_MAX_IG_STEPS = 1_000
_COUNT = 2**31 - 1
#: Integer settings and their ranges (seeds: any 64-bit integer, as torch and the stores take them).
_COUNTS: dict[str, tuple[int, int]] = {
    "tau": (1, _COUNT), "top_k": (2, _COUNT), "ig_steps": (1, _MAX_IG_STEPS),
    "max_nodes_per_layer": (1, _COUNT),
    "max_subconcepts": (2, 1_000), "max_groups": (1, _COUNT), "num_representatives": (1, 1_000),
    "thumbnail_size": (8, 1_024), "batch_size": (1, _COUNT), "ig_batch_size": (1, _COUNT),
    "seed": (-(2**63), 2**63 - 1),
}
_OPTIONAL = {"max_nodes_per_layer"}

ClassFilter = Literal["predicted", "true", "all"]
Strategy = Literal["batched", "per_neuron", "fast"]


@dataclass
class NeurFlowConfig:
    """Settings of NeurFlow (defaults: the paper's tau 16, k 50, 50 Gauss-Legendre IG steps).

    ``strategy`` picks how Integrated Gradients is evaluated: ``batched`` (exact, all nodes of a layer in
    shared batches), ``per_neuron`` (one call per node, the reference and benchmark baseline) or ``fast``
    (fewest Gauss-Legendre steps whose completeness error stays under ``fast_tolerance``).

    ``dtype`` (bf16/fp16 autocast), ``allow_tf32`` and the ``fast`` strategy trade exactness for speed.
    With ``certify=True`` they keep the core sets of exact float32 at ``ig_steps`` steps: every node whose
    core set the approximation could have changed is recomputed exactly (`neurflow_kb.engine.certify`).
    """

    tau: int = 16
    top_k: int = 50
    ig_steps: int = 50
    granularities: tuple[float, ...] = (1.0, 0.5, 0.25)
    stride_ratio: float = 0.5
    class_filter: ClassFilter = "predicted"
    layers: list[str] | None = None
    max_nodes_per_layer: int | None = None
    error_range: float | None = None
    max_subconcepts: int = 5
    subconcept_min_silhouette: float | None = 0.1
    max_groups: int = 100
    num_representatives: int = 5
    thumbnail_size: int = 48
    strategy: Strategy = "batched"
    fast_tolerance: float = 0.01
    fast_steps: tuple[int, ...] = (8, 16, 24, 32, 50)
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    allow_tf32: bool = False
    certify: bool = False            # exact core sets from reduced precision / steps (engine.certify)
    certify_safety: float = 4.0      # error bound = safety x the worst error/scale ratio of the probe
    certify_probe: float = 0.05      # share of a layer's nodes computed exactly to calibrate the bound ...
    certify_min_probe: int = 3       # ... and at least this many
    certify_order: bool = False      # also certify the order inside core sets (forced by error_range)
    share_forward: bool = True       # rows of one exemplar share each (exemplar, step) forward
    channels_last: bool = False      # NHWC weights and maps during the fit
    batch_size: int = 64
    ig_batch_size: int = 256
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, (lo, hi) in _COUNTS.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            shown = str(value)[:30]
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise UserError(f"{name} must be an integer (got {shown})")
            value = int(value)
            if not lo <= value <= hi:
                raise UserError(f"{name} must be {f'>= {lo}' if value < lo else f'<= {hi}'} (got {shown})")
            setattr(self, name, int(value))
        try:
            self.granularities = tuple(float(g) for g in self.granularities)
            self.fast_steps = tuple(int(s) for s in self.fast_steps)
        except (TypeError, ValueError, OverflowError):
            raise UserError("granularities and fast_steps must be lists of numbers") from None
        self.validate()

    def validate(self) -> None:
        """Raise `UserError` naming the first bad field."""
        checks = [
            (self.tau >= 1, f"tau must be >= 1 (got {self.tau})"),
            (self.top_k >= 2, f"top_k must be >= 2 (got {self.top_k})"),
            (self.ig_steps >= 1, f"ig_steps must be >= 1 (got {self.ig_steps})"),
            (len(self.granularities) > 0 and all(0 < g <= 1 for g in self.granularities),
             f"granularities must lie in (0, 1] (got {self.granularities})"),
            (0 < self.stride_ratio <= 1, f"stride_ratio must lie in (0, 1] (got {self.stride_ratio})"),
            (self.class_filter in ("predicted", "true", "all"),
             f"class_filter must be 'predicted', 'true' or 'all' (got {self.class_filter!r})"),
            (self.strategy in ("batched", "per_neuron", "fast"),
             f"strategy must be 'batched', 'per_neuron' or 'fast' (got {self.strategy!r})"),
            (self.dtype in ("float32", "bfloat16", "float16"),
             f"dtype must be float32, bfloat16 or float16 (got {self.dtype!r})"),
            (self.certify_safety >= 1, f"certify_safety must be >= 1 (got {self.certify_safety})"),
            (0 <= self.certify_probe <= 1, f"certify_probe must lie in [0, 1] (got {self.certify_probe})"),
            (self.certify_min_probe >= 1, f"certify_min_probe must be >= 1 (got {self.certify_min_probe})"),
            (self.max_subconcepts >= 2, f"max_subconcepts must be >= 2 (got {self.max_subconcepts})"),
            (self.batch_size >= 1 and self.ig_batch_size >= 1, "batch sizes must be >= 1"),
            (self.max_nodes_per_layer is None or self.max_nodes_per_layer >= 1,
             "max_nodes_per_layer must be >= 1 or None"),
            (all(1 <= st <= _MAX_IG_STEPS for st in self.fast_steps),
             f"fast_steps must lie in 1..{_MAX_IG_STEPS} (got {self.fast_steps})"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NeurFlowConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
