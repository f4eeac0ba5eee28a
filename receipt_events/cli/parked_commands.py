"""``parked list`` and ``parked redrive``: the stream records that could not become events."""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer
from rich.table import Table

from receipt_events.cli.options import JsonOption, StoreOption, opened_store
from receipt_events.cli.output import console, emit_json
from receipt_events.ingest import redrive

parked_app = typer.Typer(help="Records that could not become events: list them, retry them.")


@parked_app.command("list")
def parked_list(store: StoreOption = None, json: JsonOption = False) -> None:
    """Show the records still parked, with why and where each was read."""
    with opened_store(store) as event_store:
        waiting = event_store.parked_records()
    if json:
        emit_json(
            {
                "count": len(waiting),
                "parked": [
                    {
                        "id": record.parked_id,
                        "error": record.error,
                        "origin": record.origin,
                        "event_id": record.event_id,
                        "sequence_number": record.sequence_number,
                        "record": _record_document(record.payload),
                    }
                    for record in waiting
                ],
            }
        )
        return
    if not waiting:
        console.print("No parked records.")
        return
    table = Table(title=f"{len(waiting)} parked record(s)", title_justify="left")
    table.add_column("id", overflow="fold", max_width=28)
    table.add_column("read from", overflow="fold")
    table.add_column("why", overflow="fold")
    for record in waiting:
        table.add_row(record.parked_id, record.origin, record.error)
    console.print(table)


def _record_document(payload: bytes) -> object:
    """The parked record as JSON if it is JSON, else its text (invalid UTF-8 replaced)."""
    try:
        return msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return payload.decode("utf-8", errors="replace")


@parked_app.command("redrive")
def parked_redrive(
    ids: Annotated[
        list[str] | None,
        typer.Option("--id", help="Retry only this parked id (repeatable). Default: all."),
    ] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Retry parked records with the current parser; resolve those that now succeed.

    A record whose item has a newer change in the log is resolved as superseded, not
    appended, so a late redrive never puts an old state after a newer one.
    """
    with opened_store(store) as event_store:
        summary = redrive(event_store, set(ids) if ids else None)
    if json:
        emit_json(summary)
        return
    console.print(
        f"retried {summary.retried}: appended {summary.appended}, "
        f"duplicates {summary.duplicates}, superseded {summary.superseded}, "
        f"skipped {summary.skipped}, unchanged {summary.unchanged}, "
        f"still parked {summary.still_parked}"
    )
