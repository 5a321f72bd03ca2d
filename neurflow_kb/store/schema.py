"""The graph schema, read from `cypher/schema.ladybug.cypher` (the single source of truth for property
names, order and types), and access to the Cypher files of `cypher/` (schema and named queries)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


def cypher_dir() -> Path:
    """The package's `cypher/` folder: schema, named queries, Bloom perspective and Browser style (the
    repository root links to it, so it ships in wheels and stays where DESIGN.md puts it)."""
    return Path(__file__).resolve().parent.parent / "cypher"


def statements(text: str) -> list[str]:
    """Split a Cypher script into statements (`;`-separated, `//` line comments dropped)."""
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("//")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def schema_statements(dialect: str) -> list[str]:
    """DDL statements of one dialect: 'neo4j' (schema.cypher) or 'ladybug' (schema.ladybug.cypher)."""
    name = "schema.cypher" if dialect == "neo4j" else "schema.ladybug.cypher"
    return statements((cypher_dir() / name).read_text())


@functools.cache
def query_text(name: str, dialect: str) -> str:
    """Text of the named query `cypher/queries/NAME.cypher`, or its `.ladybug.cypher` twin if present."""
    qdir = cypher_dir() / "queries"
    if dialect == "ladybug" and (qdir / f"{name}.ladybug.cypher").is_file():
        path = qdir / f"{name}.ladybug.cypher"
    else:
        path = qdir / f"{name}.cypher"
    if not path.is_file():
        known = ", ".join(query_names())
        raise UserError(f"unknown query {name!r}; known queries: {known}")
    return "\n".join(ln for ln in path.read_text().splitlines() if not ln.strip().startswith("//")).strip()


def query_names() -> list[str]:
    """Names of all query files in `cypher/queries` (twins folded)."""
    qdir = cypher_dir() / "queries"
    return sorted({p.name.split(".")[0] for p in qdir.glob("*.cypher")})


@dataclass(frozen=True)
class NodeTable:
    """A node label: its properties in declaration order (the first is the key) and their types."""

    label: str
    props: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> list[str]:
        return [p for p, _ in self.props]


@dataclass(frozen=True)
class RelTable:
    """A relationship type: the (source label, target label) pairs it joins and its properties."""

    type: str
    pairs: tuple[tuple[str, str], ...]
    props: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> list[str]:
        return [p for p, _ in self.props]


_NODE_RE = re.compile(r"CREATE NODE TABLE IF NOT EXISTS (\w+)\((.*)\)\s*$", re.S)
_REL_RE = re.compile(r"CREATE REL TABLE IF NOT EXISTS (\w+)\(([^()]*)\)(?:\s*WITH\s*\(.*\))?\s*$", re.S)


def _fields(body: str) -> list[str]:
    return [f.strip() for f in body.split(",") if f.strip()]


@dataclass(frozen=True)
class Schema:
    """All node and relationship tables of the knowledge base."""

    nodes: dict[str, NodeTable]
    rels: dict[str, RelTable]


@functools.lru_cache(maxsize=1)
def schema() -> Schema:
    """Parse the Ladybug DDL into `Schema` (cached)."""
    nodes: dict[str, NodeTable] = {}
    rels: dict[str, RelTable] = {}
    for stmt in schema_statements("ladybug"):
        if m := _NODE_RE.match(stmt):
            props = []
            for f in _fields(m.group(2)):
                name, typ = f.replace(" PRIMARY KEY", "").split(None, 1)
                props.append((name.strip("`"), typ.strip()))
            nodes[m.group(1)] = NodeTable(m.group(1), tuple(props))
        elif m := _REL_RE.match(stmt):
            pairs, props = [], []
            for f in _fields(m.group(2)):
                if f.upper().startswith("FROM "):
                    _, src, _, dst = f.split()
                    pairs.append((src, dst))
                else:
                    name, typ = f.split(None, 1)
                    props.append((name.strip("`"), typ.strip()))
            rels[m.group(1)] = RelTable(m.group(1), tuple(pairs), tuple(props))
    return Schema(nodes, rels)


_INDEX_RE = re.compile(r"CREATE (?:RANGE |TEXT )?INDEX \w+ IF NOT EXISTS "
                       r"FOR (?:\(\w+:(\w+)\)|\(\)-\[\w+:(\w+)\]-\(\)) ON \(([^)]*)\)")


@functools.cache
def indexed_properties() -> frozenset[tuple[str, str]]:
    """(label or relationship type, property) of every key and every property Neo4j indexes with a range
    index (from `schema.cypher`): their values must stay within the index's key size."""
    out = {(label, "key") for label in schema().nodes}
    for stmt in schema_statements("neo4j"):
        if m := _INDEX_RE.match(stmt):
            owner = m.group(1) or m.group(2)
            for prop in m.group(3).split(","):
                out.add((owner, prop.strip().split(".", 1)[1].strip("`")))
    return frozenset(out)
