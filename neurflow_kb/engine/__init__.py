"""NeurFlow itself: exemplars, batched Integrated Gradients, core neurons, sub-concepts, groups, circuit."""

from .clustering import Clustering, ward_silhouette
from .groups import build_groups
from .ig import (
    IGResult,
    fast_integrated_gradients,
    gauss_legendre,
    integrated_gradients,
    per_neuron_integrated_gradients,
)
from .neurflow import NeurFlow, seed_everything, top_indices

__all__ = [
    "Clustering", "IGResult", "NeurFlow", "build_groups", "fast_integrated_gradients", "gauss_legendre",
    "integrated_gradients", "per_neuron_integrated_gradients", "seed_everything", "top_indices",
    "ward_silhouette",
]
