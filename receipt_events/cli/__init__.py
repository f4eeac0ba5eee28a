"""The log's commands (``ingest``, ``log``, ``parked``, ``schema``, ``store``) and the kit every
command of ``receipt-events`` shares: options (``options``), output (``output``), exit
statuses (``errors``) and renderings (``render``).

These import nothing above ``receipt_events``; the app that assembles every layer's commands
is ``receipt_cli.app``. Not part of the stream Lambda's zip.
"""

from __future__ import annotations

import typer

from receipt_events.cli.log_commands import ingest_command, log_command, schema_command
from receipt_events.cli.parked_commands import parked_app
from receipt_events.cli.store_commands import store_app


def register(app: typer.Typer) -> None:
    """Add the log's commands to ``app``."""
    app.command("ingest")(ingest_command)
    app.command("log")(log_command)
    app.add_typer(parked_app, name="parked")
    app.command("schema")(schema_command)
    app.add_typer(store_app, name="store")
