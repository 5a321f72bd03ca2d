"""Certified reduced-precision and reduced-step IG: core sets equal to those of exact float32, 50 steps.

A transition's IG is first computed cheaply (bf16/fp16 autocast, TF32, or fewer Gauss-Legendre steps),
together with each row's absolute attribution mass a_x(m) = sum_i w_i mean_pos |X_m * grad_i|. Per node
n the error scale is S_n(m) = A_n(m) + mean_m' A_n(m'), with A_n(m) = mean over exemplars of a_x(m): a
neuron's own terms, plus the node's mean for errors every neuron inherits from the shared upstream
gradient (without it, neurons with almost no mass get errors far above their scale). Then:

1. **Calibrate.** A few probe nodes (evenly spaced over the layer's nodes) are also computed exactly.
   Their worst ratio r = max |I~_n(m) - I_n(m)| / S_n(m), with I = mean_x |IG| the importance, gives the
   error factor beta = safety * r.
2. **Bound and test.** Every other node gets the bound eps_n(m) = beta * S_n(m). Its core set is certain
   when the lowest possible importance of its top-tau neurons exceeds the highest possible importance of
   every other neuron (and, with `ordered`, when neighbouring ranks cannot swap either).
3. **Re-evaluate.** Every node that fails the test is recomputed exactly and takes the exact values.

What is guaranteed and what is statistical: *if* every |I~ - I| <= eps holds, the certified core sets are
exactly those of the exact computation (the set logic is exact, ties go to the exact computation). Whether
the bound holds is an empirical property of the error model: the probe measures the factor on the same
layer, model and data, and the safety factor covers the nodes it did not see. It is not a worst-case
proof; tests and `benchmarks/engine.py` check the bound on every node against an exact run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .ig import IGResult

Evaluate = Callable[[np.ndarray], IGResult]


@dataclass
class Certification:
    """What certifying one transition did; recorded per layer in the circuit's manifest."""

    approximation: str           # e.g. "bfloat16, 50 steps"
    nodes: int
    probe_nodes: int             # computed exactly to calibrate the error factor
    reevaluated: int             # computed exactly because their gap test failed (probe not counted)
    beta: float                  # error factor: bound = beta * error scale S (module docstring)
    probe_ratio: float           # worst |error| / S seen on the probe (beta = safety * this)
    approx_seconds: float = 0.0
    exact_seconds: float = 0.0

    def to_dict(self) -> dict:
        return {key: (round(v, 4) if key.endswith("seconds") else v) for key, v in asdict(self).items()}


@dataclass
class Attribution:
    """A transition's attributions [N, k, C] with, per node, whether they are exact and a bound on the
    importance error ([N, C], zero where exact; None when nothing bounds it, e.g. plain bf16).

    Certified runs also keep what the approximation alone gave (`approx_importance`) and the bound it
    came with (`approx_bound`) for every node, re-evaluated or not, so the bound can be checked."""

    result: IGResult
    attributions: np.ndarray
    exact: np.ndarray
    bound: np.ndarray | None = None
    report: Certification | None = None
    steps: int = 0
    approx_importance: np.ndarray | None = None
    approx_bound: np.ndarray | None = None


def importance_of(attributions: np.ndarray) -> np.ndarray:
    """I_n(m) = mean_x |IG_m(x; n)| of node-major attributions [N, k, C] -> [N, C]."""
    return np.abs(attributions).mean(1)


def ranks_certain(values: np.ndarray, bound: np.ndarray, tau: int, ordered: bool = False) -> bool:
    """Whether every vector within `bound` of `values` has the same top-`tau` set as `values` (ties to
    the lower index); with `ordered` also the same order inside the top `tau`."""
    order = np.argsort(-values, kind="stable")
    if tau >= len(values):
        top, rest = order, order[:0]
    else:
        top, rest = order[:tau], order[tau:]
    low, high = values - bound, values + bound
    if ordered and len(top) > 1 and not np.all(low[top[:-1]] > high[top[1:]]):
        return False
    return len(rest) == 0 or bool(low[top].min() > high[rest].max())


def probe_nodes(n_nodes: int, fraction: float, minimum: int) -> np.ndarray:
    """Evenly spaced node indices: `fraction` of the nodes, at least `minimum` (at most all)."""
    count = min(n_nodes, max(int(minimum), int(np.ceil(fraction * n_nodes))))
    return np.unique(np.linspace(0, n_nodes - 1, count).round().astype(np.int64)) if count else np.zeros(
        0, dtype=np.int64)


def error_ratio(approx: np.ndarray, exact: np.ndarray, mass: np.ndarray) -> float:
    """max |approx - exact| / mass over all entries; an error where the mass is zero makes it infinite."""
    diff = np.abs(approx - exact)
    if np.any((mass <= 0) & (diff > 0)):
        return float("inf")
    safe = np.where(mass > 0, mass, 1.0)
    return float((diff / safe).max()) if diff.size else 0.0


