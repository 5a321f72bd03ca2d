"""`StoreCore`: what every store does on top of its backend primitives (`_read`, `_write`,
`_insert_nodes`, `_insert_rels`, `_delete_run`): opening, the read-only guard, reading, counting."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import UserError
from .convert import to_frame
from .graph import RelKey
from .protocol import Status
from .schema import schema

if TYPE_CHECKING:
    from typing_extensions import Self


class StoreCore:
    """Backend primitives (implemented by `Neo4jStore` and `LadybugStore`) and what is built on them alone."""

    dialect: str = ""
    read_only: bool = False
    batch_relationships: int = 250_000
    _STATUS: dict[str, Status] = {"new": "written", "recover": "recovered", "replace": "replaced"}
    batch_atomic: bool = False
    swap_relationships: int = 100_000
    claim_poll_seconds: float = 0.5

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


__all__ = ["StoreCore"]
