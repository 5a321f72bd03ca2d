"""The `neurflow-kb` command line: one click group, one module per concern."""

from __future__ import annotations

import sys

import click

from ..errors import UserError


class _Group(click.Group):
    """Turns `UserError` into one line on stderr and exit code 2 (no traceback for user mistakes)."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neurflow-kb")
def main() -> None:
    """NeurFlow circuits of vision models, as a queryable knowledge base."""


def _register() -> None:
    from . import demo_cmds, engine_cmds, kb_cmds, label_cmds  # noqa: F401  (commands attach to `main`)


_register()
