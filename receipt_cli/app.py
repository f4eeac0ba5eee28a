"""The ``receipt-events`` command line: every layer's commands in one app (the console script).

Each package owns the commands of its layer (``receipt_events.cli``: the log;
``projections.cli``: projection, snapshots, compaction, leases); the tools that make test data
(``generate``, ``demo``) live here, beside them. Every command's errors meet one mapping
(:mod:`receipt_cli.errors`), applied by the app's group around whichever command runs.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from projections import cli as projection_cli
from receipt_cli.demo import demo_command
from receipt_cli.errors import report
from receipt_cli.tool_commands import generate_command
from receipt_events import cli as log_cli


class _Group(TyperGroup):
    """The root group: runs the chosen command and maps what it raises (one place)."""

    # ctx is typer's click context (typer vendors click since 0.2x, so its type moved)
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            if _is_command_line(error):
                raise  # usage errors, exits, aborts: typer reports them
            raise typer.Exit(report(error)) from None


def _is_command_line(error: Exception) -> bool:
    """An exception of typer's (or click's): the command line's own flow, not a failure."""
    return type(error).__module__.split(".")[0] in ("typer", "click")


app = typer.Typer(
    name="receipt-events",
    cls=_Group,
    help="DynamoDB stream records → a typed, replayable event log → Chroma collections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
log_cli.register(app)
projection_cli.register(app)
app.command("generate")(generate_command)
app.command("demo")(demo_command)


def main() -> None:
    app()
