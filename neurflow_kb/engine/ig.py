"""Integrated Gradients from layer L-1 to pooled neurons of layer L, batched over (exemplar, target) rows.

IG_m(x; n) = reduce_positions( X_m * sum_i w_i * d pool(B(a_i X))_n / d X_m ), zero baseline,
Gauss-Legendre nodes a_i and weights w_i on [0, 1] (Captum's ``gausslegendre``). Attributions are
reduced over positions inside every batch, so no [rows, steps, C, H, W] tensor is ever kept.

Rows that share an exemplar share work: with ``share_forward`` the forward of each (exemplar, step) pair
runs once and one backward takes the batched cotangents of all that exemplar's targets
(``torch.autograd.grad(..., is_grads_batched=True)``). Every row's contributions are still added in step
order, so the numbers are those of one (row, step) pair at a time.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..models import ModelAdapter


@lru_cache(maxsize=64)
def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the `steps`-point Gauss-Legendre rule on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (x + 1.0), 0.5 * w


@dataclass
class IGResult:
    """Attributions [R, C_lower], and per row f(x) - f(0) and sum(IG) * positions (completeness check).

    `scale` (when asked for) is the absolute attribution mass sum_i w_i mean_pos |X_m * grad_i| per row
    and lower neuron: the size of the terms whose signed mean is the attribution, which is what rounding
    and quadrature errors scale with (the certification's error model, `engine.certify`).
    """

    attributions: torch.Tensor
    delta: torch.Tensor
    total: torch.Tensor
    steps: int
    scale: torch.Tensor | None = None

    def completeness_error(self) -> float:
        """Aggregate relative completeness error sum|total - delta| / sum|delta|."""
        denom = float(self.delta.abs().sum())
        if denom == 0.0:
            return 0.0
        return float((self.total - self.delta).abs().sum()) / denom

    @staticmethod
    def combine(parts: list[tuple[torch.Tensor, IGResult]], n_rows: int, steps: int) -> IGResult:
        """One result of `n_rows` rows from parts that each cover the rows `index` names."""
        first = parts[0][1]
        attr = torch.zeros(n_rows, first.attributions.shape[1])
        delta, total = torch.zeros(n_rows), torch.zeros(n_rows)
        with_scale = all(p.scale is not None for _, p in parts)
        scale = torch.zeros_like(attr) if with_scale else None
        for idx, res in parts:
            attr[idx], delta[idx], total[idx] = res.attributions, res.delta, res.total
            if scale is not None and res.scale is not None:
                scale[idx] = res.scale
        return IGResult(attr, delta, total, steps, scale)


# float16 autocast: cotangents are scaled by this power of two (exact) so small gradients do not underflow
# float16's range (as loss scaling does in mixed-precision training); gradients are unscaled in float32.
FLOAT16_GRAD_SCALE = 2.0 ** 10


@contextlib.contextmanager
def tf32(allow: bool | None) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN convolutions on or off for the block (None: as the caller had it)."""
    backends = torch.backends
    saved = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32
    if allow is not None:
        backends.cuda.matmul.allow_tf32 = backends.cudnn.allow_tf32 = bool(allow)
    try:
        yield
    finally:
        backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = saved


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """Reduced-precision autocast of forward passes when `dtype` says so (backward passes run outside it)."""
    if dtype in ("bfloat16", "float16"):
        return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))
    return contextlib.nullcontext()


def _positions(adapter: ModelAdapter, layer: str, x: torch.Tensor) -> int:
    """Number of positions `reduce_attribution` averages over (H*W for CNN maps, tokens for ViT)."""
    reduced = adapter.reduce_attribution(layer, torch.ones_like(x[:1]))
    return int(round(x[:1].numel() / reduced.numel()))


