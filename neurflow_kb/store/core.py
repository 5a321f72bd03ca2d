"""`StoreCore`: what every store does on top of its backend primitives (`_read`, `_write`,
`_insert_nodes`, `_insert_rels`, `_delete_run`): opening, the read-only guard, schema set-up, user
queries, reading, counting, and the one table of what a store's failures say (`Fault`)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd

from ..errors import StoreError, UserError
from .checks import check_params
from .convert import to_frame
from .graph import RelKey
from .protocol import Status
from .readonly import HINT
from .schema import schema, schema_statements

if TYPE_CHECKING:
    from typing_extensions import Self


class Fault(enum.Enum):
    """What went wrong, as a backend classifies its native error (`StoreCore._classify`), with the
    exception type and the one-line message for it: every store failure is worded here, once. Fields:
    {store} the store as `describe()` says it, {where} its file or server (no credentials), {engine}
    Ladybug/Neo4j, {user}, {database}, {detail} the backend's own words; a few kinds take more."""

    NO_SCHEMA = (StoreError, "{where} has no knowledge-base schema yet; run `neurflow-kb init` or load "
                             "circuits into it")
    READ_ONLY = (UserError, "{store} is open read-only; open it for writing to change it")
    WRITES = (UserError, "the query writes to the knowledge base; " + HINT)
    REJECTED = (UserError, "{engine} rejected the query: {detail}")
    BAD_PARAMS = (UserError, "{engine} cannot take the query parameters: {detail}")
    BAD_URI = (UserError, "cannot use {engine} URI {where!r}: {detail}")
    UNREACHABLE = (StoreError, "cannot reach {store}: is the server running and the URI right? "
                               "(--neo4j URI or NEO4J_URI)")
    AUTH = (StoreError, "{store} rejected user {user!r}: wrong user name or password "
                        "(set --user/--password or NEO4J_USER/NEO4J_PASSWORD)")
    FORBIDDEN = (StoreError, "{store} refused access for user {user!r}: {detail}")
    NO_DATABASE = (StoreError, "{where} has no database {database!r}; create it or pick another with "
                               "--database / NEO4J_DATABASE")
    FAILED = (StoreError, "{store} failed: {detail}")
    CANNOT_OPEN = (StoreError, "cannot open {where}: {detail}")
    #: {doing}: what failed ("open", "write to")
    NO_SPACE = (StoreError, "cannot {doing} {where}: {detail}; nothing of this batch was kept (what was "
                            "written before it is intact), free disk space and run it again")
    #: {runs}: how many runs the failed batch was replacing
    NO_SPACE_REPLACING = (StoreError, "writing to {where} failed ({detail}) while replacing {runs} run(s): "
                                      "their old versions are gone and the new ones were not kept; free "
                                      "disk space and load them again")
    #: {detail}: " (the reason)" or a note of the free space, or ""
    CHECKPOINT_STUCK = (StoreError, "{where} has an unfinished checkpoint that cannot be completed{detail}; "
                                    "free disk space and run the command again")
    #: {holder}: " (process PID: command)" or ""
    IN_USE = (StoreError, "{where} is in use by another writer{holder}; wait for it to finish or use "
                          "another --store")
    #: {holder} as for IN_USE, {seconds}: how long the reader waited
    BUSY = (StoreError, "{where} stayed busy with a writer's checkpoint{holder} for {seconds:.0f}s; "
                        "try again")

    def error(self, **facts: Any) -> UserError:
        """The exception for this fault, its message filled in from `facts`."""
        cls, template = self.value
        return cls(template.format(**facts))


