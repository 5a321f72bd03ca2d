"""Commands over the knowledge base: `init`, `load`, `ingest`, `query`, `cypher`, `push`."""

from __future__ import annotations

from . import main  # noqa: F401