def _node_view(res: IGResult, n_nodes: int, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Attributions [N, k, C] and the error scale S [N, C] (None without the attribution mass)."""
    attr = res.attributions.double().numpy().reshape(n_nodes, k, -1)
    if res.scale is None:
        return attr, None
    mass = res.scale.double().numpy().reshape(n_nodes, k, -1).mean(1)
    return attr, mass + mass.mean(1, keepdims=True)


def certify_transition(approx: Evaluate, exact: Evaluate, n_nodes: int, k: int, tau: int, *,
                       approximation: str, safety: float = 4.0, probe_fraction: float = 0.05,
                       min_probe: int = 3, ordered: bool = False) -> Attribution:
    """Certified attributions of a transition's `n_nodes` nodes (k rows each, node-major).

    `approx(nodes)` / `exact(nodes)` compute the rows of the given node indices; `approx` must return
    the absolute attribution mass (`IGResult.scale`).
    """
    probe = probe_nodes(n_nodes, probe_fraction, min_probe)
    if len(probe) == n_nodes:        # the probe is every node: nothing to approximate
        t0 = time.perf_counter()
        res = exact(probe)
        report = Certification(approximation=approximation, nodes=n_nodes, probe_nodes=n_nodes, reevaluated=0,
                               beta=0.0, probe_ratio=0.0, exact_seconds=time.perf_counter() - t0)
        return Attribution(result=res, attributions=_node_view(res, n_nodes, k)[0],
                           exact=np.ones(n_nodes, dtype=bool),
                           bound=np.zeros((n_nodes, res.attributions.shape[1])), report=report,
                           steps=res.steps)
    t0 = time.perf_counter()
    cheap = approx(np.arange(n_nodes))
    approx_seconds = time.perf_counter() - t0
    attr, mass = _node_view(cheap, n_nodes, k)
    if mass is None:
        raise ValueError("certification needs the absolute attribution mass of the approximation")
    approx_importance = importance_of(attr)
    exact_flags = np.zeros(n_nodes, dtype=bool)
    t0 = time.perf_counter()
    parts: list[tuple[np.ndarray, IGResult]] = []
    ratio = 0.0
    if len(probe):
        ref = exact(probe)
        ref_attr, _ = _node_view(ref, len(probe), k)
        ratio = error_ratio(importance_of(attr[probe]), importance_of(ref_attr), mass[probe])
        attr[probe] = ref_attr
        exact_flags[probe] = True
        parts.append((probe, ref))
    beta = safety * ratio
    # an error where the scale is zero (ratio inf) leaves nothing bounded: every node is recomputed
    approx_bound = beta * mass if np.isfinite(beta) else np.full_like(mass, np.inf)
    bound = approx_bound.copy()
    bound[exact_flags] = 0.0
    values = importance_of(attr)
    failed = np.array([n for n in range(n_nodes) if not exact_flags[n]
                       and not ranks_certain(values[n], bound[n], tau, ordered)], dtype=np.int64)
    if len(failed):
        ref = exact(failed)
        attr[failed] = _node_view(ref, len(failed), k)[0]
        exact_flags[failed] = True
        bound[failed] = 0.0
        parts.append((failed, ref))
    exact_seconds = time.perf_counter() - t0
    report = Certification(approximation=approximation, nodes=n_nodes, probe_nodes=int(len(probe)),
                           reevaluated=int(len(failed)), beta=beta, probe_ratio=ratio,
                           approx_seconds=approx_seconds, exact_seconds=exact_seconds)
    return Attribution(result=_merge(cheap, parts, k), attributions=attr, exact=exact_flags, bound=bound,
                       report=report, steps=cheap.steps, approx_importance=approx_importance,
                       approx_bound=approx_bound)


def _merge(cheap: IGResult, parts: list[tuple[np.ndarray, IGResult]], k: int) -> IGResult:
    """The cheap result with the rows of exactly recomputed nodes replaced (attributions, completeness)."""
    attributions, delta, total = cheap.attributions.clone(), cheap.delta.clone(), cheap.total.clone()
    for nodes, res in parts:
        rows = (nodes[:, None] * k + np.arange(k)).ravel()
        attributions[rows], delta[rows], total[rows] = res.attributions, res.delta, res.total
    return IGResult(attributions, delta, total, cheap.steps, cheap.scale)


def refine(attribution: Attribution, exact: Evaluate, nodes: np.ndarray, k: int) -> None:
    """Recompute `nodes` exactly in place (bound zero, exact flag set, counted as re-evaluated)."""
    nodes = np.asarray([n for n in nodes if not attribution.exact[n]], dtype=np.int64)
    if not len(nodes):
        return
    t0 = time.perf_counter()
    ref = exact(nodes)
    attribution.attributions[nodes] = _node_view(ref, len(nodes), k)[0]
    attribution.exact[nodes] = True
    if attribution.bound is not None:
        attribution.bound[nodes] = 0.0
    attribution.result = _merge(attribution.result, [(nodes, ref)], k)
    if attribution.report is not None:
        attribution.report.reevaluated += len(nodes)
        attribution.report.exact_seconds += time.perf_counter() - t0


def uncertain_selection(totals: dict[int, float], bounds: dict[int, float], cap: int) -> list[int]:
    """Candidates whose membership in the top-`cap` by total (ties to the lower index) some totals within
    their bounds could change; empty when the selection is certain."""
    order = sorted(totals, key=lambda m: (-totals[m], m))
    if len(order) <= cap:
        return []
    chosen, rest = order[:cap], order[cap:]
    low_in = min(totals[m] - bounds[m] for m in chosen)
    high_out = max(totals[m] + bounds[m] for m in rest)
    if low_in > high_out:
        return []
    return [m for m in chosen if totals[m] - bounds[m] <= high_out] + [
        m for m in rest if totals[m] + bounds[m] >= low_in]
