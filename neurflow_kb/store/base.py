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

import datetime as _dt
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa

from ..artifact import Circuit
from ..errors import UserError
from .checks import check_params, check_rows
from .encoders import circuit_recipes, record_encoders, recorded_encoders
from .graph import (
    DERIVED_RELS,
    MODEL_RELS,
    SHARED_LABELS,
    GraphRows,
    RelKey,
    artifact_labels,
    conform,
    model_key,
    model_rows,
    run_digest,
    runs_rows,
)
from .readonly import refuse_writes, write_clauses
from .schema import schema

__all__ = ["BaseStore", "GraphStore", "KBPart", "WriteResult", "check_params", "refuse_writes",
           "write_clauses"]

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
    def run_keys(self, status: str = "complete") -> list[str]:
        """Keys of the runs with `status` ('complete' or 'writing'), sorted."""
        _, rows = self._read("MATCH (r:Run) WHERE r.status = $s RETURN r.key ORDER BY r.key", {"s": status})
        return [r[0] for r in rows]

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


# -- helpers shared by both stores -------------------------------------------------------------------

def to_frame(columns: list[str], rows: list[list[Any]]) -> pd.DataFrame:
    """Query rows -> DataFrame, built the same way for both stores so that equal rows compare equal."""
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    return pd.DataFrame([list(r) for r in rows], columns=columns)


