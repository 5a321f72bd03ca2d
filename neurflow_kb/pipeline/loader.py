"""The single loader: finished circuit artifacts -> the knowledge base, in batches, each run once.

Workers (Ray actors, shards, the local loop) only save artifacts; the loader reads each finished one back,
checks it holds the run key the plan expected (a retried or duplicated class has the same key, so it is
written once; an artifact overwritten by another ingest is refused) and writes a batch with one
`write_circuits` call, which skips runs that are already complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifact import Circuit
from ..errors import UserError

if TYPE_CHECKING:
    from .run import ClassResult


def find_artifacts(paths: Iterable[str | Path]) -> list[Path]:
    """Circuit artifact folders named by `paths`: a folder holding ``manifest.json`` is one artifact;
    any other folder (an ingest's ``--artifacts`` root, a shard's output) is searched for them, skipping
    hidden and ``_``-prefixed folders (the prediction cache, saves in progress). Sorted, no repeats."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            raise UserError(f"{p} is not a folder; pass circuit artifact folders or the --artifacts folder "
                            "of an ingest")
        if (p / "manifest.json").is_file():
            out.append(p)
            continue
        found: list[Path] = []
        for here, dirs, files in os.walk(p):
            if "manifest.json" in files:
                found.append(Path(here))
                dirs[:] = []
                continue
            dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        if not found:
            raise UserError(f"{p} holds no circuit artifact (no manifest.json in it or its subfolders); "
                            "pass folders written by `neurflow-kb ingest --artifacts` or "
                            "`neurflow-kb circuit --out`")
        out.extend(sorted(found))
    return list(dict.fromkeys(out))


@dataclass
class Loader:
    """Writes finished classes to `store` (None: artifacts only) in batches; keeps its own counts (classes
    written or found complete, seconds spent reading artifacts and writing, of which reading) for the
    loading rate."""

    store: Any = None
    replace: bool = False
    seconds: float = 0.0
    read_seconds: float = 0.0
    classes: int = 0
    relationships: int = 0
    batches: int = 0
    keys: set[str] = field(default_factory=set)

    def load(self, items: Sequence[tuple[ClassResult, Circuit | None]]) -> None:
        """Write every saved class of `items` (result, circuit or None to read its artifact); updates each
        result's status and relationship count in place; a class whose artifact cannot be read or holds
        another run becomes `failed` with one line. The time counted is reading plus writing."""
        t0 = time.perf_counter()
        try:
            self._load(items)
        finally:
            self.seconds += time.perf_counter() - t0

    def _load(self, items: Sequence[tuple[ClassResult, Circuit | None]]) -> None:
        if self.store is None:   # artifacts only: nothing to read back
            return
        todo: list[tuple[ClassResult, Circuit]] = []
        t0 = time.perf_counter()
        for result, circuit in items:
            if result.status in ("failed", "no_images"):
                continue
            try:
                circuit = circuit if circuit is not None else Circuit.load(result.artifact)  # type: ignore[arg-type]
            except UserError as e:
                result.status, result.message = "failed", f"its artifact cannot be read: {e}"
                continue
            if circuit.key != result.key:
                result.status, result.message = "failed", (
                    f"the artifact at {result.artifact} holds run {circuit.key}, not the planned "
                    f"{result.key} (another ingest wrote it meanwhile?); run the ingest again")
                continue
            todo.append((result, circuit))
        self.read_seconds += time.perf_counter() - t0
        if not todo:
            return
        written = {w.key: w for w in self.store.write_circuits([c for _, c in todo], replace=self.replace)}
        self.batches += 1
        for result, circuit in todo:
            w = written[circuit.key]
            result.status, result.relationships = w.status, w.relationships
            self.relationships += w.relationships
            if circuit.key not in self.keys:
                self.keys.add(circuit.key)
                self.classes += 1

    def rate(self) -> float:
        """Classes per second of loading time so far (0 before the first write)."""
        return self.classes / self.seconds if self.seconds else 0.0


__all__ = ["Loader", "find_artifacts"]
