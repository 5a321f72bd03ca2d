"""The `neurflow-kb` click group every command module attaches its commands to."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import UserError


class _Group(click.Group):
    """Turns `UserError` into one line on stderr and exit code 2 (no traceback for user mistakes)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neurflow-kb")
@click.option("--log-level", type=click.Choice(["warning", "info", "debug"]), default="warning",
              show_default=True, help="Log messages of neurflow-kb to stderr: info (per class, prediction "
              "pass, workers) or debug (also every Cypher statement with its parameter names).")
def main(log_level: str) -> None:
    """NeurFlow circuits of vision models, as a queryable knowledge base."""
    click.get_current_context().call_on_close(configure_logging(log_level))


def configure_logging(level: str) -> Callable[[], None]:
    """Send the package's log records at `level` and above to stderr (other libraries stay quiet); return
    what puts the logger back as it was (the command runs it on exit: a process that invokes the CLI more
    than once, like the tests, keeps no level or handler of an earlier run)."""
    logger = logging.getLogger("neurflow_kb")
    saved = logger.level
    logger.setLevel(level.upper())
    added = None
    if level != "warning" and not any(isinstance(h, _Stderr) for h in logger.handlers):
        added = _Stderr()
        added.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(added)

    def restore() -> None:
        logger.setLevel(saved)
        if added is not None:
            logger.removeHandler(added)

    return restore


class _Stderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes (the CLI may be invoked more than once)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass
