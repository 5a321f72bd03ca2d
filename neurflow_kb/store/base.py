"""The `GraphStore` interface and the write protocol both stores share.

A run is written as: Run node with status "writing" -> groups and relationships -> status "complete".
Queries only look at complete runs, so a crash part-way leaves nothing visible. Writing a complete run
again is a no-op (idempotent) when its tables' digest matches, refused when it differs (unless
`replace`); `replace` swaps a run atomically, the new one complete before the old one goes. Writers of
one store may run concurrently: each run is claimed first (Neo4j: a writer token and a lease on the Run
node; Ladybug: the file's single-writer lock), a live claim is waited for, a stale one taken over, and a
model's shared structure is written once under a lock. See docs/architecture.md and docs/security.md.
"""

from __future__ import annotations

from .checks import check_params
from .convert import columns, records, to_frame, tuples
from .protocol import GraphStore, KBPart, Status, WriteResult
from .readonly import refuse_writes, write_clauses
from .transfer import Transfer


class BaseStore(Transfer):
    """One store: backend primitives and the read-only guard (`core.StoreCore`), labels and activations
    (`annotations.LabelWriter`), the run lifecycle (`lifecycle.RunWriter`) and export/import
    (`transfer.Transfer`), each in its own module; `Neo4jStore` and `LadybugStore` implement the
    primitives and the lifecycle hooks."""


__all__ = ["BaseStore", "GraphStore", "KBPart", "Status", "WriteResult", "check_params", "columns", "records",
           "refuse_writes", "to_frame", "tuples", "write_clauses"]