class StoreCore:
    """Backend primitives (implemented by `Neo4jStore` and `LadybugStore`) and what is built on them alone."""

    dialect: str = ""
    read_only: bool = False
    batch_relationships: int = 250_000
    _STATUS: dict[str, Status] = {"new": "written", "recover": "recovered", "replace": "replaced"}
    batch_atomic: bool = False
    swap_relationships: int = 100_000
    claim_poll_seconds: float = 0.5

    #: The engine's name in messages ("Ladybug rejected the query: ...").
    engine: str = ""

    def __init__(self) -> None:
        self._known_models: set[tuple[str, int]] = set()
        self._schema_done = False

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

    def open(self) -> Self:
        return self

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.dialect

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # failures ----------------------------------------------------------------------------------
    def _facts(self) -> dict[str, Any]:
        """What this store's failure messages may name (`Fault`); never a credential."""
        return {"store": self.describe(), "where": self.describe(), "engine": self.engine}

    def _fail(self, fault: Fault, detail: str = "", **facts: Any) -> UserError:
        """The one-line error for `fault` on this store, with the backend's `detail`."""
        return fault.error(**{**self._facts(), "detail": detail, **facts})

    def _classify(self, error: BaseException, *, query: bool = False) -> tuple[Fault, str] | None:
        """The fault a native error of this backend is, with its detail (one line), or None for an
        error that is not the user's or the environment's (a bug: it propagates). `query`: the error
        came from running the user's own Cypher (`run_query`), so what the engine says about it is the
        user's to fix."""
        return None

    def _raise_classified(self, error: BaseException, *, query: bool = False) -> NoReturn:
        """Raise `error` as its one-line fault if `_classify` knows it, else as it is."""
        fault = self._classify(error, query=query)
        if fault is None:
            raise error
        raise self._fail(*fault) from None

    def _check_writable(self) -> None:
        if self.read_only:
            raise self._fail(Fault.READ_ONLY)

    # schema ------------------------------------------------------------------------------------
    def init_schema(self) -> None:
        """Create the knowledge-base schema (`cypher/schema*.cypher` of this dialect); idempotent, also
        when several writers do it at once, and cheap after the first call on a handle."""
        if self._schema_done:
            return
        self._check_writable()
        for stmt in schema_statements(self.dialect):
            self._schema_statement(stmt)
        self._after_schema()
        self._schema_done = True

    def _schema_statement(self, stmt: str) -> None:
        """Run one schema statement, tolerating a rule or table that already exists."""
        raise NotImplementedError

    def _after_schema(self) -> None:
        """Bring a store made by an earlier version up to the schema (e.g. add missing columns)."""

    # reading -----------------------------------------------------------------------------------
    def run_query(self, cypher: str, params: dict[str, Any] | None = None, *,
                  write: bool = False) -> pd.DataFrame:
        """Run Cypher with parameters and return the rows as a DataFrame. Read-only unless `write`:
        vetted first and run read-only, refused if it writes, reads files, calls procedures that reach
        outside the database or changes settings (docs/security.md); the engine's complaints about the
        query come back as one line."""
        params = dict(params or {})
        check_params(params)
        cypher = self._user_cypher(cypher)
        if write:
            self._check_writable()
        try:
            if not write:
                self._vet(cypher, params)
            cols, rows = self._execute_user(cypher, params, write)
        except Exception as e:  # noqa: BLE001 - the backend classifies; what it does not know propagates
            self._raise_classified(e, query=True)
        return to_frame(cols, rows)

    def _user_cypher(self, cypher: str) -> str:
        """The user's Cypher as this engine needs it written."""
        return cypher

    def _vet(self, cypher: str, params: dict[str, Any]) -> None:
        """Raise `readonly.refusal(...)` unless `cypher` only reads this knowledge base."""
        raise NotImplementedError

    def _execute_user(self, cypher: str, params: dict[str, Any],
                      write: bool) -> tuple[list[str], list[list[Any]]]:
        """Run the user's (vetted, when not `write`) Cypher: column names and rows of plain values."""
        raise NotImplementedError

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

    def link_runs(self, keys: Iterable[str]) -> int:
        """Rewrite the relationships derived from several runs (RESEMBLES, `store.links`) for the run
        pairs involving `keys`: runs just written, replaced or labelled. Returns how many were written."""
        from .links import link_runs

        return link_runs(self, keys)

    def _atomic(self, work: Callable[[], Any]) -> Any:
        """Run `work` in one transaction: all of its writes become visible together, or none."""
        return work()

    def _columns(self, label: str) -> list[str]:
        """Properties of `label` the store has (the schema's)."""
        return schema().nodes[label].columns

    def _insert_missing(self, label: str, df: pd.DataFrame) -> None:
        df = df.drop_duplicates("key")
        _, rows = self._read(f"MATCH (n:{label}) WHERE n.key IN $keys RETURN n.key",
                             {"keys": df["key"].tolist()})
        have = {r[0] for r in rows}
        new = df[~df["key"].isin(have)]
        if len(new):
            self._insert_nodes(label, new, merge=True)


__all__ = ["Fault", "StoreCore"]