def columns(df: pd.DataFrame) -> list[list[Any]]:
    """DataFrame -> one list of plain Python values per column (NaN / NA -> None)."""
    data = []
    for c in df.columns:
        s = df[c]
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub":
            vals = s.tolist()
        elif isinstance(s.dtype, np.dtype) and s.dtype.kind == "f":
            vals = s.tolist()
            if s.isna().any():
                vals = [None if v != v else v for v in vals]
        elif isinstance(s.dtype, pd.ArrowDtype | pd.StringDtype):
            vals = pa.array(s.array).to_pylist()                    # missing values come back as None
        elif pd.api.types.infer_dtype(s.to_numpy(), skipna=False) == "string":   # only str: as they are
            vals = s.tolist()
        else:
            vals = [_plain_value(v) for v in s.tolist()]
        data.append(vals)
    return data


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame -> list of dicts of plain Python values (NaN / NA -> None), column by column."""
    cols = list(df.columns)
    return [dict(zip(cols, row, strict=True)) for row in zip(*columns(df), strict=True)]


def tuples(df: pd.DataFrame) -> list[list[Any]]:
    """DataFrame -> list of rows as plain-value lists (a smaller Bolt payload than `records`)."""
    return [list(row) for row in zip(*columns(df), strict=True)]


def _plain_value(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _part_digest(part: Circuit | GraphRows) -> str | None:
    """The tables digest of a run to write (a circuit's, or the one its exported Run row carries)."""
    if isinstance(part, Circuit):
        return run_digest(part)
    run = part.nodes.get("Run")
    if run is None or "digest" not in run or not len(run):
        return None
    d = run["digest"].iloc[0]
    return d if isinstance(d, str) and d else None


def _with_class_names(rows: GraphRows, names: dict[str, str]) -> GraphRows:
    """Model rows whose unnamed classes take the names the runs being written give them."""
    cls = rows.nodes.get("Class")
    if cls is None or not names or not len(cls):
        return rows
    given = cls["key"].map(names)
    cls = cls.assign(name=cls["name"].where(cls["name"].notna(), given))
    return GraphRows(nodes={**rows.nodes, "Class": cls}, rels=rows.rels)


def _part_size(part: Circuit | GraphRows) -> int:
    if isinstance(part, Circuit):
        return len(part.tables["edges"]) + 2 * len(part.tables["nodes"]) + len(part.tables["group_edges"])
    return part.rel_count()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class BaseStore:
    """The write protocol on top of a few backend primitives (`_read`, `_write`, `_insert_nodes`,
    `_insert_rels`, `_delete_run`) that `Neo4jStore` and `LadybugStore` implement."""

    dialect: str = ""
    read_only: bool = False
    #: Circuits per write batch are grouped until about this many relationships.
    batch_relationships: int = 250_000

    def __init__(self) -> None:
        self._known_models: set[tuple[str, int]] = set()

    # backend primitives ------------------------------------------------------------------------
    def _read(self, cypher: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[list[Any]]]:
        raise NotImplementedError

    def _write(self, cypher: str, params: dict[str, Any] | None = None) -> None:
        raise NotImplementedError

    def _insert_nodes(self, label: str, df: pd.DataFrame, merge: bool) -> None:
        raise NotImplementedError

    def _insert_rels(self, key: RelKey, df: pd.DataFrame) -> None:
        raise NotImplementedError

    def _delete_run(self, key: str) -> None:
        raise NotImplementedError

    def open(self) -> BaseStore:
        return self

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.dialect

    def __enter__(self) -> BaseStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_writable(self) -> None:
        if self.read_only:
            raise UserError(f"{self.describe()} is open read-only; open it for writing to change it")

    def init_schema(self) -> None:
        raise NotImplementedError

    # reading -----------------------------------------------------------------------------------
    def run_query(self, cypher: str, params: dict[str, Any] | None = None, *,
                  write: bool = False) -> pd.DataFrame:
        """Run Cypher with parameters and return the rows as a DataFrame (read-only unless `write`)."""
        cols, rows = self._read(cypher, params or {})
        return to_frame(cols, rows)

    def run_status(self, key: str) -> str | None:
        """'complete', 'writing' (a partial or in-progress write) or None (no such run)."""
        _, rows = self._read("MATCH (r:Run) WHERE r.key = $key RETURN r.status", {"key": key})
        return rows[0][0] if rows else None

    def run_keys(self, status: str = "complete") -> list[str]:
        """Keys of the runs with `status` ('complete' or 'writing'), sorted."""
        _, rows = self._read("MATCH (r:Run) WHERE r.status = $s RETURN r.key ORDER BY r.key", {"s": status})
        return [r[0] for r in rows]

    def has_run(self, key: str) -> bool:
        """True when the run `key` is written completely."""
        return self.run_status(key) == "complete"

    def counts(self) -> dict[str, int]:
        """Number of nodes per label and relationships per type (all runs, complete or not)."""
        sch = schema()
        out: dict[str, int] = {}
        for label in sch.nodes:
            out[label] = int(self._read(f"MATCH (n:{label}) RETURN count(n)")[1][0][0])
        for rtype in sch.rels:
            out[rtype] = int(self._read(f"MATCH ()-[e:{rtype}]->() RETURN count(e)")[1][0][0])
        return out

    # writing -----------------------------------------------------------------------------------
    def write_circuit(self, circuit: Circuit, replace: bool = False) -> WriteResult:
        """Write one circuit as a run (no-op if that run is already complete, unless `replace`)."""
        return self.write_circuits([circuit], replace=replace)[0]

    def write_circuits(self, circuits: Iterable[Circuit], replace: bool = False,
                       progress: Callable[[WriteResult], None] | None = None) -> list[WriteResult]:
        """Write many circuits, batched into few bulk writes; one `WriteResult` per circuit."""
        self._check_writable()
        self.init_schema()
        results: list[WriteResult] = []
        batch: list[Circuit] = []
        size = 0
        for c in circuits:
            batch.append(c)
            size += len(c.tables["edges"]) + 2 * len(c.tables["nodes"]) + len(c.tables["group_edges"])
            if size >= self.batch_relationships:
                self.record_encoders(circuit_recipes(batch))
                results += self._write_circuit_batch(batch, replace, progress)
                batch, size = [], 0
        if batch:
            self.record_encoders(circuit_recipes(batch))
            results += self._write_circuit_batch(batch, replace, progress)
        self.link_runs(r.key for r in results if r.status in ("written", "replaced", "recovered"))
        return results

    def link_runs(self, keys: Iterable[str]) -> int:
        """Rewrite the relationships derived from several runs (RESEMBLES, `store.links`) for the run
        pairs involving `keys`: runs just written, replaced or labelled. Returns how many were written."""
        from .links import link_runs

        return link_runs(self, keys)

    def _write_circuit_batch(self, circuits: list[Circuit], replace: bool,
                             progress: Callable[[WriteResult], None] | None) -> list[WriteResult]:
        models: dict[tuple[str, int], Circuit] = {}
        runs: dict[str, Circuit] = {}
        for c in circuits:
            mk = (model_key(c), hash(tuple(c.tables["layers"]["name"])))
            models.setdefault(mk, c)
            runs.setdefault(c.key, c)
        model_parts = [(k, model_rows(c)) for k, c in models.items() if k not in self._known_models]
        labelled = {} if replace else self._label_only(runs)
        run_parts = [(k, c) for k, c in runs.items() if k not in labelled]
        done = {r.key: r for r in self._write_parts(model_parts, run_parts, replace, progress)}
        for r in labelled.values():
            if progress:
                progress(r)
        done.update(labelled)
        return [done[k] for k in runs]

    def _label_only(self, runs: dict[str, Circuit]) -> dict[str, WriteResult]:
        """Complete runs whose artifact carries labels or embeddings the store does not have: write just
        those (a run labelled after it was loaded), leaving the run and its image links in place."""
        keys = [k for k, c in runs.items() if len(c.tables["labels"]) or len(c.tables["group_embeddings"])]
        statuses = self._statuses(keys)
        out: dict[str, WriteResult] = {}
        for key in keys:
            if statuses.get(key) != "complete":
                continue
            labels, emb = artifact_labels(runs[key])
            if not self._labels_differ(key, labels, emb):
                continue
            t0 = time.perf_counter()
            n = self.write_labels(labels, emb)
            out[key] = WriteResult(key, "labelled", len(set(labels["concept_key"])), n,
                                   time.perf_counter() - t0)
        return out

    def _labels_differ(self, run: str, labels: pd.DataFrame, emb: pd.DataFrame) -> bool:
        _, got = self._read("MATCH (g:NeuronGroup) WHERE g.run = $k AND g.embedding IS NOT NULL "
                            "RETURN count(g)", {"k": run})
        if int(got[0][0]) != len(emb):
            return True
        for (voc, enc, method), part in labels.groupby(["vocabulary", "encoder", "method"]):
            _, got = self._read("MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept) WHERE g.run = $k AND "
                                "k.vocabulary = $voc AND l.encoder = $enc AND l.method = $method "
                                "RETURN count(l)", {"k": run, "voc": voc, "enc": enc, "method": method})
            if int(got[0][0]) != len(part):
                return True
        return False

    def _write_parts(self, model_parts: list[tuple[Any, GraphRows]],
                     run_parts: list[tuple[str, Circuit | GraphRows]], replace: bool,
                     progress: Callable[[WriteResult], None] | None,
                     force: set[str] | None = None) -> list[WriteResult]:
        t0 = time.perf_counter()
        parts = dict(run_parts)
        if self.batch_atomic:
            results = self._atomic(lambda: self._write_batch(model_parts, parts, replace, force or set()))
        else:
            for _, rows in model_parts:
                self._ensure_shared(conform(rows))
            results = self._write_runs(parts, replace, force or set())
        self._known_models.update(mk for mk, _ in model_parts)
        dt = time.perf_counter() - t0
        out = []
        for key, _ in run_parts:
            r = results[key]
            r.seconds = dt / max(1, len(run_parts))
            out.append(r)
            if progress:
                progress(r)
        return out

    def _decide(self, keys: list[str], parts: dict[str, Circuit | GraphRows], replace: bool,
                force: set[str]) -> tuple[dict[str, str], dict[str, WriteResult]]:
        """What to do with each run: (actions new / recover / replace, skipped results). A complete run
        whose tables digest differs from the artifact's is refused unless replaced: nothing is written."""
        info = self._run_info(keys)
        actions: dict[str, str] = {}
        skipped: dict[str, WriteResult] = {}
        changed: list[tuple[str, str, str]] = []
        for key in keys:
            status, have = info.get(key, (None, None))
            if status == "complete" and not replace and key not in force:
                want = _part_digest(parts[key]) if have else None
                if have and want and have != want:
                    changed.append((key, have, want))
                else:
                    skipped[key] = WriteResult(key, "skipped")
                continue
            actions[key] = "replace" if status == "complete" else ("recover" if status else "new")
        if changed:
            key, have, want = changed[0]
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise UserError(f"run {key}{more} is already complete in {self.describe()} with other tables "
                            f"(digest {have[:12]}, the artifact's {want[:12]}); nothing was written: pass "
                            "--replace (replace=True) to rewrite it")
        return actions, skipped

    def _write_batch(self, model_parts: list[tuple[Any, GraphRows]], parts: dict[str, Circuit | GraphRows],
                     replace: bool, force: set[str]) -> dict[str, WriteResult]:
        """One batch inside one transaction of a single-writer store: every change that is not a bulk
        COPY (old versions deleted, class names set) comes first, then only COPYs. Ladybug cannot
        recover a transaction that changes rows after a COPY in it (its replay crashes), so this order
        is what keeps a crash at commit recoverable."""
        actions, results = self._decide(list(parts), parts, replace, force)
        rows = self._rows_for(list(actions), parts) if actions else None
        models = [conform(mrows) for _, mrows in model_parts]
        for mrows in models:
            check_rows(mrows, "the model structure to write")
        for key, action in actions.items():
            if action != "new":
                self._delete_run(key)
        names = {} if rows is None else {
            f"{m}/{c}": n for m, c, n in zip(rows.nodes["Run"]["model"], rows.nodes["Run"]["target_class"],
                                             rows.nodes["Run"]["class_name"], strict=True)
            if isinstance(n, str) and n}
        if rows is not None:
            self._name_classes(rows.nodes["Run"])          # classes that exist already
        for mrows in models:
            self._add_shared(_with_class_names(mrows, names))   # and those created now
        if rows is not None:
            done = {k: WriteResult(k, self._STATUS[a]) for k, a in actions.items()}
            self._count_per_run(rows, done)
            run = rows.nodes["Run"].copy()
            run["status"] = "complete"       # the transaction makes the batch visible all at once
            run["written_at"] = [w if isinstance(w, str) else _now() for w in run["written_at"]]
            self._insert_nodes("Run", run, merge=False)
            self._insert_run_parts(rows)
            results.update(done)
        return results

    def _write_runs(self, parts: dict[str, Circuit | GraphRows], replace: bool,
                    force: set[str]) -> dict[str, WriteResult]:
        """Concurrent writers: decide per run, claim, write; runs another writer holds are waited for
        and decided again once it finishes or its claim goes stale."""
        results: dict[str, WriteResult] = {}
        pending = list(parts)
        try:
            while pending:
                actions, skipped = self._decide(pending, parts, replace, force)
                results.update(skipped)
                rows = self._rows_for(list(actions), parts) if actions else None
                claimed, pending = self._claim(actions, rows.nodes["Run"] if rows else None)
                if claimed:
                    if set(claimed) != set(actions):
                        rows = self._rows_for(list(claimed), parts)
                    assert rows is not None
                    results.update(self._write_claimed(claimed, parts, rows))
                if pending:
                    time.sleep(self.claim_poll_seconds)
        finally:
            self._claims_done()
        return results

    def _rows_for(self, keys: list[str], parts: dict[str, Circuit | GraphRows]) -> GraphRows:
        """Graph rows of the runs `keys` (circuits converted together), checked before anything is written."""
        fresh = [p for k in keys if isinstance(p := parts[k], Circuit)]
        given = [p for k in keys if isinstance(p := parts[k], GraphRows)]
        rows = conform(GraphRows.concat(([runs_rows(fresh)] if fresh else []) + given))
        check_rows(rows)
        return rows

    _STATUS: dict[str, Status] = {"new": "written", "recover": "recovered", "replace": "replaced"}

    def _write_claimed(self, claimed: dict[str, str], parts: dict[str, Circuit | GraphRows],
                       rows: GraphRows) -> dict[str, WriteResult]:
        """Write the claimed runs: new ones in bulk while their status hides them, replacements in
        transactions that swap old for new at once."""
        results = {k: WriteResult(k, self._STATUS[a]) for k, a in claimed.items()}
        fresh = [k for k, a in claimed.items() if a != "replace"]
        swaps = [k for k, a in claimed.items() if a == "replace"]
        if fresh:
            part = rows if len(fresh) == len(claimed) else self._rows_for(fresh, parts)
            try:
                for key in fresh:
                    if claimed[key] == "recover":
                        self._clear_run(key)
                self._write_content(part, results)
            except BaseException:
                self._abandon(fresh)
                raise
        for group in self._swap_groups(swaps, parts):
            part = rows if len(group) == len(claimed) else self._rows_for(group, parts)

            def swap(group: list[str] = group, part: GraphRows = part) -> None:
                for key in group:
                    self._clear_run(key)
                self._write_content(part, results)

            try:
                self._atomic(swap)
            except BaseException:
                self._release(group)
                raise
        return results

    def _swap_groups(self, keys: list[str], parts: dict[str, Circuit | GraphRows]) -> list[list[str]]:
        """Runs to replace, grouped into transactions of about `swap_relationships` relationships."""
        groups: list[list[str]] = []
        size = self.swap_relationships
        for key in keys:
            n = _part_size(parts[key])
            if not groups or size + n > self.swap_relationships:
                groups.append([])
                size = 0
            groups[-1].append(key)
            size += n
        return groups

    def _write_content(self, rows: GraphRows, results: dict[str, WriteResult]) -> None:
        """Run nodes (status writing), their groups and relationships, then status complete."""
        self._count_per_run(rows, results)
        run = rows.nodes["Run"].copy()
        run["status"] = "writing"
        run["written_at"] = [w if isinstance(w, str) else _now() for w in run["written_at"]]
        self._put_runs(run)
        self._insert_run_parts(rows)
        self._name_classes(rows.nodes["Run"])
        self._finish_runs(run["key"].tolist())

    def _insert_run_parts(self, rows: GraphRows) -> None:
        """Concepts and images (where missing), groups and every relationship of the runs in `rows`."""
        for label in ("Concept", "Image"):
            if label in rows.nodes and len(rows.nodes[label]):
                self._insert_missing(label, rows.nodes[label])
        if "NeuronGroup" in rows.nodes and len(rows.nodes["NeuronGroup"]):
            self._insert_nodes("NeuronGroup", rows.nodes["NeuronGroup"], merge=False)
        for key, df in rows.rels.items():
            if len(df):
                self._insert_rels(key, df)

    # hooks of the write protocol (the embedded store's defaults; Neo4j claims and swaps) ------------
    #: Write each batch (structure and runs) in one transaction.
    batch_atomic: bool = False
    #: Most relationships swapped in one transaction by `replace` (when batches are not atomic).
    swap_relationships: int = 100_000
    #: How often a writer looks again at runs another writer is writing.
    claim_poll_seconds: float = 0.5

    def _atomic(self, work: Callable[[], Any]) -> Any:
        """Run `work` in one transaction: all of its writes become visible together, or none."""
        return work()

    def _run_info(self, keys: list[str]) -> dict[str, tuple[str, str | None]]:
        """(status, tables digest) of the runs among `keys` that exist."""
        if not keys:
            return {}
        digest = "r.digest" if "digest" in self._columns("Run") else "NULL"
        _, rows = self._read(f"MATCH (r:Run) WHERE r.key IN $keys RETURN r.key, r.status, {digest}",
                             {"keys": keys})
        return {k: (s, d) for k, s, d in rows}

    def _claim(self, actions: dict[str, str], runs: pd.DataFrame | None) -> tuple[dict[str, str], list[str]]:
        """Take the runs `actions` names for this writer (`runs`: their Run rows): (claimed runs with
        their action, runs another writer holds now). A single-writer store holds them all already."""
        return dict(actions), []

    def _claims_done(self) -> None:
        """Stop keeping claims alive (the write is over, done or failed)."""

    def _abandon(self, keys: list[str]) -> None:
        """Remove what a failed write of the new runs `keys` left (a transaction needs nothing)."""

    def _release(self, keys: list[str]) -> None:
        """Give up the claims on `keys` after a failed swap (the old runs stay as they were)."""

    def _clear_run(self, key: str) -> None:
        """Delete a run's old version before its new one is written (in the same transaction)."""
        self._delete_run(key)

    def _put_runs(self, run: pd.DataFrame) -> None:
        """Write the Run nodes (status writing)."""
        self._insert_nodes("Run", run, merge=False)

    def _finish_runs(self, keys: list[str]) -> None:
        """Mark runs complete: from now on queries see them."""
        self._write("MATCH (r:Run) WHERE r.key IN $keys SET r.status = 'complete'", {"keys": keys})

    def _lock_model(self, rows: GraphRows) -> None:
        """Let one writer at a time add to a model's structure (single-writer stores need nothing)."""

    def _columns(self, label: str) -> list[str]:
        """Properties of `label` the store has (the schema's)."""
        return schema().nodes[label].columns

    def _name_classes(self, runs: pd.DataFrame) -> None:
        """Give unnamed Class nodes the class name recorded by their runs."""
        named = {f"{m}/{c}": n for m, c, n in zip(runs["model"], runs["target_class"], runs["class_name"],
                                                  strict=True) if isinstance(n, str) and n}
        if not named:
            return
        _, got = self._read("MATCH (c:Class) WHERE c.key IN $keys RETURN c.key, c.name",
                            {"keys": list(named)})
        for k, name in got:
            if name is None:
                self._write("MATCH (c:Class) WHERE c.key = $k SET c.name = $name", {"k": k, "name": named[k]})

    @staticmethod
    def _count_per_run(rows: GraphRows, results: dict[str, WriteResult]) -> None:
        """Fill in the nodes and relationships each run writes (owner found through its groups)."""
        groups = rows.nodes.get("NeuronGroup")
        owner_of = dict(zip(groups["key"], groups["run"], strict=True)) if groups is not None else {}
        tally: dict[str, list[int]] = {}
        for key in rows.nodes["Run"]["key"]:
            tally.setdefault(key, [0, 0])[0] += 1
        for key, n in (groups["run"].value_counts().items() if groups is not None else []):
            tally.setdefault(key, [0, 0])[0] += int(n)
        for (rtype, src, dst), df in rows.rels.items():
            if not len(df):
                continue
            if rtype == "INFLUENCES":
                owners = df["run"]
            elif src == "Run":
                owners = df["src"]
            elif src == "NeuronGroup":
                owners = df["src"].map(owner_of)
            elif dst == "NeuronGroup":
                owners = df["dst"].map(owner_of)
            else:
                continue
            for key, n in owners.value_counts().items():
                tally.setdefault(key, [0, 0])[1] += int(n)
        for key, (n_nodes, n_rels) in tally.items():
            if key in results:
                results[key].nodes, results[key].relationships = n_nodes, n_rels

    def _statuses(self, keys: list[str]) -> dict[str, str]:
        if not keys:
            return {}
        _, rows = self._read("MATCH (r:Run) WHERE r.key IN $keys RETURN r.key, r.status", {"keys": keys})
        return {k: s for k, s in rows}

    def delete_run(self, key: str) -> None:
        """Remove a run with its groups and relationships (shared model nodes stay)."""
        self._check_writable()
        self._delete_run(key)

    def _insert_missing(self, label: str, df: pd.DataFrame) -> None:
        df = df.drop_duplicates("key")
        _, rows = self._read(f"MATCH (n:{label}) WHERE n.key IN $keys RETURN n.key",
                             {"keys": df["key"].tolist()})
        have = {r[0] for r in rows}
        new = df[~df["key"].isin(have)]
        if len(new):
            self._insert_nodes(label, new, merge=True)

    def _ensure_shared(self, rows: GraphRows) -> None:
        """Create the parts of a model's structure that are missing (nodes, then relationships), in one
        transaction that holds the model's lock: concurrent writers leave exactly one of each."""
        check_rows(rows, "the model structure to write")
        self._atomic(lambda: self._add_shared(rows))

    def _add_shared(self, rows: GraphRows) -> None:
        """Look first, then name existing unnamed classes, then insert what is missing (nodes before
        relationships): changes to existing rows precede every bulk insert of the transaction."""
        self._lock_model(rows)
        mk = rows.nodes["Model"]["key"].iloc[0]
        missing: list[tuple[str, pd.DataFrame]] = []
        for label in SHARED_LABELS:
            df = rows.nodes.get(label)
            if df is None or df.empty:
                continue
            df = df.drop_duplicates("key")
            if label == "Model":
                _, got = self._read("MATCH (n:Model) WHERE n.key = $m RETURN n.key, NULL", {"m": mk})
            elif label == "Class":
                _, got = self._read("MATCH (n:Class) WHERE n.model = $m RETURN n.key, n.name", {"m": mk})
            else:
                _, got = self._read(f"MATCH (n:{label}) WHERE n.model = $m RETURN n.key, NULL", {"m": mk})
            have = {k: v for k, v in got}
            missing.append((label, df[~df["key"].isin(have)]))
            if label == "Class":
                named = df[df["key"].isin(have) & df["name"].notna()]
                for k, name in zip(named["key"], named["name"], strict=True):
                    if have.get(k) is None:
                        self._write("MATCH (c:Class) WHERE c.key = $k SET c.name = $name",
                                    {"k": k, "name": name})
        new_rels: list[tuple[RelKey, pd.DataFrame]] = []
        for key, df in rows.rels.items():
            if key[0] not in MODEL_RELS or df.empty:
                continue
            rtype, src, dst = key
            _, got = self._read(f"MATCH (a:{src})-[:{rtype}]->(b:{dst}) WHERE b.model = $m "
                                "RETURN a.key, b.key", {"m": mk})
            have_pairs = {(a, b) for a, b in got}
            df = df.drop_duplicates(["src", "dst"])
            mask = [(a, b) not in have_pairs for a, b in zip(df["src"], df["dst"], strict=True)]
            new_rels.append((key, df[mask]))
        for label, new in missing:
            if len(new):
                self._insert_nodes(label, new, merge=True)
        for key, new in new_rels:
            if len(new):
                self._insert_rels(key, new)

    # label encoders (`store.encoders`) ------------------------------------------------------------
    def record_encoders(self, recipes: Iterable[dict[str, Any]]) -> int:
        """Record how to load label encoders again (`Encoder` nodes; a known id with other weights is
        refused); returns how many were new."""
        recipes = list(recipes)
        if not recipes:
            return 0
        self._check_writable()
        self.init_schema()
        return record_encoders(self, recipes)

    def encoders(self) -> pd.DataFrame:
        """The recorded encoder recipes (key = encoder id, kind, model, pretrained, checkpoint, digest)."""
        return recorded_encoders(self)

    # labels and image activations (written to complete runs after the fact) ---------------------
    def write_labels(self, labels: pd.DataFrame, embeddings: pd.DataFrame | None = None) -> int:
        """Label groups: `labels` rows (group_key, concept_key, concept, vocabulary, score, rank, method,
        encoder) become Concept nodes and LABELED relationships, replacing the labels those groups had
        from the same vocabulary, encoder and method; `embeddings` rows (group_key, embedding, encoder)
        set NeuronGroup.embedding (stored as float32 on both stores). Returns the LABELED count written."""
        self._check_writable()
        self.init_schema()
        emb = embeddings if embeddings is not None else pd.DataFrame(columns=["group_key", "embedding",
                                                                               "encoder"])
        wanted = sorted(set(labels["group_key"].astype(str)) | set(emb["group_key"].astype(str)))
        if not wanted:
            return 0
        _, got = self._read("MATCH (g:NeuronGroup) WHERE g.key IN $keys RETURN g.key", {"keys": wanted})
        missing = sorted(set(wanted) - {r[0] for r in got})
        if missing:
            raise UserError(f"{len(missing)} groups to label are not in {self.describe()} "
                            f"(e.g. {missing[0]!r}); write their runs first")
        rkey = ("LABELED", "NeuronGroup", "Concept")
        concepts = pd.DataFrame({"key": labels["concept_key"].astype(str),
                                 "text": labels["concept"].astype(str),
                                 "vocabulary": labels["vocabulary"].astype(str)}).drop_duplicates("key")
        rel = pd.DataFrame({"src": labels["group_key"].astype(str), "dst": labels["concept_key"].astype(str),
                            "score": labels["score"].astype(float), "rank": labels["rank"].astype("int64"),
                            "method": labels["method"].astype(str), "encoder": labels["encoder"].astype(str)})
        check_rows(GraphRows(nodes={"Concept": concepts}, rels={rkey: rel}), "the labels to write")
        combos = labels[["vocabulary", "encoder", "method"]].drop_duplicates()
        for voc, enc, method in combos.itertuples(index=False):
            keys = sorted(set(labels[(labels["vocabulary"] == voc) & (labels["encoder"] == enc)
                                     & (labels["method"] == method)]["group_key"].astype(str)))
            self._write("MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept) WHERE g.key IN $keys AND "
                        "k.vocabulary = $voc AND l.encoder = $enc AND l.method = $method DELETE l",
                        {"keys": keys, "voc": voc, "enc": enc, "method": method})
        if len(labels):
            self._insert_missing("Concept", concepts)
            self._insert_rels(rkey, conform(GraphRows(rels={rkey: rel})).rels[rkey])
        for key, vec, enc in zip(emb["group_key"], emb["embedding"], emb["encoder"], strict=True):
            values = np.asarray(vec, dtype=np.float32).astype(float).tolist()
            self._write("MATCH (g:NeuronGroup) WHERE g.key = $k SET g.embedding = $e, "
                        "g.embedding_encoder = $enc", {"k": str(key), "e": values, "enc": str(enc)})
        if len(emb):
            self.link_runs({str(k).split("/", 1)[0] for k in emb["group_key"]})
        return len(labels)

    def write_activations(self, image: dict[str, Any], rels: pd.DataFrame, run: str) -> int:
        """An Image node (key, uri, label, predicted) and its ACTIVATES {score, crop} relationships to
        groups of run `run`, replacing what an earlier write of that image gave the same run."""
        self._check_writable()
        self.init_schema()
        key = str(image["key"])
        rel = pd.DataFrame({"src": key, "dst": rels["dst"].astype(str),
                            "score": rels["score"].astype(float), "crop": rels["crop"].astype("int64")})
        _, have = self._read("MATCH (g:NeuronGroup) WHERE g.run = $run RETURN g.key", {"run": run})
        unknown = sorted(set(rel["dst"]) - {r[0] for r in have})
        if unknown:
            raise UserError(f"{unknown[0]!r} is not a group of run {run!r}; activations go to its own groups")
        node = pd.DataFrame({"key": [key], "uri": [image.get("uri")], "label": [image.get("label")],
                             "predicted": [image.get("predicted")]})
        _, got = self._read("MATCH (i:Image) WHERE i.key = $k RETURN i.key", {"k": key})
        if got:
            self._write("MATCH (i:Image) WHERE i.key = $k SET i.uri = $uri, i.label = $label, "
                        "i.predicted = $predicted", {"k": key, "uri": image.get("uri"),
                                                     "label": image.get("label"),
                                                     "predicted": image.get("predicted")})
        else:
            self._insert_nodes("Image", conform(GraphRows(nodes={"Image": node})).nodes["Image"], merge=True)
        self._write("MATCH (i:Image)-[a:ACTIVATES]->(g:NeuronGroup) WHERE i.key = $k AND g.run = $run "
                    "DELETE a", {"k": key, "run": run})
        if len(rel):
            self._insert_rels(("ACTIVATES", "Image", "NeuronGroup"), rel)
        return len(rel)

    # moving a knowledge base -------------------------------------------------------------------
    def _export_nodes(self, label: str, where: str, params: dict[str, Any],
                      match: str | None = None) -> pd.DataFrame:
        cols = self._columns(label)
        ret = ", ".join(f"n.`{c}` AS `{c}`" for c in cols)
        q = f"{match or f'MATCH (n:{label})'} WHERE {where} RETURN DISTINCT {ret}"
        names, rows = self._read(q, params)
        return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)

    def _export_rels(self, key: RelKey, where: str, params: dict[str, Any]) -> pd.DataFrame:
        rtype, src, dst = key
        props = schema().rels[rtype].columns
        ret = ", ".join(["a.key AS src", "b.key AS dst", *(f"e.`{c}` AS `{c}`" for c in props)])
        q = f"MATCH (a:{src})-[e:{rtype}]->(b:{dst}) WHERE {where} RETURN {ret}"
        _, rows = self._read(q, params)
        cols = ["src", "dst", *props]
        return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)

    def export_model(self, mk: str) -> GraphRows:
        """Structure of one model (Model, Layers, Neurons, Classes and their relationships)."""
        p = {"m": mk}
        rows = GraphRows()
        rows.nodes["Model"] = self._export_nodes("Model", "n.key = $m", p)
        for label in ("Layer", "Neuron", "Class"):
            rows.nodes[label] = self._export_nodes(label, "n.model = $m", p)
        rows.rels[("HAS_LAYER", "Model", "Layer")] = self._export_rels(("HAS_LAYER", "Model", "Layer"),
                                                                       "a.key = $m", p)
        rows.rels[("HAS_NEURON", "Layer", "Neuron")] = self._export_rels(
            ("HAS_NEURON", "Layer", "Neuron"), "b.model = $m", p)
        rows.rels[("HAS_CLASS", "Model", "Class")] = self._export_rels(("HAS_CLASS", "Model", "Class"),
                                                                       "a.key = $m", p)
        rows.rels[("UNIT", "Class", "Neuron")] = self._export_rels(("UNIT", "Class", "Neuron"),
                                                                   "a.model = $m", p)
        return rows

    def export_run(self, rk: str) -> GraphRows:
        """One run with everything it owns: groups, memberships, influences, drives, labels, images."""
        p = {"k": rk}
        rows = GraphRows()
        rows.nodes["Run"] = self._export_nodes("Run", "n.key = $k", p)
        rows.nodes["NeuronGroup"] = self._export_nodes("NeuronGroup", "n.run = $k", p)
        rows.nodes["Concept"] = self._export_nodes(
            "Concept", "g.run = $k", p, match="MATCH (g:NeuronGroup)-[:LABELED]->(n:Concept)")
        rows.nodes["Image"] = self._export_nodes(
            "Image", "g.run = $k", p, match="MATCH (n:Image)-[:ACTIVATES]->(g:NeuronGroup)")
        where = {"EXPLAINS": "a.key = $k", "HAS_GROUP": "a.key = $k", "AT_LAYER": "a.run = $k",
                 "MEMBER_OF": "b.run = $k", "INFLUENCES": "e.run = $k", "DRIVES": "a.run = $k",
                 "LABELED": "a.run = $k", "ACTIVATES": "b.run = $k"}
        for rtype, rel in schema().rels.items():
            if rtype in MODEL_RELS or rtype in DERIVED_RELS:
                continue
            for src, dst in rel.pairs:
                rows.rels[(rtype, src, dst)] = self._export_rels((rtype, src, dst), where[rtype], p)
        return rows

    def _run_signature(self, rk: str) -> tuple[int, ...]:
        _, a = self._read("MATCH (g:NeuronGroup) WHERE g.run = $k RETURN count(g)", {"k": rk})
        _, b = self._read("MATCH (g:NeuronGroup)-[e:LABELED]->(:Concept) WHERE g.run = $k RETURN count(e)",
                          {"k": rk})
        _, c = self._read("MATCH (:Image)-[e:ACTIVATES]->(g:NeuronGroup) WHERE g.run = $k RETURN count(e)",
                          {"k": rk})
        return (int(a[0][0]), int(b[0][0]), int(c[0][0]))

    def export(self) -> Iterator[KBPart]:
        """Every model's structure, then every complete run, as `KBPart`s (for `import_` / push)."""
        _, models = self._read("MATCH (m:Model) RETURN m.key ORDER BY m.key")
        for (mk,) in models:
            yield KBPart("model", mk, self.export_model(mk))
        encoders = self.encoders()
        if len(encoders):
            yield KBPart("encoders", "", GraphRows(nodes={"Encoder": encoders}))
        for rk in self.run_keys():
            rows = self.export_run(rk)
            yield KBPart("run", rk, rows, self._run_signature(rk))

    def import_(self, parts: Iterable[KBPart], replace: bool = False,
                progress: Callable[[WriteResult], None] | None = None) -> list[WriteResult]:
        """Write parts exported by another store; complete runs already here with the same groups,
        labels and image links are skipped, so pushing twice changes nothing."""
        self._check_writable()
        self.init_schema()
        results: list[WriteResult] = []
        pending: list[tuple[str, GraphRows]] = []
        force: set[str] = set()
        size = 0

        def flush() -> None:
            nonlocal pending, size, force
            if pending:
                results.extend(self._write_parts([], pending, replace, progress, force))
            pending, size, force = [], 0, set()

        for part in parts:
            if part.kind == "model":
                flush()
                self._ensure_shared(conform(part.rows))
                continue
            if part.kind == "encoders":
                self.record_encoders(records(part.rows.nodes["Encoder"]))
                continue
            sig = part.signature
            if sig is not None and self.run_status(part.key) == "complete" and \
                    self._run_signature(part.key) != tuple(sig):
                force.add(part.key)
            pending.append((part.key, part.rows))
            size += part.rows.rel_count()
            if size >= self.batch_relationships:
                flush()
        flush()
        self.link_runs(r.key for r in results if r.status in ("written", "replaced", "recovered"))
        return results
