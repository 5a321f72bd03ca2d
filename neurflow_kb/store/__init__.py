"""Knowledge-base stores: the `GraphStore` interface, Neo4j (official driver) and embedded Ladybug.

`open_store()` picks one from arguments or the NEO4J_* environment; use it as a context manager.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import BaseStore, GraphStore, KBPart, WriteResult, refuse_writes, write_clauses
from .graph import GraphRows, model_key, model_rows, run_rows
from .ladybug_store import DEFAULT_STORE, LadybugStore
from .neo4j_store import Neo4jStore, is_neo4j_uri, safe_uri


def open_store(store_path: str | Path | None = None, neo4j_uri: str | None = None, *,
               user: str | None = None, password: str | None = None, database: str | None = None,
               read_only: bool = False) -> BaseStore:
    """Open a knowledge base: Neo4j when `neo4j_uri` (or, without `store_path`, NEO4J_URI) is given,
    else the embedded file `store_path` (default `neurflow-kb.lbug` in the working directory).
    Read-only opening needs the embedded file to exist."""
    uri = neo4j_uri or (None if store_path else os.environ.get("NEO4J_URI"))
    store: BaseStore
    if uri:
        store = Neo4jStore(uri, user=user, password=password, database=database, read_only=read_only)
    else:
        store = LadybugStore(store_path or DEFAULT_STORE, read_only=read_only)
    return store.open()


__all__ = ["BaseStore", "GraphStore", "KBPart", "WriteResult", "GraphRows", "LadybugStore", "Neo4jStore",
           "DEFAULT_STORE", "open_store", "model_key", "model_rows", "run_rows", "is_neo4j_uri", "safe_uri",
           "refuse_writes", "write_clauses"]
