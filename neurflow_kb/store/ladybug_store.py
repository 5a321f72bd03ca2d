"""`LadybugStore`: the embedded default knowledge base, one Ladybug file, bulk `COPY ... FROM` Arrow
tables. Readers open it `read_only=True` and may do so while one writer holds it."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import StoreError, UserError
from .base import BaseStore, refuse_writes, to_frame
from .graph import RelKey
from .schema import schema, schema_statements

DEFAULT_STORE = "neurflow-kb.lbug"

_ARROW = {"STRING": pa.string(), "INT64": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
          "FLOAT": pa.float32(), "STRING[]": pa.list_(pa.string()), "FLOAT[]": pa.list_(pa.float32()),
          "DOUBLE[]": pa.list_(pa.float64()), "INT64[]": pa.list_(pa.int64())}


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
            vals = [None if v is None or (isinstance(v, float) and v != v) else list(v) for v in s.tolist()]
            arrays.append(pa.array(vals, type=t))
        else:
            arrays.append(pa.Array.from_pandas(s, type=t))
    return pa.Table.from_arrays(arrays, names=[n for n, _ in columns])


class LadybugStore(BaseStore):
    """A knowledge base in one embedded Ladybug file (no server to start)."""

    dialect = "ladybug"
    #: COPY into a growing relationship table costs more per call than per row: write big batches.
    batch_relationships = 4_000_000

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
        self._schema_done = False

    def describe(self) -> str:
        return f"knowledge base {self.path}"

    def __repr__(self) -> str:
        return f"LadybugStore({str(self.path)!r}, read_only={self.read_only})"

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
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                self._db = ladybug.Database(str(self.path), read_only=self.read_only,
                                            buffer_pool_size=self.buffer_pool_size)
                break
            except RuntimeError as e:
                msg = str(e)
                if self.read_only and "recovery is pending" in msg:
                    self._finish_recovery()
                elif "lock" not in msg.lower():
                    raise StoreError(f"cannot open {self.path}: {msg.splitlines()[0]}") from None
                if time.monotonic() > deadline:
                    pid = re.search(r"PID (\d+)", msg)
                    who = f" (process {pid.group(1)})" if pid else ""
                    if self.read_only:
                        raise StoreError(f"{self.path} stayed busy with a writer's checkpoint{who} for "
                                         f"{self.lock_timeout:.0f}s; try again") from None
                    raise StoreError(f"{self.path} is in use by another writer{who}; wait for it to finish "
                                     "or use another --store") from None
                time.sleep(0.1)
        self._conn = ladybug.Connection(self._db)
        return self

    def _finish_recovery(self) -> None:
        """A crashed writer left a checkpoint to replay: replay it if no other writer holds the file."""
        import ladybug

        try:
            db = ladybug.Database(str(self.path), buffer_pool_size=64 << 20)
        except RuntimeError:
            return
        db.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._db is not None:
            self._db.close()
            self._db = None

    # primitives -----------------------------------------------------------------------------------
    def _exec(self, cypher: str, params: dict[str, Any] | None = None) -> Any:
        if self._conn is None:
            self.open()
        return self._conn.execute(cypher, params or {})

    def _no_schema(self, msg: str) -> bool:
        return "does not exist" in msg and ("Table" in msg or "table" in msg) and not self._has_schema()

    def _has_schema(self) -> bool:
        res = self._exec("CALL show_tables() RETURN name")
        return "Run" in {r[0] for r in res.get_all()}

    def _read(self, cypher: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[list[Any]]]:
        try:
            res = self._exec(cypher, params)
        except RuntimeError as e:
            if self._no_schema(str(e)):
                raise StoreError(f"{self.path} has no knowledge-base schema yet; run `neurflow-kb init` or "
                                 "load circuits into it") from None
            raise
        return list(res.get_column_names()), res.get_all()

    def _write(self, cypher: str, params: dict[str, Any] | None = None) -> None:
        self._check_writable()
        self._exec(cypher, params)

    def run_query(self, cypher: str, params: dict[str, Any] | None = None, *,
                  write: bool = False) -> pd.DataFrame:
        """Run Cypher with parameters; without `write` a query containing write clauses is refused."""
        if write:
            self._check_writable()
        else:
            refuse_writes(cypher)
        try:
            res = self._exec(cypher, params)
        except RuntimeError as e:
            msg = str(e).strip().splitlines()[0]
            if self._no_schema(msg):
                raise StoreError(f"{self.path} has no knowledge-base schema yet; run `neurflow-kb init` or "
                                 "load circuits into it") from None
            if "read-only" in msg.lower() or "read only" in msg.lower():
                raise UserError("the query writes to the knowledge base; it runs read-only unless you "
                                "pass --write") from None
            raise UserError(f"Ladybug rejected the query: {msg}") from None
        if isinstance(res, list):
            res = res[-1]
        cols = list(res.get_column_names())
        return to_frame(cols, [[_plain(v) for v in row] for row in res.get_all()])

    def init_schema(self) -> None:
        """Create the node and relationship tables of `cypher/schema.ladybug.cypher` (idempotent)."""
        if self._schema_done:
            return
        self._check_writable()
        for stmt in schema_statements("ladybug"):
            self._exec(stmt)
        self._schema_done = True

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
        p = {"k": key}
        self._exec("MATCH ()-[e:INFLUENCES]->() WHERE e.run = $k DELETE e", p)
        self._exec("MATCH (g:NeuronGroup) WHERE g.run = $k DETACH DELETE g", p)
        self._exec("MATCH (r:Run) WHERE r.key = $k DETACH DELETE r", p)
