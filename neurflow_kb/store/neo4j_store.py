"""`Neo4jStore`: the knowledge base in Neo4j 5 through the official driver (`execute_query`, managed
transactions, UNWIND batches of about 10k rows). Credentials are never printed or logged.

Several writers may share one database: a run is claimed by creating its Run node under the key's
uniqueness constraint with a writer token and a lease the writer keeps renewing; others wait for a live
claim and take over a stale one. A model's structure is written in one transaction holding the Model
node's lock. Read queries run in READ transactions and are checked against their plan first.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from ..errors import StoreError, UserError
from .base import BaseStore, records, tuples
from .core import Fault
from .graph import GraphRows, RelKey
from .readonly import neo4j_plan_refusal, neo4j_text_refusal, refusal, strip_explain, tokens
from .schema import schema

# the driver logs transaction retries as warnings; a library should not print them on stderr
logging.getLogger("neo4j").addHandler(logging.NullHandler())
log = logging.getLogger(__name__)

SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")


def is_neo4j_uri(text: str) -> bool:
    """True when `text` looks like a Neo4j connection URI (neo4j://, bolt://, neo4j+s://, ...)."""
    return "://" in text and text.split("://", 1)[0].lower() in SCHEMES


def safe_uri(uri: str) -> str:
    """The URI without any user:password@ part, fit to print (a malformed one is shortened)."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        scheme, _, rest = uri.partition("://")
        return f"{scheme}://{rest.rsplit('@', 1)[-1][:60]}"


def check_uri(uri: str) -> None:
    """Raise `UserError` (one line) unless `uri` is a well-formed Neo4j URI: a known scheme, a host, a
    port between 1 and 65535 if given, nothing after the host but an optional routing query."""
    if not is_neo4j_uri(uri):
        raise UserError(f"{safe_uri(uri)!r} is not a Neo4j URI; use one of "
                        f"{', '.join(s + '://' for s in SCHEMES)} followed by host[:port]")
    try:
        parts = urlsplit(uri)
        port = parts.port
        host = parts.hostname
    except ValueError as e:
        raise UserError(f"Neo4j URI {safe_uri(uri)!r} is malformed ({e}); write it as "
                        "bolt://host:7687") from None
    if not host:
        raise UserError(f"Neo4j URI {safe_uri(uri)!r} names no host; write it as bolt://host:7687")
    if port == 0:
        raise UserError(f"Neo4j URI {safe_uri(uri)!r} has port 0; the default Bolt port is 7687")
    if parts.path not in ("", "/") or parts.fragment:
        raise UserError(f"Neo4j URI {safe_uri(uri)!r} has a path; pick the database with --database "
                        "(or NEO4J_DATABASE) instead")
    if any(ord(c) < 33 for c in uri):
        raise UserError("the Neo4j URI contains spaces or control characters; write it as bolt://host:7687")


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
    engine = "Neo4j"
    #: How long a claim on a run lasts without renewal (NEURFLOW_KB_LEASE_SECONDS); the writer renews
    #: it every quarter of this, and a crashed writer's runs are taken over this long after it died.
    lease_seconds: float = 30.0

    def __init__(self, uri: str | None = None, user: str | None = None, password: str | None = None,
                 database: str | None = None, read_only: bool = False, batch_size: int = 10_000) -> None:
        super().__init__()
        uri = uri or os.environ.get("NEO4J_URI")
        if not uri:
            raise UserError("no Neo4j URI: pass --neo4j URI or set NEO4J_URI (e.g. neo4j://localhost:7687)")
        check_uri(uri)
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
        self._tx: Any = None                      # the explicit transaction `_atomic` runs in, if any
        self._token = uuid.uuid4().hex            # this writer's claim token
        self._claims: set[str] = set()            # runs this writer holds
        self._lost: set[str] = set()              # claims the heartbeat found taken over
        self._heartbeat: threading.Thread | None = None
        self._beat_stop = threading.Event()
        self._verdicts: dict[str, str | None] = {}
        self._home_db: str | None = None
        lease = os.environ.get("NEURFLOW_KB_LEASE_SECONDS")
        if lease:
            try:
                self.lease_seconds = float(lease)
            except ValueError:
                raise UserError(f"NEURFLOW_KB_LEASE_SECONDS={lease!r} is not a number of seconds") from None
            if not 1 <= self.lease_seconds <= 86_400:
                raise UserError("NEURFLOW_KB_LEASE_SECONDS must be between 1 and 86400")

    def describe(self) -> str:
        db = f" database {self.database!r}" if self.database else ""
        return f"Neo4j at {safe_uri(self.uri)}{db}"

    def __repr__(self) -> str:
        return f"Neo4jStore({safe_uri(self.uri)!r}, user={self.user!r}, database={self.database!r})"

    def _facts(self) -> dict[str, Any]:
        return {**super()._facts(), "where": safe_uri(self.uri), "user": self.user, "database": self.database}

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
            raise self._fail(Fault.BAD_URI, msg) from None
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
        log.debug("cypher (%s): %s params=%s", "write" if write else "read", cypher, sorted(params))
        if self._tx is not None:                 # inside `_atomic`: errors go to its retry loop
            res = self._tx.run(cypher, params)
            rows = list(res)
            return SimpleNamespace(records=rows, keys=res.keys())
        routing = neo4j.RoutingControl.WRITE if write else neo4j.RoutingControl.READ
        return self._guard(self._driver.execute_query, cypher, params, database_=self.database,
                           routing_=routing)

    def _atomic(self, work: Callable[[], Any]) -> Any:
        """Run `work` in one explicit write transaction (retried as a whole on deadlocks and other
        transient errors); nested calls join the open one."""
        if self._tx is not None:
            return work()
        if self._driver is None:
            self.open()

        def body(tx: Any) -> Any:
            self._tx = tx
            try:
                return work()
            finally:
                self._tx = None

        with self._driver.session(database=self.database) as session:
            return self._guard(session.execute_write, body)

    def _execute(self, cypher: str, params: dict[str, Any], write: bool) -> tuple[list[str], list[list[Any]]]:
        res = self._run(cypher, params, write)
        return list(res.keys), [[_plain(v) for v in r.values()] for r in res.records]

    def _guard(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Call the driver, turning its errors into one-line `StoreError` / `UserError`s (no secrets)."""
        try:
            return fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - `_classify` picks the driver's; the rest propagates
            self._raise_classified(e)

    def _classify(self, error: BaseException, *, query: bool = False) -> tuple[Fault, str] | None:
        """Driver errors: credentials, connection, database, permissions, the server's verdict on a
        statement; for the user's query also parameters the driver cannot send."""
        from neo4j import exceptions as ex

        if isinstance(error, ex.AuthError):
            return Fault.AUTH, ""
        if isinstance(error, ex.ServiceUnavailable | ex.SessionExpired | OSError):
            return Fault.UNREACHABLE, ""
        if isinstance(error, ex.Neo4jError):
            code = error.code or ""
            msg = (error.message or str(error)).strip().splitlines()[0]
            if not isinstance(error, ex.ClientError):
                return Fault.FAILED, msg
            if code.endswith("DatabaseNotFound"):
                return Fault.NO_DATABASE, ""
            if code.endswith("Statement.AccessMode") or "read access mode" in msg:
                return Fault.WRITES, ""
            if code.startswith("Neo.ClientError.Security"):
                return Fault.FORBIDDEN, msg
            return Fault.REJECTED, msg
        if isinstance(error, ex.DriverError):
            return Fault.FAILED, str(error).strip().splitlines()[0]
        if query and isinstance(error, TypeError | ValueError):
            return Fault.BAD_PARAMS, str(error).splitlines()[0]
        return None

    # primitives -----------------------------------------------------------------------------------
    def _read(self, cypher: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[list[Any]]]:
        return self._execute(cypher, params or {}, write=not self.read_only)

    def _write(self, cypher: str, params: dict[str, Any] | None = None) -> None:
        self._check_writable()
        self._execute(cypher, params or {}, write=True)

    def _execute_user(self, cypher: str, params: dict[str, Any],
                      write: bool) -> tuple[list[str], list[list[Any]]]:
        """In a WRITE transaction when `write`, else in a READ one (after `_vet`)."""
        return self._execute(cypher, params, write=write)

    def _vet(self, cypher: str, params: dict[str, Any]) -> None:
        """Refuse a read query whose plan (the server's own parse, made by EXPLAIN without running it)
        or, as a second line, whose tokens show more than a read of this database: no writes,
        administration commands, LOAD CSV, other databases, or procedures and functions that reach
        outside the database (docs/security.md)."""
        if cypher not in self._verdicts:
            self._verdicts[cypher] = self._plan_refusal(cypher, params) or neo4j_text_refusal(cypher)
        reason = self._verdicts[cypher]
        if reason:
            raise refusal(reason)

    def _plan_refusal(self, cypher: str, params: dict[str, Any]) -> str | None:
        """The refusal the plan of `cypher` gives, if any (driver errors go to `run_query`'s mapping)."""
        import neo4j
        from neo4j import exceptions as ex

        if self._driver is None:
            self.open()
        toks = strip_explain(tokens(cypher))
        if not toks:
            return "has nothing to run"
        body = cypher[toks[0].pos:]
        if self._home_db is None:
            self._home_db = self.database or self._driver.execute_query(
                "EXPLAIN RETURN 1", database_=self.database,
                routing_=neo4j.RoutingControl.READ).summary.database
        try:
            res = self._driver.execute_query("EXPLAIN " + body, params, database_=self.database,
                                             routing_=neo4j.RoutingControl.READ)
        except ex.ClientError as e:
            msg = (e.message or str(e)).strip().splitlines()[0]
            if "AdministrationCommand" in (e.code or "") or "Administration Commands" in msg:
                return "is an administration command"
            raise
        summary = res.summary
        return neo4j_plan_refusal(summary.plan, summary.query_type, summary.database, self._home_db)

    def _schema_statement(self, stmt: str) -> None:
        """One constraint or index of `cypher/schema.cypher`; one that exists is no error, also when
        another writer creates it at the same moment (`IF NOT EXISTS` does not cover that)."""
        import neo4j
        from neo4j import exceptions as ex

        if self._driver is None:
            self.open()
        try:
            self._driver.execute_query(stmt, database_=self.database, routing_=neo4j.RoutingControl.WRITE)
        except ex.ClientError as e:
            if not (e.code or "").endswith(("EquivalentSchemaRuleAlreadyExists", "AlreadyExists")):
                self._raise_classified(e)
        except Exception as e:  # noqa: BLE001 - connection errors become one line
            self._raise_classified(e)

    def _batches(self, rows: list[Any]) -> list[_Rows]:
        return [_Rows(rows[i:i + self.batch_size]) for i in range(0, len(rows), self.batch_size)]

    def _insert_nodes(self, label: str, df: pd.DataFrame, merge: bool) -> None:
        self._check_claims()
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
        self._check_claims()
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
        self._delete_content(key)
        self._execute("MATCH (r:Run) WHERE r.key = $k DETACH DELETE r", {"k": key}, write=True)

    def _delete_content(self, key: str) -> None:
        p = {"k": key}
        while self._execute("MATCH ()-[e:INFLUENCES]->() WHERE e.run = $k WITH e LIMIT 10000 DELETE e "
                            "RETURN count(*)", p, write=True)[1][0][0]:
            pass
        while self._execute("MATCH (g:NeuronGroup) WHERE g.run = $k WITH g LIMIT 2000 DETACH DELETE g "
                            "RETURN count(*)", p, write=True)[1][0][0]:
            pass

    # concurrent writers ---------------------------------------------------------------------------
    def _lock_model(self, rows: GraphRows) -> None:
        """Create the Model node if missing (its uniqueness constraint lets one writer do it) and take
        its write lock for the rest of the transaction: structure writers of a model run one by one."""
        model = records(rows.nodes["Model"])[0]
        self._execute("MERGE (m:Model {key: $k}) ON CREATE SET m += $props "
                      "SET m._neurflow_lock = true REMOVE m._neurflow_lock",
                      {"k": model["key"], "props": model}, write=True)

    def _claim(self, actions: dict[str, str], runs: pd.DataFrame | None) -> tuple[dict[str, str], list[str]]:
        """Claim runs: new ones by creating their Run node (the key's constraint lets one writer win),
        existing ones (a stale 'writing' leftover, a complete run to replace) by taking the node's lock
        and setting this writer's token where no live claim is. Returns (claimed, held by others)."""
        claimed: dict[str, str] = {}
        new = [k for k, a in actions.items() if a == "new"]
        ms = int(self.lease_seconds * 1000)
        if new:
            assert runs is not None
            props = records(runs[runs["key"].isin(new)].assign(status="writing"))
            _, rows = self._execute(
                "UNWIND $rows AS p MERGE (r:Run {key: p.key}) "
                "ON CREATE SET r += p, r.writer = $tok, r.lease_until = timestamp() + $ms "
                "RETURN r.key, r.writer = $tok", {"rows": props, "tok": self._token, "ms": ms}, write=True)
            claimed.update({k: "new" for k, mine in rows if mine})
        for action, status in (("recover", "writing"), ("replace", "complete")):
            keys = [k for k, a in actions.items() if a == action]
            if not keys:
                continue
            _, rows = self._execute(
                "UNWIND $keys AS k MATCH (r:Run {key: k}) "
                "SET r._neurflow_lock = true REMOVE r._neurflow_lock "   # the node's lock, then look
                "WITH r WHERE r.status = $status AND (r.writer IS NULL OR r.lease_until < timestamp()) "
                "SET r.writer = $tok, r.lease_until = timestamp() + $ms RETURN r.key",
                {"keys": keys, "status": status, "tok": self._token, "ms": ms}, write=True)
            claimed.update({k: action for (k,) in rows})
        if claimed:
            self._claims.update(claimed)
            self._start_heartbeat()
        return claimed, [k for k in actions if k not in claimed]

    def _start_heartbeat(self) -> None:
        """Renew this writer's leases every quarter lease in a background thread."""
        if self._heartbeat is not None and self._heartbeat.is_alive():
            return
        self._beat_stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name="neurflow-kb-lease", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        import neo4j

        ms = int(self.lease_seconds * 1000)
        while not self._beat_stop.wait(self.lease_seconds / 4):
            keys = sorted(self._claims)
            if not keys:
                continue
            try:
                res = self._driver.execute_query(
                    "UNWIND $keys AS k MATCH (r:Run {key: k}) WHERE r.writer = $tok "
                    "SET r.lease_until = timestamp() + $ms RETURN collect(r.key) AS held",
                    {"keys": keys, "tok": self._token, "ms": ms}, database_=self.database,
                    routing_=neo4j.RoutingControl.WRITE)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease outlasts several
                continue
            held = set(res.records[0]["held"])
            self._lost.update(k for k in keys if k not in held and k in self._claims)

    def _claims_done(self) -> None:
        self._claims.clear()
        self._beat_stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None
        self._lost.clear()

    def _check_claims(self) -> None:
        if self._lost & self._claims:
            key = sorted(self._lost & self._claims)[0]
            raise StoreError(f"another writer took over run {key} (this writer's claim lapsed for over "
                             f"{self.lease_seconds:.0f}s); its write was given up, run the load again")

    def _put_runs(self, run: pd.DataFrame) -> None:
        """Set the claimed Run nodes' properties (they exist since the claim)."""
        self._check_claims()
        _, rows = self._execute("UNWIND $rows AS r MATCH (n:Run {key: r.key}) WHERE n.writer = $tok "
                                "SET n += r RETURN count(n)", {"rows": records(run), "tok": self._token},
                                write=True)
        if int(rows[0][0]) != len(run):
            raise StoreError(f"another writer took over a run of this batch in {self.describe()}; run the "
                             "load again")

    def _finish_runs(self, keys: list[str]) -> None:
        """Mark this writer's runs complete and drop its claims on them (only runs it still holds)."""
        self._check_claims()
        _, rows = self._execute("UNWIND $keys AS k MATCH (r:Run {key: k}) WHERE r.writer = $tok "
                                "SET r.status = 'complete' REMOVE r.writer, r.lease_until "
                                "RETURN collect(r.key)", {"keys": keys, "tok": self._token}, write=True)
        done = set(rows[0][0])
        self._claims.difference_update(done)
        missing = sorted(set(keys) - done)
        if missing:
            raise StoreError(f"another writer took over run {missing[0]} before it was complete; run the "
                             "load again")

    def _clear_run(self, key: str) -> None:
        """Delete a run's groups, influences and links, keeping its (claimed) Run node."""
        self._delete_content(key)
        self._execute("MATCH (r:Run {key: $k})-[e]->() DELETE e", {"k": key}, write=True)

    def _abandon(self, keys: list[str]) -> None:
        """Remove this writer's half-written new runs (best effort: a lease that lapses frees them too)."""
        for key in keys:
            try:
                _, rows = self._execute("MATCH (r:Run {key: $k}) WHERE r.writer = $tok RETURN count(r)",
                                        {"k": key, "tok": self._token}, write=True)
                if int(rows[0][0]):
                    self._delete_run(key)
            except Exception:  # noqa: BLE001 - the original error matters; leftovers are taken over later
                pass
        self._claims.difference_update(keys)

    def _release(self, keys: list[str]) -> None:
        """Drop this writer's claims on `keys` (after a failed swap the old runs stay complete)."""
        try:
            self._execute("UNWIND $keys AS k MATCH (r:Run {key: k}) WHERE r.writer = $tok "
                          "REMOVE r.writer, r.lease_until", {"keys": keys, "tok": self._token}, write=True)
        except Exception:  # noqa: BLE001 - the lease lapses anyway
            pass
        self._claims.difference_update(keys)