def _chunks(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def pooled_target(adapter: ModelAdapter, lower: str, upper: str, x: torch.Tensor,
                  targets: torch.Tensor) -> torch.Tensor:
    """pool(B(x))[r, targets[r]] for each row r."""
    out = adapter.pool(upper, adapter.run_from(lower, x, upper))
    return out.gather(1, targets.view(-1, 1)).squeeze(1)


@dataclass
class _Units:
    """Work units: one exemplar and up to `width` of its rows (targets); `members` pads with -1."""

    exemplar: torch.Tensor    # [U] index into inputs
    members: torch.Tensor     # [U, W] row ids, -1 = padding
    width: torch.Tensor       # [U] real members per unit


def _units(rows: torch.Tensor, share_forward: bool, max_width: int) -> _Units:
    """Group rows by exemplar (widest groups first, split at `max_width`), or one row per unit."""
    n_rows = int(rows.numel())
    if not share_forward or n_rows == 0:
        return _Units(rows.clone(), torch.arange(n_rows).view(-1, 1), torch.ones(n_rows, dtype=torch.long))
    order = torch.argsort(rows, stable=True)
    uniq, counts = torch.unique_consecutive(rows[order], return_counts=True)
    groups: list[tuple[int, torch.Tensor]] = []
    for ex, members in zip(uniq.tolist(), torch.split(order, counts.tolist()), strict=True):
        for start in range(0, len(members), max_width):
            groups.append((ex, members[start:start + max_width]))
    groups.sort(key=lambda g: -len(g[1]))          # stable: equal widths keep exemplar order
    width = max(len(g[1]) for g in groups)
    members = torch.full((len(groups), width), -1, dtype=torch.long)
    for i, (_, m) in enumerate(groups):
        members[i, : len(m)] = m
    return _Units(torch.tensor([g[0] for g in groups], dtype=torch.long), members,
                  torch.tensor([len(g[1]) for g in groups], dtype=torch.long))


def _pair_chunks(units: _Units, steps: int, batch_size: int) -> Iterator[slice]:
    """Slices of the unit-major (unit, step) pair list whose pairs x widest-unit stays <= batch_size."""
    n_pairs = len(units.exemplar) * steps
    start = 0
    while start < n_pairs:
        width = int(units.width[start // steps])
        size = max(1, batch_size // width)
        yield slice(start, min(start + size, n_pairs))
        start += size


def _fetch(inputs: torch.Tensor, index: torch.Tensor, device: torch.device, channels_last: bool
           ) -> torch.Tensor:
    """inputs[index] as float32 on `device`; from pinned host memory through a pinned staging buffer, so
    the copy runs asynchronously."""
    index = index.to(inputs.device)
    if inputs.is_pinned() and device.type == "cuda":
        staged = torch.empty((len(index), *inputs.shape[1:]), dtype=inputs.dtype, pin_memory=True)
        x = torch.index_select(inputs, 0, index, out=staged).to(device, non_blocking=True)
    else:
        x = inputs[index].to(device)
    x = x.float()
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def integrated_gradients(
    adapter: ModelAdapter,
    lower: str,
    upper: str,
    inputs: torch.Tensor,
    rows: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int = 50,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    allow_tf32: bool | None = None,
    share_forward: bool = True,
    with_scale: bool = False,
    channels_last: bool = False,
    progress: Callable[[int], None] | None = None,
) -> IGResult:
    """IG of every row (``inputs[rows[r]]``, target neuron ``targets[r]``) in shared batches.

    `inputs` holds full lower-layer maps of the distinct exemplars (kept on the CPU or the device);
    rows index into it, so an exemplar shared by several targets is stored once. Work is split into
    chunks of at most `batch_size` (row, step) pairs; each chunk is one forward (of its distinct
    (exemplar, step) pairs when `share_forward`) and one backward. `allow_tf32` sets TF32 for this call
    only (None leaves the caller's setting); `with_scale` also returns the absolute attribution mass;
    `progress` is called after each chunk with the number of rows finished so far (all their steps done).
    """
    device = torch.device(device)
    n_rows = int(rows.numel())
    alphas, weights = gauss_legendre(steps)
    alphas_t = torch.tensor(alphas, dtype=torch.float32, device=device)
    weights_t = torch.tensor(weights, dtype=torch.float32, device=device)
    sample = inputs[:1].to(device, torch.float32)
    n_channels = adapter.reduce_attribution(lower, sample).shape[1]
    acc = torch.zeros(n_rows + 1, n_channels, dtype=torch.float32, device=device)   # last row: padding
    mass = torch.zeros_like(acc) if with_scale else None
    targets_d = targets.to(device)
    units = _units(rows.cpu(), share_forward, max_width=max(1, batch_size // min(steps, 8)))
    pair_unit = torch.arange(len(units.exemplar)).repeat_interleave(steps)
    pair_step = torch.arange(steps).repeat(len(units.exemplar))
    members_d = units.members.to(device)
    grad_scale = FLOAT16_GRAD_SCALE if dtype == "float16" else 1.0
    rows_upto = torch.cat([torch.zeros(1, dtype=torch.long), units.width.cumsum(0)])  # rows of units < u

    with tf32(allow_tf32):
        for sl in _pair_chunks(units, steps, batch_size):
            u, s = pair_unit[sl], pair_step[sl].to(device)
            width = int(units.width[u[0]])
            mem = members_d[u.to(device), :width]                          # [P, T] row ids, -1 = pad
            x = _fetch(inputs, units.exemplar[u], device, channels_last)
            scaled = (x * alphas_t[s].view(-1, *([1] * (x.dim() - 1)))).requires_grad_(True)
            with _autocast(device, dtype):
                out = adapter.pool(upper, adapter.run_from(lower, scaled, upper))
            out = out.float()                                               # [P, C_up]
            cot = torch.zeros(width, *out.shape, device=device)
            cot.scatter_(2, targets_d[mem.clamp(min=0)].T.unsqueeze(-1),
                         (mem >= 0).T.unsqueeze(-1).float() * grad_scale)
            if width == 1:
                (grad,) = torch.autograd.grad(out, scaled, cot[0])
                grad = grad.unsqueeze(0)
            else:
                with warnings.catch_warnings():   # a missing vmap batching rule only costs speed
                    warnings.simplefilter("ignore", UserWarning)
                    (grad,) = torch.autograd.grad(out, scaled, cot, is_grads_batched=True)
            grad = grad.float() if grad_scale == 1.0 else grad.float() / grad_scale
            prod = (x.unsqueeze(0) * grad).flatten(0, 1)                    # [T*P, ...]
            w = weights_t[s].repeat(width).view(-1, 1)
            index = torch.where(mem >= 0, mem, n_rows).T.reshape(-1)       # padding lands in the last row
            acc.index_add_(0, index, adapter.reduce_attribution(lower, prod) * w)
            if mass is not None:
                mass.index_add_(0, index, adapter.reduce_attribution(lower, prod.abs()) * w)
            if progress is not None:
                progress(int(rows_upto[sl.stop // steps]))

        with torch.no_grad(), _autocast(device, dtype):
            zero = adapter.pool(upper, adapter.run_from(lower, torch.zeros_like(sample), upper)).float()[0]
            uniq, inverse = torch.unique(rows.cpu(), return_inverse=True)
            f_x = torch.cat([adapter.pool(upper, adapter.run_from(
                lower, _fetch(inputs, uniq[sl], device, channels_last), upper)).float()
                for sl in _chunks(len(uniq), batch_size)])
            delta = f_x[inverse.to(device), targets_d] - zero[targets_d]
    acc = acc[:n_rows]
    total = acc.sum(1) * _positions(adapter, lower, sample)
    return IGResult(acc.cpu(), delta.cpu(), total.cpu(), steps, None if mass is None else mass[:n_rows].cpu())


def per_neuron_integrated_gradients(
    adapter: ModelAdapter,
    lower: str,
    upper: str,
    inputs: torch.Tensor,
    rows: torch.Tensor,
    targets: torch.Tensor,
    **kwargs: Any,
) -> IGResult:
    """Reference strategy: one IG call per target neuron, over that neuron's exemplars only."""
    parts = []
    progress, done = kwargs.pop("progress", None), 0
    for t in torch.unique(targets, sorted=True):
        idx = torch.nonzero(targets == t).flatten()
        step = None if progress is None else (lambda rows_done, base=done: progress(base + rows_done))
        parts.append((idx, integrated_gradients(adapter, lower, upper, inputs, rows[idx], targets[idx],
                                                progress=step, **kwargs)))
        done += len(idx)
    return IGResult.combine(parts, int(rows.numel()), parts[0][1].steps)


def fast_steps(
    adapter: ModelAdapter,
    lower: str,
    upper: str,
    inputs: torch.Tensor,
    rows: torch.Tensor,
    targets: torch.Tensor,
    *,
    candidate_steps: tuple[int, ...] = (8, 16, 24, 32, 50),
    tolerance: float = 0.01,
    probe_rows: int = 32,
    **kwargs: Any,
) -> tuple[int, IGResult, torch.Tensor]:
    """Fewest Gauss-Legendre steps whose completeness error on a probe of rows is within `tolerance`.

    The probe is an evenly spaced subset of rows; returns the steps, the probe's result and its rows.
    """
    n_rows = int(rows.numel())
    probe = torch.linspace(0, n_rows - 1, min(probe_rows, n_rows)).round().long().unique()
    for steps in candidate_steps:
        res = integrated_gradients(adapter, lower, upper, inputs, rows[probe], targets[probe],
                                   steps=steps, **kwargs)
        if res.completeness_error() <= tolerance:
            break
    return steps, res, probe


def fast_integrated_gradients(
    adapter: ModelAdapter,
    lower: str,
    upper: str,
    inputs: torch.Tensor,
    rows: torch.Tensor,
    targets: torch.Tensor,
    **kwargs: Any,
) -> IGResult:
    """IG of every row with the steps `fast_steps` picks (it takes the same keywords); when the probe
    already is every row, its result is returned as is."""
    steps, res, probe = fast_steps(adapter, lower, upper, inputs, rows, targets, **kwargs)
    if len(probe) == int(rows.numel()):
        return res
    for own in ("candidate_steps", "tolerance", "probe_rows"):
        kwargs.pop(own, None)
    return integrated_gradients(adapter, lower, upper, inputs, rows, targets, steps=steps, **kwargs)
