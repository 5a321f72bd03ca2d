"""`LadybugStore`: the embedded default knowledge base, one Ladybug file, bulk `COPY ... FROM` Arrow
tables. One writer at a time holds the file; readers open it `read_only=True`, also while it writes.

Each batch of runs is written in one transaction, so readers see a batch completely or not at all, a
crash or a full disk leaves nothing of it, and `--replace` swaps runs without a moment where they are
missing. Read queries run on a read-only handle, checked first (see `readonly.py`).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa

from ..errors import StoreError, UserError
from ..values import is_missing
from .base import BaseStore
from .core import Fault
from .graph import RelKey
from .readonly import ladybug_plan_refusal, ladybug_refusal, refusal, statement_texts, strip_explain, tokens
from .schema import schema

DEFAULT_STORE = "neurflow-kb.lbug"
log = logging.getLogger(__name__)

_ARROW = {"STRING": pa.string(), "INT64": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
          "FLOAT": pa.float32(), "STRING[]": pa.list_(pa.string()), "FLOAT[]": pa.list_(pa.float32()),
          "DOUBLE[]": pa.list_(pa.float64()), "INT64[]": pa.list_(pa.int64())}

# Errors of a reader that met a writer mid-way (its WAL half-written, a checkpoint under way, the file
# lock taken for a moment): opening again a little later succeeds. Errors about the query are not.
_TRANSIENT = ("reading past the end", "checksum", "lock", "recovery is pending", "wal")
_QUERY_ERRORS = re.compile(r"\s*(binder|parser|catalog|conversion|overflow|interrupt|runtime exception: "
                           r"(?:divide|overflow))", re.I)
# Errors of a full disk (or a file-size limit): nothing more can be written until space is freed.
_NO_SPACE = ("no space left", "file too large", "disk quota", "cannot write to file")
_COMMITTED = "committed successfully"

T = TypeVar("T")


#: Writes after which the writer's connection is renewed before its next statement (`_renew_connection`).
_WRITES_PER_CONNECTION = 32


def _plain(v: Any) -> Any:
    """Ladybug values -> plain Python (nodes / relationships become property dicts without ids)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items() if k not in ("_id", "_src", "_dst")}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _arrow_table(columns: list[tuple[str, str]], df: pd.DataFrame) -> pa.Table:
    arrays = []
    for name, typ in columns:
        s = df[name]
        t = _ARROW[typ]
        if pa.types.is_list(t):
            vals = [None if is_missing(v) else list(v) for v in s.tolist()]
            arrays.append(pa.array(vals, type=t))
        else:
            arrays.append(pa.Array.from_pandas(s, type=t))
    return pa.Table.from_arrays(arrays, names=[n for n, _ in columns])


def _first_line(msg: str) -> str:
    return msg.strip().splitlines()[0] if msg.strip() else msg


def _transient(msg: str) -> bool:
    """Whether an engine error is a writer's passing state rather than a fault of the query or file."""
    return not _QUERY_ERRORS.match(msg) and any(k in msg.lower() for k in _TRANSIENT)


def _no_space(msg: str) -> str | None:
    """The OS's reason when `msg` says a write failed for lack of space, else None."""
    low = msg.lower()
    if not any(k in low for k in _NO_SPACE):
        return None
    m = re.search(r"Error: ([^.\n]+)\s*$", msg.strip())
    return m.group(1).strip() if m else _first_line(msg)


def _holder(msg: str) -> str:
    """' (process PID: command)' for the lock holder a Ladybug lock error names, or ''."""
    m = re.search(r"PID (\d+)", msg)
    if not m:
        return ""
    pid = m.group(1)
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        words = [Path(a.decode(errors="replace")).name if i < 2 else a.decode(errors="replace")
                 for i, a in enumerate(argv) if a]
        cmd = " ".join(words)
        cmd = cmd if len(cmd) <= 80 else cmd[:77] + "..."
        return f" (process {pid}: {cmd})" if cmd else f" (process {pid})"
    except OSError:
        return f" (process {pid})"


#: Property names Ladybug reserves as keywords that the schema uses: written `n.index` they fail to parse
#: there (Neo4j takes them plain), so raw Cypher gets them backticked (docs/schema.md, dialects).
RESERVED_PROPERTIES = frozenset({"INDEX"})


def quote_reserved_properties(cypher: str) -> str:
    """`n.index` -> n.`index` outside strings and comments, so the same Cypher runs on both stores."""
    try:
        toks = tokens(cypher)
    except UserError:
        return cypher                   # unreadable text: Ladybug (or the read-only vetting) says why
    out, last = [], 0
    for prev, t in zip(toks, toks[1:], strict=False):
        if t.kind == "word" and t.upper in RESERVED_PROPERTIES and prev.kind == "op" and prev.text == "." \
                and prev.end == t.pos:
            out += [cypher[last:t.pos], f"`{t.text}`"]
            last = t.end
    return "".join(out) + cypher[last:] if out else cypher


