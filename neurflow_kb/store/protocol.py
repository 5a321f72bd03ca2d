"""What a knowledge-base store is to its users: the `GraphStore` protocol and the records its writes
return (`WriteResult`) and its exports yield (`KBPart`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import pandas as pd

from ..artifact import Circuit
from .graph import GraphRows

Status = Literal["written", "skipped", "replaced", "recovered", "labelled"]


@dataclass
class WriteResult:
    """What writing one run did: `status` is written, skipped (already complete), replaced
    (`replace=True`), recovered (a leftover partial run was deleted and rewritten) or labelled (the run
    was complete and the artifact brought labels the store lacked; only they were written)."""

    key: str
    status: Status
    nodes: int = 0
    relationships: int = 0
    seconds: float = 0.0


@dataclass
class KBPart:
    """A piece of a knowledge base for `push`: one model's structure, the encoder recipes, or one run
    with everything it owns."""

    kind: Literal["model", "encoders", "run"]
    key: str
    rows: GraphRows
    #: (groups, LABELED, ACTIVATES) counts of a run at the source, to notice labels added later
    signature: tuple[int, ...] | None = None


@runtime_checkable
class GraphStore(Protocol):
    """A knowledge-base backend (Neo4j or embedded Ladybug); use as a context manager."""

    dialect: str
    read_only: bool

    def open(self) -> GraphStore: ...
    def close(self) -> None: ...
    def __enter__(self) -> GraphStore: ...
    def __exit__(self, *exc: object) -> None: ...
    def describe(self) -> str: ...
    def init_schema(self) -> None: ...
    def write_circuit(self, circuit: Circuit, replace: bool = False) -> WriteResult: ...
    def write_circuits(self, circuits: Iterable[Circuit], replace: bool = False,
                       progress: Callable[[WriteResult], None] | None = None) -> list[WriteResult]: ...
    def run_query(self, cypher: str, params: dict[str, Any] | None = None, *,
                  write: bool = False) -> pd.DataFrame: ...
    def run_status(self, key: str) -> str | None: ...
    def run_keys(self, status: str = "complete") -> list[str]: ...
    def has_run(self, key: str) -> bool: ...
    def delete_run(self, key: str) -> None: ...
    def counts(self) -> dict[str, int]: ...
    def write_labels(self, labels: pd.DataFrame, embeddings: pd.DataFrame | None = None) -> int: ...
    def record_encoders(self, recipes: Iterable[dict[str, Any]]) -> int: ...
    def encoders(self) -> pd.DataFrame: ...
    def link_runs(self, keys: Iterable[str]) -> int: ...
    def write_activations(self, image: dict[str, Any], rels: pd.DataFrame, run: str) -> int: ...
    def export(self) -> Iterator[KBPart]: ...
    def import_(self, parts: Iterable[KBPart], replace: bool = False) -> list[WriteResult]: ...



__all__ = ["GraphStore", "KBPart", "Status", "WriteResult"]
