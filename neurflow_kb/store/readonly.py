"""What a read-only query may do, decided from the query's tokens and from the database's own plan.

The first line is the database itself: Neo4j runs read-only queries in a READ transaction and the
embedded store on a `read_only=True` handle, so neither accepts a write. What those leave open (Neo4j:
administration commands, procedures, `LOAD CSV`, other databases; Ladybug: `LOAD FROM`, `COPY ... TO`,
table functions that read files, extensions) is refused here before the query runs, from a Cypher
tokenizer that errs on the refusing side and from the plan the database makes with `EXPLAIN`. Scanning
for write keywords is only a second line. `docs/security.md` lists the guarantees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError

#: How refusals end: what unlocks the query.
HINT = "read-only queries may not do that; pass --write (write=True) to allow it, see docs/security.md"

# Clause keywords that write, manage the database or reach outside it (second line on both stores).
WRITE_WORDS = frozenset({
    "CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "DROP", "ALTER", "FOREACH", "TRUNCATE",
    "RENAME", "GRANT", "REVOKE", "DENY", "COPY", "LOAD", "INSTALL", "UNINSTALL", "ATTACH", "IMPORT",
    "EXPORT", "CHECKPOINT", "BEGIN", "COMMIT", "ROLLBACK", "USE", "TERMINATE", "START", "STOP"})

# Ladybug table functions a read-only query may call (catalogue and statistics of the open file); every
# other table function is refused because some read files from the host (read_csv_*, read_parquet,
# read_npy) or memory (read_pandas) and crash the process on bad input, and new ones may do the same.
LADYBUG_TABLE_FUNCTIONS = frozenset({
    "SHOW_TABLES", "TABLE_INFO", "SHOW_FUNCTIONS", "SHOW_INDEXES", "SHOW_MACROS", "SHOW_SEQUENCES",
    "SHOW_CONNECTION", "SHOW_GRAPHS", "SHOW_LOADED_EXTENSIONS", "DB_VERSION", "STORAGE_VERSION",
    "CATALOG_VERSION", "STATS_INFO"})
# Internal table functions that Ladybug's planner inserts itself (reading intermediate results).
LADYBUG_PLAN_FUNCTIONS = frozenset({"READ_FTABLE"})
# First words of Ladybug plan operators that write, manage the database or touch files (COPY_TO,
# INSERT, SET_PROPERTY, CREATE_TABLE, INSTALL_EXTENSION, ATTACH_DATABASE, STANDALONE_CALL, ...).
_LADYBUG_BAD_OP_WORDS = frozenset({
    "COPY", "INSERT", "SET", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "EXPORT", "IMPORT", "ATTACH",
    "DETACH", "USE", "INSTALL", "UNINSTALL", "LOAD", "TRANSACTION", "STANDALONE", "PARTITIONER", "BATCH"})

# Neo4j procedures a read-only query may call: catalogue, schema and index look-ups of its database.
NEO4J_PROCEDURES = frozenset({
    "db.labels", "db.relationshipTypes", "db.propertyKeys", "db.schema.visualization",
    "db.schema.nodeTypeProperties", "db.schema.relTypeProperties", "db.index.vector.queryNodes",
    "db.index.vector.queryRelationships", "db.index.fulltext.queryNodes",
    "db.index.fulltext.queryRelationships", "db.info", "db.ping", "dbms.components"})
# Neo4j command operators that only describe the schema or the callable functions.
NEO4J_SHOW_OPS = frozenset({"ShowIndexes", "ShowConstraints", "ShowProcedures", "ShowFunctions"})
# Namespaces of dotted functions that compute on their arguments only (Neo4j built-ins and APOC's
# pure helpers); any other dotted function (apoc.cypher.runFirstColumn*, plugins) is refused.
NEO4J_PURE_NAMESPACES = frozenset({
    "vector", "point", "date", "datetime", "localdatetime", "localtime", "time", "duration", "db",
    "apoc.coll", "apoc.text", "apoc.map", "apoc.convert", "apoc.math", "apoc.number", "apoc.date",
    "apoc.temporal", "apoc.agg", "apoc.node", "apoc.nodes", "apoc.rel", "apoc.any", "apoc.label",
    "apoc.meta", "apoc.hashing", "apoc.bitwise", "apoc.scoring", "apoc.create", "apoc.json",
    "apoc.data", "apoc.version", "apoc.util", "apoc.schema"})


@dataclass(frozen=True)
class Token:
    """One Cypher token: kind is word, name (backticked), string, param, number or op."""

    kind: str
    text: str
    pos: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper()


_LINE_END = "\r\n\x0b\x0c\x85\u2028\u2029"


def tokens(text: str) -> list[Token]:
    """Split Cypher into tokens, dropping whitespace and comments.

    Errs towards seeing code: a `//` comment ends at any line break (Ladybug ends it at a lone CR), and
    outside strings, comments and backticked names only ASCII is accepted, so no Unicode spacing or
    look-alike letter can make a keyword that this tokenizer does not see."""
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace() and c.isascii():
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] not in _LINE_END:
                i += 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise UserError(f"the query has an unterminated /* comment at offset {i}")
            i = j + 2
        elif c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise UserError(f"the query has an unterminated string at offset {i}")
            out.append(Token("string", text[i:j + 1], i, j + 1))
            i = j + 1
        elif c == "`":
            j, name = i + 1, []
            while True:
                k = text.find("`", j)
                if k < 0:
                    raise UserError(f"the query has an unterminated `name` at offset {i}")
                name.append(text[j:k])
                if text.startswith("``", k):
                    name.append("`")
                    j = k + 2
                    continue
                break
            out.append(Token("name", "".join(name), i, k + 1))
            i = k + 1
        elif not c.isascii():
            raise UserError(f"the query has the non-ASCII character {c!r} outside strings and `names` "
                            f"(offset {i}); quote it")
        elif c == "$":
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(Token("param", text[i:j], i, j))
            i = j
        elif c.isdigit():
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] in "_."):
                if text[j] == "." and (j + 1 >= n or not text[j + 1].isdigit()):
                    break
                j += 1
            out.append(Token("number", text[i:j], i, j))
            i = j
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(Token("word", text[i:j], i, j))
            i = j
        else:
            out.append(Token("op", c, i, i + 1))
            i += 1
    return out


def statement_texts(cypher: str) -> list[str]:
    """The statements of a `;`-separated script, as written (comments between them dropped)."""
    return [cypher[st[0].pos:st[-1].end] for st in statements(tokens(cypher))]


def statements(toks: list[Token]) -> list[list[Token]]:
    """Tokens split at `;` into non-empty statements."""
    out: list[list[Token]] = [[]]
    for t in toks:
        if t.kind == "op" and t.text == ";":
            out.append([])
        else:
            out[-1].append(t)
    return [s for s in out if s]


def _clause_words(toks: list[Token]) -> list[Token]:
    """Words in clause position: not a property (`n.set`), label or map key (`:Copy`, `{load: 1}`)."""
    out = []
    for k, t in enumerate(toks):
        if t.kind != "word":
            continue
        prev = toks[k - 1] if k else None
        nxt = toks[k + 1] if k + 1 < len(toks) else None
        if prev is not None and prev.kind == "op" and prev.text in ".:":
            continue
        if nxt is not None and nxt.kind == "op" and nxt.text == ":" and prev is not None and \
                prev.kind == "op" and prev.text in "{,":
            continue
        out.append(t)
    return out


def write_clauses(cypher: str) -> list[str]:
    """Write, admin and file keywords of a query in clause position (outside strings, comments, quoted
    names, property accesses and labels), sorted. Unreadable text counts as `?`."""
    try:
        toks = tokens(cypher)
    except UserError:
        return ["?"]
    return sorted({t.upper for t in _clause_words(toks) if t.upper in WRITE_WORDS})


def refuse_writes(cypher: str) -> None:
    """Raise `UserError` if a query meant to be read-only has write, admin or file keywords (the second
    line of defence; the stores' read-only handles and plan checks are the first)."""
    found = write_clauses(cypher)
    if found:
        raise UserError(f"the query writes or reaches outside the knowledge base ({', '.join(found)}); "
                        f"{HINT}")


def strip_explain(toks: list[Token]) -> list[Token]:
    """The statement without a leading EXPLAIN / PROFILE (the check plans the statement itself)."""
    while toks and toks[0].kind == "word" and toks[0].upper in ("EXPLAIN", "PROFILE"):
        toks = toks[1:]
    return toks


# -- Ladybug ---------------------------------------------------------------------------------------

def ladybug_refusal(cypher: str, table_functions: frozenset[str]) -> str | None:
    """Why a query may not run read-only on Ladybug (None if it may), from its tokens alone: file
    access (LOAD FROM, COPY), extensions, settings (`CALL threads=1`), transactions, databases, writes,
    and any table function of `table_functions` (the engine's catalogue) outside the allowed ones."""
    stmts = statements(tokens(cypher))
    if not stmts:
        return "is empty"
    for st in stmts:
        for t in st:
            if t.kind == "word" and t.upper in table_functions and t.upper not in LADYBUG_TABLE_FUNCTIONS:
                return f"calls the table function {t.text} (it can read files or memory of the host)"
        words = [t.upper for t in _clause_words(st) if t.upper in WRITE_WORDS]
        if words:
            return f"uses {', '.join(sorted(set(words)))} (writes, files, extensions or transactions)"
        for k, t in enumerate(st[:-2]):
            if t.kind == "word" and t.upper == "CALL" and st[k + 2].kind == "op" and st[k + 2].text == "=":
                return f"changes the setting {st[k + 1].text}"
    return None


def ladybug_plan_refusal(plan: str) -> str | None:
    """Why Ladybug's `EXPLAIN` output shows a query that is not a pure read (None if it is one)."""
    ops = re.findall(r"([A-Z][A-Z_]+)\[\d+\]", plan)
    if not ops:
        return "has a plan this version cannot check"
    for op in ops:
        if op.split("_")[0] in _LADYBUG_BAD_OP_WORDS:
            return f"plans the operator {op}"
    for fn in re.findall(r"Function: (\w+)", plan):
        if fn.upper() not in LADYBUG_TABLE_FUNCTIONS | LADYBUG_PLAN_FUNCTIONS:
            return f"plans the table function {fn}"
    return None


# -- Neo4j -----------------------------------------------------------------------------------------

def _dotted_calls(toks: list[Token]) -> list[str]:
    """Names of dotted function or procedure calls (`apoc.cypher.run(`) among the tokens."""
    out = []
    k = 0
    while k < len(toks):
        if toks[k].kind in ("word", "name"):
            parts, j = [toks[k].text], k + 1
            while j + 1 < len(toks) and toks[j].kind == "op" and toks[j].text == "." and \
                    toks[j + 1].kind in ("word", "name"):
                parts.append(toks[j + 1].text)
                j += 2
            if len(parts) > 1 and j < len(toks) and toks[j].kind == "op" and toks[j].text == "(":
                prev = toks[k - 1] if k else None
                if not (prev is not None and prev.kind == "op" and prev.text == "."):
                    out.append(".".join(parts))
            k = j
        else:
            k += 1
    return out


def _pure(name: str) -> bool:
    parts = name.split(".")
    ns = ".".join(parts[:2]) if parts[0].lower() == "apoc" else parts[0]
    return ns.lower() in {s.lower() for s in NEO4J_PURE_NAMESPACES}


def neo4j_text_refusal(cypher: str) -> str | None:
    """Why a query's text may not run read-only on Neo4j (None if it may): dotted functions outside the
    pure namespaces and the keyword second line (the plan check comes first in `Neo4jStore`)."""
    toks = tokens(cypher)
    if not toks:
        return "is empty"
    for k, t in enumerate(toks):
        if t.kind == "word" and t.upper == "CALL":
            parts, j = [], k + 1
            while j < len(toks) and toks[j].kind in ("word", "name"):
                parts.append(toks[j].text)
                if j + 1 < len(toks) and toks[j + 1].kind == "op" and toks[j + 1].text == ".":
                    j += 2
                else:
                    break
            if parts and ".".join(parts) not in NEO4J_PROCEDURES:
                return f"calls the procedure {'.'.join(parts)}"
    calls = _dotted_calls(toks)
    for name in calls:
        if name not in NEO4J_PROCEDURES and not _pure(name):
            return f"calls {name}"
    words = [t.upper for t in _clause_words(toks) if t.upper in WRITE_WORDS]
    if words:
        return f"uses {', '.join(sorted(set(words)))} (writes, files, administration or other databases)"
    return None


def neo4j_plan_refusal(plan: dict | None, query_type: str | None, database: str | None,
                       expected_db: str | None) -> str | None:
    """Why Neo4j's `EXPLAIN` of a query shows more than a read of `expected_db` (None if it is one):
    its query type, its operators (LOAD CSV, transactions, administration commands, procedures outside
    `NEO4J_PROCEDURES`, dotted functions outside the pure namespaces) and the databases they run on."""
    if query_type != "r":
        kind = {"w": "writes", "rw": "reads and writes", "s": "changes the schema or administers the server"}
        return kind.get(query_type or "", f"is of query type {query_type!r}")
    if database and expected_db and database != expected_db:
        return f"runs on the database {database!r}"
    if plan is None:
        return "has no plan to check"
    stack = [plan]
    while stack:
        node = stack.pop()
        stack.extend(node.get("children", []))
        op, _, db = str(node.get("operatorType", "")).partition("@")
        if db and expected_db and db != expected_db:
            return f"runs {op} on the database {db!r}"
        details = str((node.get("args") or {}).get("Details", ""))
        if op == "LoadCSV":
            return "reads a file or URL with LOAD CSV"
        if "Transaction" in op or op.startswith(("Terminate", "Administration")) or \
                (op.startswith("Show") and op not in NEO4J_SHOW_OPS):
            return f"runs the command {op}"
        if op == "ProcedureCall":
            name = details.split("(", 1)[0].strip()
            if name not in NEO4J_PROCEDURES:
                return f"calls the procedure {name or '?'}"
        for name in re.findall(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)\s*\(", details):
            if name not in NEO4J_PROCEDURES and not _pure(name):
                return f"calls {name}"
    return None


def refusal(reason: str) -> UserError:
    """The one-line error for a refused read-only query."""
    return UserError(f"the query {reason}; {HINT}")
