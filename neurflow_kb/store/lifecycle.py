"""The run lifecycle both stores share: a run is claimed, written with status "writing", then marked
"complete"; rewrites are idempotent (same digest), refused (different digest) or atomic swaps (`replace`);
a model's shared structure is written once under a lock."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from ..artifact import Circuit
from ..errors import UserError
from .annotations import LabelWriter
from .checks import check_rows
from .encoders import circuit_recipes
from .graph import (
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
from .protocol import WriteResult


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



class RunWriter(LabelWriter):
    """Writing circuits as runs (`write_circuits`) and deleting them, through the claim hooks each store
    implements (`_claim`, `_release`, `_finish_runs`, ...)."""

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
                     run_parts: Sequence[tuple[str, Circuit | GraphRows]], replace: bool,
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
        key: Any                                  # run keys (text) read from the rows' columns
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


__all__ = ["RunWriter"]
