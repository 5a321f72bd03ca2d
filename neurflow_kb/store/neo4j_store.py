"""`Neo4jStore`: the knowledge base in Neo4j 5 through the official driver (`execute_query`, managed
transactions, UNWIND batches of about 10k rows). Credentials are never printed or logged."""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from ..errors import StoreError, UserError
from .base import BaseStore, records, to_frame, tuples
from .graph import RelKey
from .schema import schema, schema_statements

# the driver logs transaction retries as warnings; a library should not print them on stderr
logging.getLogger("neo4j").addHandler(logging.NullHandler())

SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")


def is_neo4j_uri(text: str) -> bool:
    """True when `text` looks like a Neo4j connection URI (neo4j://, bolt://, neo4j+s://, ...)."""
    return "://" in text and text.split("://", 1)[0].lower() in SCHEMES


def safe_uri(uri: str) -> str:
    """The URI without any user:password@ part, fit to print."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _plain(v: Any) -> Any:
    """Driver values -> plain Python (nodes and relationships become property dicts)."""
    from neo4j.graph import Node, Path, Relationship

    if isinstance(v, Node | Relationship):
        return {k: _plain(x) for k, x in dict(v).items()}
    if isinstance(v, Path):
        return [_plain(n) for n in v.nodes]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if hasattr(v, "iso_format"):
        return v.iso_format()
    return v


class _Rows(list):
    """A parameter list with a short repr: the driver formats every RUN's parameters for its debug log
    even when nothing logs, which cost about 7% of a bulk write."""

    def __repr__(self) -> str:
        return f"<{len(self)} rows>"


class Neo4jStore(BaseStore):
    """A knowledge base on a Neo4j server (or Aura / a cluster via neo4j+s:// and a database name)."""

    dialect = "neo4j"

    def __init__(self, uri: str | None = None, user: str | None = None, password: str | None = None,
                 database: str | None = None, read_only: bool = False, batch_size: int = 10_000) -> None:
        super().__init__()
        uri = uri or os.environ.get("NEO4J_URI")
        if not uri:
            raise UserError("no Neo4j URI: pass --neo4j URI or set NEO4J_URI (e.g. neo4j://localhost:7687)")
        if not is_neo4j_uri(uri):
            raise UserError(f"{safe_uri(uri)!r} is not a Neo4j URI; use one of "
                            f"{', '.join(s + '://' for s in SCHEMES)}")
        parts = urlsplit(uri)
        url_user, url_password = parts.username, parts.password
        self.uri = safe_uri(uri) if (url_user or url_password) else uri
        self.user = (user or url_user or os.environ.get("NEO4J_USER") or os.environ.get("NEO4J_USERNAME")
                     or "neo4j")
        self._password = password if password is not None else (
            url_password if url_password is not None else os.environ.get("NEO4J_PASSWORD"))
        self.database = database or os.environ.get("NEO4J_DATABASE") or None
        self.read_only = read_only
        self.batch_size = batch_size
        self._driver: Any = None
        self._schema_done = False

    def describe(self) -> str:
        db = f" database {self.database!r}" if self.database else ""
        return f"Neo4j at {safe_uri(self.uri)}{db}"

    def __repr__(self) -> str:
        return f"Neo4jStore({safe_uri(self.uri)!r}, user={self.user!r}, database={self.database!r})"

    # connection -----------------------------------------------------------------------------------
    def open(self) -> Neo4jStore:
        """Connect and check server, credentials and database with one trivial query."""
        if self._driver is not None:
            return self
        import neo4j

        auth = (self.user, self._password) if self._password is not None else None
        try:
            self._driver = neo4j.GraphDatabase.driver(self.uri, auth=auth, connection_timeout=10.0,
                                                      max_transaction_retry_time=15.0,
                                                      notifications_min_severity="OFF")
        except (ValueError, neo4j.exceptions.ConfigurationError) as e:
            msg = str(e).splitlines()[0].replace(self.uri, safe_uri(self.uri))
            if self._password:
                msg = msg.replace(self._password, "***")
            raise UserError(f"cannot use Neo4j URI {safe_uri(self.uri)!r}: {msg}") from None
        try:
            self._guard(self._driver.verify_connectivity)
            self._execute("RETURN 1", {}, write=False)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    def _run(self, cypher: str, params: dict[str, Any], write: bool) -> Any:
        """One managed transaction; the driver's own result (records hold driver values)."""
        import neo4j

        if self._driver is None:
            self.open()
        routing = neo4j.RoutingControl.WRITE if write else neo4j.RoutingControl.READ
        return self._guard(self._driver.execute_query, cypher, params, database_=self.database,
                           routing_=routing)

    def _execute(self, cypher: str, params: dict[str, Any], write: bool) -> tuple[list[str], list[list[Any]]]:
        res = self._run(cypher, params, write)
        return list(res.keys), [[_plain(v) for v in r.values()] for r in res.records]

    def _guard(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Call the driver, turning its errors into one-line `StoreError` / `UserError`s (no secrets)."""
        from neo4j import exceptions as ex

        try:
            return fn(*args, **kw)
        except ex.AuthError:
            raise StoreError(f"{self.describe()} rejected user {self.user!r}: wrong user name or password "
                             "(set --user/--password or NEO4J_USER/NEO4J_PASSWORD)") from None
        except (ex.ServiceUnavailable, ex.SessionExpired, OSError):
            raise StoreError(f"cannot reach {self.describe()}: is the server running and the URI right? "
                             "(--neo4j URI or NEO4J_URI)") from None
        except ex.ClientError as e:
            code = e.code or ""
            msg = (e.message or str(e)).strip().splitlines()[0]
            if code.endswith("DatabaseNotFound"):
                raise StoreError(f"{safe_uri(self.uri)} has no database {self.database!r}; create it or pick "
                                 "another with --database / NEO4J_DATABASE") from None
            if code.endswith("Statement.AccessMode") or "read access mode" in msg:
                raise UserError("the query writes to the knowledge base; it runs read-only unless you "
                                "pass --write") from None
            if code.startswith("Neo.ClientError.Security"):
                raise StoreError(f"{self.describe()} refused access for user {self.user!r}: {msg}") from None
            raise UserError(f"Neo4j rejected the query: {msg}") from None
        except ex.Neo4jError as e:
            msg = (e.message or str(e)).strip().splitlines()[0]
            raise StoreError(f"{self.describe()} failed: {msg}") from None

    # primitives -----------------------------------------------------------------------------------
    def _read(self, cypher: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[list[Any]]]:
        return self._execute(cypher, params or {}, write=not self.read_only)

    def _write(self, cypher: str, params: dict[str, Any] | None = None) -> None:
        self._check_writable()
        self._execute(cypher, params or {}, write=True)

    def run_query(self, cypher: str, params: dict[str, Any] | None = None, *,
                  write: bool = False) -> pd.DataFrame:
        """Run Cypher with parameters in a READ transaction (WRITE only when `write`)."""
        if write:
            self._check_writable()
        cols, rows = self._execute(cypher, params or {}, write=write)
        return to_frame(cols, rows)

    def init_schema(self) -> None:
        """Create the constraints and indexes of `cypher/schema.cypher` (idempotent)."""
        if self._schema_done:
            return
        self._check_writable()
        for stmt in schema_statements("neo4j"):
            self._execute(stmt, {}, write=True)
        self._schema_done = True

    def _batches(self, rows: list[Any]) -> list[_Rows]:
        return [_Rows(rows[i:i + self.batch_size]) for i in range(0, len(rows), self.batch_size)]

    def _insert_nodes(self, label: str, df: pd.DataFrame, merge: bool) -> None:
        if merge:
            q = f"UNWIND $rows AS r MERGE (n:{label} {{key: r.key}}) ON CREATE SET n = r"
        else:
            q = f"UNWIND $rows AS r CREATE (n:{label}) SET n = r"
        for batch in self._batches(records(df)):
            self._execute(q, {"rows": batch}, write=True)

    def _element_ids(self, label: str, keys: pd.Series) -> pd.Series:
        """Each key's node `elementId` (NaN where no `label` node has it): one indexed lookup per distinct
        key, so the write below seeks nodes by id instead of looking up every row's key again."""
        distinct = pd.unique(keys)
        found: dict[str, str] = {}
        q = (f"UNWIND $keys AS k MATCH (n:{label} {{key: k}}) "
             "RETURN collect(k) AS keys, collect(elementId(n)) AS ids")
        for start in range(0, len(distinct), self.batch_size):
            part = _Rows(str(k) for k in distinct[start:start + self.batch_size])
            record = self._run(q, {"keys": part}, write=True).records[0]
            found.update(zip(record["keys"], record["ids"], strict=True))
        return keys.map(found)

    def _insert_rels(self, key: RelKey, df: pd.DataFrame) -> None:
        """CREATE relationships between existing nodes; rows whose endpoints are missing create nothing.

        Endpoints are resolved to element ids first (per call, never cached: ids of deleted nodes can be
        reused), rows travel as lists, not maps."""
        rtype, src, dst = key
        props = schema().rels[rtype].columns
        a, b = self._element_ids(src, df["src"]), self._element_ids(dst, df["dst"])
        ok = (a.notna() & b.notna()).to_numpy()
        body = pd.concat([a[ok].rename("a"), b[ok].rename("b"), df.loc[ok, props]], axis=1)
        assign = ", ".join(f"`{p}`: r[{i + 2}]" for i, p in enumerate(props))
        q = (f"UNWIND $rows AS r MATCH (a) WHERE elementId(a) = r[0] MATCH (b) WHERE elementId(b) = r[1] "
             f"CREATE (a)-[:{rtype} {{{assign}}}]->(b)")
        for batch in self._batches(tuples(body)):
            self._execute(q, {"rows": batch}, write=True)

    def _delete_run(self, key: str) -> None:
        p = {"k": key}
        while self._execute("MATCH ()-[e:INFLUENCES]->() WHERE e.run = $k WITH e LIMIT 10000 DELETE e "
                            "RETURN count(*)", p, write=True)[1][0][0]:
            pass
        while self._execute("MATCH (g:NeuronGroup) WHERE g.run = $k WITH g LIMIT 2000 DETACH DELETE g "
                            "RETURN count(*)", p, write=True)[1][0][0]:
            pass
        self._execute("MATCH (r:Run) WHERE r.key = $k DETACH DELETE r", p, write=True)
