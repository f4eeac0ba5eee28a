"""The ``receipt-events`` command line (SPEC §10).

Commands import heavy packages (chromadb, boto3) only inside their bodies, so ``ingest`` and
the other log commands stay as light as the stream Lambda.
"""

from __future__ import annotations

import typer

from receipt_events.cli.demo import demo_command
from receipt_events.cli.log_commands import (
    generate_command,
    ingest_command,
    log_command,
    parked_app,
    schema_command,
    status_command,
)
from receipt_events.cli.projection_commands import (
    diff_command,
    digest_command,
    project_command,
    rebuild_command,
    verify_command,
)
from receipt_events.cli.snapshot_commands import compact_command, snapshot_app

app = typer.Typer(
    name="receipt-events",
    help="DynamoDB stream records → a typed, replayable event log → Chroma collections.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.command("ingest")(ingest_command)
app.command("log")(log_command)
app.add_typer(parked_app, name="parked")
app.command("schema")(schema_command)
app.command("status")(status_command)
app.command("project")(project_command)
app.command("rebuild")(rebuild_command)
app.command("digest")(digest_command)
app.command("verify")(verify_command)
app.command("diff")(diff_command)
app.add_typer(snapshot_app, name="snapshot")
app.command("compact")(compact_command)
app.command("generate")(generate_command)
app.command("demo")(demo_command)


def main() -> None:
    app()
