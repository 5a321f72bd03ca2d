"""The `neurflow-kb` command line: one click group (`group.py`), one module per concern."""

from __future__ import annotations

from . import demo_cmds, engine_cmds, kb_cmds, label_cmds, view_cmds  # noqa: F401  (commands attach to `main`)
from .group import main

__all__ = ["main"]
