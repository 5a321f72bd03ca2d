"""Distributed ingest, the compute side: Ray actors that each hold a model and pull jobs (`ActorPool`),
and static shards for schedulers without Ray (`shard_classes`). Workers return plain values and write
only artifacts; this room never imports the store (the pipeline's driver is the single loader).

Ray is optional (`pip install 'neurflow-kb[cluster]'`) and imported only when a pool starts.
"""

from .ray_pool import INSTALL_HINT, ActorPool, Outcome, RayCluster, RayOptions, require_ray
from .shards import parse_shard, shard_classes

__all__ = ["INSTALL_HINT", "ActorPool", "Outcome", "RayCluster", "RayOptions", "parse_shard", "require_ray",
           "shard_classes"]
