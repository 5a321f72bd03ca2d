"""NeurFlow itself: exemplars, batched Integrated Gradients, core neurons, sub-concepts, groups, circuit."""

from .certify import Attribution, Certification, certify_transition, ranks_certain
from .clustering import Clustering, ward_silhouette
from .groups import build_groups
from .ig import (
    IGResult,
    fast_integrated_gradients,
    gauss_legendre,
    integrated_gradients,
    per_neuron_integrated_gradients,
)
from .neurflow import ENGINE_PACKAGES, NeurFlow, package_versions, seed_everything, top_indices

__all__ = ["ENGINE_PACKAGES", "package_versions", "Attribution", "Certification", "Clustering", "IGResult",
           "NeurFlow", "build_groups", "certify_transition", "fast_integrated_gradients", "gauss_legendre",
           "ranks_certain", "integrated_gradients", "per_neuron_integrated_gradients", "seed_everything",
           "top_indices", "ward_silhouette"]
