"""Integrated Gradients from layer L-1 to pooled neurons of layer L, batched over (exemplar, target) rows.

IG_m(x; n) = reduce_positions( X_m * sum_i w_i * d pool(B(a_i X))_n / d X_m ), zero baseline,
Gauss-Legendre nodes a_i and weights w_i on [0, 1] (Captum's ``gausslegendre``). Attributions are
reduced over positions inside every batch, so no [rows, steps, C, H, W] tensor is ever kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

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
    """Attributions [R, C_lower], and per row f(x) - f(0) and sum(IG) * positions (completeness check)."""

    attributions: torch.Tensor
    delta: torch.Tensor
    total: torch.Tensor
    steps: int

    def completeness_error(self) -> float:
        """Aggregate relative completeness error sum|total - delta| / sum|delta|."""
        denom = float(self.delta.abs().sum())
        if denom == 0.0:
            return 0.0
        return float((self.total - self.delta).abs().sum()) / denom


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
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
) -> IGResult:
    """IG of every row (``inputs[rows[r]]``, target neuron ``targets[r]``) in shared batches.

    `inputs` holds full lower-layer maps of the distinct exemplars (kept on the CPU or the device);
    rows index into it, so an exemplar shared by several targets is stored once. Work is split into
    chunks of `batch_size` (row, step) pairs; each chunk is one forward and one backward.
    """
    device = torch.device(device)
    n_rows = int(rows.numel())
    alphas, weights = gauss_legendre(steps)
    alphas_t = torch.tensor(alphas, dtype=torch.float32, device=device)
    weights_t = torch.tensor(weights, dtype=torch.float32, device=device)
    sample = inputs[:1].to(device)
    n_channels = adapter.reduce_attribution(lower, sample).shape[1]
    acc = torch.zeros(n_rows, n_channels, dtype=torch.float32, device=device)
    rows_d, targets_d = rows.to(device), targets.to(device)

    pair_row = torch.arange(n_rows, device=device).repeat_interleave(steps)
    pair_step = torch.arange(steps, device=device).repeat(n_rows)
    for sl in _chunks(pair_row.numel(), batch_size):
        r, s = pair_row[sl], pair_step[sl]
        x = inputs[rows_d[r].to(inputs.device)].to(device, torch.float32)
        scale = alphas_t[s].view(-1, *([1] * (x.dim() - 1)))
        scaled = (x * scale).requires_grad_(True)
        with _autocast(device, dtype):
            value = pooled_target(adapter, lower, upper, scaled, targets_d[r])
        (grad,) = torch.autograd.grad(value.float().sum(), scaled)
        contrib = adapter.reduce_attribution(lower, x * grad.float()) * weights_t[s].view(-1, 1)
        acc.index_add_(0, r, contrib)

    with torch.no_grad():
        delta = torch.empty(n_rows, device=device)
        for sl in _chunks(n_rows, batch_size):
            x = inputs[rows_d[sl].to(inputs.device)].to(device, torch.float32)
            with _autocast(device, dtype):
                f_x = pooled_target(adapter, lower, upper, x, targets_d[sl]).float()
                f_0 = pooled_target(adapter, lower, upper, torch.zeros_like(x), targets_d[sl]).float()
            delta[sl] = f_x - f_0
    total = acc.sum(1) * _positions(adapter, lower, sample)
    return IGResult(acc.cpu(), delta.cpu(), total.cpu(), steps)


def per_neuron_integrated_gradients(
    adapter: ModelAdapter,
    lower: str,
    upper: str,
    inputs: torch.Tensor,
    rows: torch.Tensor,
    targets: torch.Tensor,
    **kwargs,
) -> IGResult:
    """Reference strategy: one IG call per target neuron, over that neuron's exemplars only."""
    n_rows = int(rows.numel())
    parts: list[tuple[torch.Tensor, IGResult]] = []
    for t in torch.unique(targets, sorted=True):
        idx = torch.nonzero(targets == t).flatten()
        parts.append((idx, integrated_gradients(adapter, lower, upper, inputs, rows[idx], targets[idx],
                                                **kwargs)))
    first = parts[0][1]
    attr = torch.zeros(n_rows, first.attributions.shape[1])
    delta, total = torch.zeros(n_rows), torch.zeros(n_rows)
    for idx, res in parts:
        attr[idx], delta[idx], total[idx] = res.attributions, res.delta, res.total
    return IGResult(attr, delta, total, first.steps)


def fast_integrated_gradients(
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
    **kwargs,
) -> IGResult:
    """Fewest Gauss-Legendre steps whose completeness error on a probe of rows is within `tolerance`.

    The probe is an evenly spaced subset of rows; the chosen rule is then applied to every row (when the
    probe already is every row, its result is returned as is).
    """
    n_rows = int(rows.numel())
    probe = torch.linspace(0, n_rows - 1, min(probe_rows, n_rows)).round().long().unique()
    whole = len(probe) == n_rows
    for steps in candidate_steps:
        res = integrated_gradients(adapter, lower, upper, inputs, rows[probe], targets[probe],
                                   steps=steps, **kwargs)
        if res.completeness_error() <= tolerance:
            break
    if whole:
        return res
    return integrated_gradients(adapter, lower, upper, inputs, rows, targets, steps=steps, **kwargs)