class LadybugStore(BaseStore):
    """A knowledge base in one embedded Ladybug file (no server to start)."""

    dialect = "ladybug"
    engine = "Ladybug"
    #: COPY into a growing relationship table costs more per call than per row: write big batches.
    batch_relationships = 4_000_000
    #: One transaction per batch: readers see all of it or nothing, `replace` swaps without a gap.
    batch_atomic = True

    def __init__(self, path: str | Path = DEFAULT_STORE, read_only: bool = False,
                 buffer_pool_size: int = 2 << 30, lock_timeout: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.read_only = read_only
        self.buffer_pool_size = buffer_pool_size
        # readers wait out a writer's checkpoint (long for big batches); writers give up sooner
        self.lock_timeout = lock_timeout if lock_timeout is not None else (60.0 if read_only else 5.0)
        self._db: Any = None
        self._conn: Any = None
        self._in_tx = False
        self._replaced_in_tx = 0
        self._writes_on_conn = 0
        # a writable store answers read queries from a read-only handle, reopened after each write
        self._ro: tuple[Any, Any] | None = None
        self._generation = 0
        self._ro_generation = -1
        self._verdicts: dict[str, str | None] = {}
        self._table_functions: frozenset[str] | None = None

    def describe(self) -> str:
        return f"knowledge base {self.path}"

    def __repr__(self) -> str:
        return f"LadybugStore({str(self.path)!r}, read_only={self.read_only})"

    def _facts(self) -> dict[str, Any]:
        return {**super()._facts(), "where": str(self.path)}

    # connection -----------------------------------------------------------------------------------
    def open(self) -> LadybugStore:
        """Open the file (created for writers; readers need it to exist), waiting out a checkpoint."""
        if self._conn is not None:
            return self
        import ladybug

        if self.read_only and not self.path.exists():
            raise StoreError(f"no knowledge base at {self.path}: create one with `neurflow-kb init` or "
                             "`neurflow-kb load`, or point --store at an existing file")
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a knowledge-base file; pass --store FILE.lbug")
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open_database(self.read_only)
        self._conn = ladybug.Connection(self._db)
        return self

    def _open_database(self, read_only: bool) -> Any:
        """A `ladybug.Database` on the file, retrying while a writer holds it or is mid-write."""
        import ladybug

        deadline = time.monotonic() + self.lock_timeout
        recovered = False
        while True:
            try:
                return ladybug.Database(str(self.path), read_only=read_only,
                                        buffer_pool_size=self.buffer_pool_size)
            except RuntimeError as e:
                msg = str(e)
                self._raise_no_space(msg, "open")
                if read_only and "recovery is pending" in msg:
                    if self._finish_recovery():
                        if recovered:        # replayed, yet still pending: it cannot be finished
                            raise self._fail(Fault.CHECKPOINT_STUCK, self._space_hint()) from None
                        recovered = True
                elif not _transient(msg):
                    raise self._fail(Fault.CANNOT_OPEN, _first_line(msg)) from None
                if time.monotonic() > deadline:
                    who = _holder(msg)
                    if read_only:
                        raise self._fail(Fault.BUSY, holder=who, seconds=self.lock_timeout) from None
                    raise self._fail(Fault.IN_USE, holder=who) from None
                time.sleep(0.1)

    def _finish_recovery(self) -> bool:
        """A crashed writer left a checkpoint to replay: replay it (True) unless another writer holds the
        file (False: that writer does it); a replay that fails for lack of space is reported at once."""
        import ladybug

        try:
            db = ladybug.Database(str(self.path), buffer_pool_size=64 << 20)
        except RuntimeError as e:
            msg = str(e)
            if "lock" in msg.lower():
                return False
            reason = _no_space(msg) or _first_line(msg)
            raise self._fail(Fault.CHECKPOINT_STUCK, f" ({reason})") from None
        db.close()
        return True

    def _space_hint(self) -> str:
        free = shutil.disk_usage(self.path.resolve().parent).free
        return f" (its disk has {free / 2**20:.0f} MB free)" if free < 256 << 20 else ""

    def close(self) -> None:
        self._close_reader()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def _close_reader(self) -> None:
        if self._ro is not None:
            conn, db = self._ro
            conn.close()
            db.close()
            self._ro = None

    def _reader(self) -> Any:
        """The connection read queries run on: this store's own if it is read-only, else a read-only
        handle on the same file opened after the last write (a read-only handle sees the file as it
        was when opened)."""
        import ladybug

        if self._conn is None:
            self.open()
        if self.read_only:
            return self._conn
        if self._ro is None or self._ro_generation != self._generation:
            self._close_reader()
            db = self._open_database(read_only=True)
            self._ro = (ladybug.Connection(db), db)
            self._ro_generation = self._generation
        return self._ro[0]

    def _reopen_reader(self) -> None:
        """Open the read-only handle afresh (after a transient error of a reader)."""
        if self.read_only:
            self.close()
            self.open()
        else:
            self._close_reader()

    # primitives -----------------------------------------------------------------------------------
    def _raise_no_space(self, msg: str, doing: str) -> None:
        reason = _no_space(msg)
        if reason is None:
            return
        if _COMMITTED in msg and self._replaced_in_tx:
            # Ladybug logs deletes but not bulk COPYs: the deletes stay, the new versions are lost
            raise self._fail(Fault.NO_SPACE_REPLACING, reason, runs=self._replaced_in_tx) from None
        raise self._fail(Fault.NO_SPACE, reason, doing=doing) from None

    def _exec(self, cypher: str, params: dict[str, Any] | None = None, write: bool = True) -> Any:
        if self._conn is None:
            self.open()
        if self._writes_on_conn >= _WRITES_PER_CONNECTION and not self._in_tx:
            self._renew_connection()
        log.debug("cypher (%s): %s params=%s", "write" if write else "read", cypher, sorted(params or {}))
        try:
            res = self._conn.execute(cypher, params or {})
        except RuntimeError as e:
            self._raise_no_space(str(e), "write to")
            raise
        if write:
            self._generation += 1
            self._writes_on_conn += 1
        return res

    def _renew_connection(self) -> None:
        """Replace the writer's connection by a fresh one (outside transactions): Ladybug keeps every
        statement prepared on a connection, with the memory of its bound tables, in the buffer pool until
        the connection closes — one connection for many batches fills a 2 GiB pool after about 70. Done
        before a statement, never after one, so no result still being read is closed."""
        import ladybug

        if self._conn is None or self._in_tx:
            return
        self._conn.close()
        self._conn = ladybug.Connection(self._db)
        self._writes_on_conn = 0

    def _retrying(self, call: Callable[[Any], T]) -> T:
        """`call(reader connection)`, again on a fresh handle while a writer leaves the file briefly
        unreadable (a half-written WAL): readers wait it out instead of failing."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return call(self._reader())
            except RuntimeError as e:
                if not _transient(str(e)) or time.monotonic() > deadline:
                    raise
            self._reopen_reader()
            time.sleep(0.05)

    def _no_schema(self, msg: str) -> bool:
        """Whether an engine error about a missing table means the file has no schema at all."""
        if not ("does not exist" in msg and ("Table" in msg or "table" in msg)):
            return False
        res = self._conn.execute("CALL show_tables() RETURN name")
        return "Run" not in {r[0] for r in res.get_all()}

    def _classify(self, error: BaseException, *, query: bool = False) -> tuple[Fault, str] | None:
        """Engine errors (`RuntimeError`): a file without schema; for the user's query also a write
        refused by a read-only handle and anything else the engine says against the query."""
        if not isinstance(error, RuntimeError):
            return None
        msg = _first_line(str(error))
        if self._no_schema(str(error)):
            return Fault.NO_SCHEMA, ""
        if not query:
            return None
        if "read-only" in msg.lower() or "read only" in msg.lower():
            return Fault.WRITES, ""
        return Fault.REJECTED, msg

    def _read(self, cypher: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[list[Any]]]:
        def run(conn: Any) -> Any:
            log.debug("cypher (read-only): %s params=%s", cypher, sorted(params or {}))
            return conn.execute(cypher, params or {})

        try:
            # a writer reads its own (uncommitted) writes; a read-only store reads through retries
            res = self._exec(cypher, params, write=False) if not self.read_only else self._retrying(run)
        except RuntimeError as e:
            self._raise_classified(e)
        return list(res.get_column_names()), res.get_all()

    def _write(self, cypher: str, params: dict[str, Any] | None = None) -> None:
        self._check_writable()
        self._exec(cypher, params)

    def _atomic(self, work: Callable[[], T]) -> T:
        """Run `work` in one transaction (or in the one already open): all of it is visible, or none."""
        if self._in_tx:
            return work()
        self._check_writable()
        self._exec("BEGIN TRANSACTION")
        self._in_tx = True
        self._replaced_in_tx = 0
        try:
            out = work()
        except BaseException:
            self._in_tx = False
            try:
                self._conn.execute("ROLLBACK")
            except RuntimeError:
                pass  # the failed statement may have ended the transaction already
            raise
        try:
            self._exec("COMMIT")
        finally:
            self._in_tx = False
        self._writes_on_conn = _WRITES_PER_CONNECTION  # the next statement starts a fresh connection
        return out

    # read queries ---------------------------------------------------------------------------------
    def _functions(self, conn: Any) -> frozenset[str]:
        """Names of the engine's table functions (some read files; the check refuses all but a few)."""
        if self._table_functions is None:
            rows = conn.execute("CALL show_functions() RETURN name, type").get_all()
            self._table_functions = frozenset(str(n).upper() for n, t in rows
                                              if "TABLE" in str(t) or "COPY" in str(t))
        return self._table_functions

    def _user_cypher(self, cypher: str) -> str:
        return quote_reserved_properties(cypher)

    def _vet(self, cypher: str, params: dict[str, Any]) -> None:
        """Refuse a read query that writes, reads host files, calls table functions other than the
        catalogue ones, changes settings or manages the database: first from its tokens (before the
        engine sees it: binding a file-reading function already reads the file, some crash the process),
        then from the plan Ladybug makes of each statement (on the reader handle, through retries)."""
        if cypher not in self._verdicts:
            self._verdicts[cypher] = self._retrying(lambda conn: self._verdict(cypher, params, conn))
        reason = self._verdicts[cypher]
        if reason:
            raise refusal(reason)

    def _verdict(self, cypher: str, params: dict[str, Any], conn: Any) -> str | None:
        reason = ladybug_refusal(cypher, self._functions(conn))
        if reason is not None:
            return reason
        for stmt in statement_texts(cypher):
            body = strip_explain(tokens(stmt))
            if not body:
                return "has nothing to run"
            res = conn.execute("EXPLAIN " + stmt[body[0].pos:], params)
            reason = ladybug_plan_refusal(str(res.get_all()[0][0]))
            if reason:
                return reason
        return None

    def _execute_user(self, cypher: str, params: dict[str, Any],
                      write: bool) -> tuple[list[str], list[list[Any]]]:
        """A write runs on the writer's connection; a read on the read-only handle, through retries."""
        def run(conn: Any) -> Any:
            log.debug("cypher (user, read): %s params=%s", cypher, sorted(params))
            return conn.execute(cypher, params)

        res = self._exec(cypher, params) if write else self._retrying(run)
        if isinstance(res, list):
            res = res[-1]
        return list(res.get_column_names()), [[_plain(v) for v in row] for row in res.get_all()]

    # writing --------------------------------------------------------------------------------------
    def _schema_statement(self, stmt: str) -> None:
        self._exec(stmt)                # `CREATE ... IF NOT EXISTS`: an existing table is no error

    def _after_schema(self) -> None:
        """Add the columns that files made by earlier versions lack."""
        for label, table in schema().nodes.items():
            have = {r[1] for r in self._exec(f"CALL table_info('{label}') RETURN *", write=False).get_all()}
            for name, typ in table.props:
                if name not in have:
                    self._exec(f"ALTER TABLE {label} ADD `{name}` {typ}")

    def _columns(self, label: str) -> list[str]:
        """Properties of `label` this file has (a file of an earlier version may lack newer ones)."""
        have = {r[1] for r in self._read(f"CALL table_info('{label}') RETURN *")[1]}
        return [c for c in schema().nodes[label].columns if c in have]

    def _insert_nodes(self, label: str, df: pd.DataFrame, merge: bool) -> None:
        df = df.drop_duplicates("key")
        table = _arrow_table(list(schema().nodes[label].props), df.reset_index(drop=True))
        self._exec(f"COPY {label} FROM $df", {"df": table})

    def _insert_rels(self, key: RelKey, df: pd.DataFrame) -> None:
        rtype, src, dst = key
        rel = schema().rels[rtype]
        cols = [("src", "STRING"), ("dst", "STRING"), *rel.props]
        table = _arrow_table(cols, df.reset_index(drop=True))
        opts = f" (from='{src}', to='{dst}')" if len(rel.pairs) > 1 else ""
        self._exec(f"COPY {rtype} FROM $df{opts}", {"df": table})

    def _delete_run(self, key: str) -> None:
        if self._in_tx:
            self._replaced_in_tx += 1
        p = {"k": key}
        self._exec("MATCH ()-[e:INFLUENCES]->() WHERE e.run = $k DELETE e", p)
        self._exec("MATCH (g:NeuronGroup) WHERE g.run = $k DETACH DELETE g", p)
        self._exec("MATCH (r:Run) WHERE r.key = $k DETACH DELETE r", p)
