"""Commands on the log itself: ingest, log, schema."""

from __future__ import annotations

import sys
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer

from receipt_events.cli.errors import fail
from receipt_events.cli.options import JsonOption, StoreOption, ToOption, opened_store
from receipt_events.cli.output import console, emit_json, progress_bar
from receipt_events.cli.render import event_line, ingest_table
from receipt_events.events import event_to_dict, json_schema
from receipt_events.ingest import DEFAULT_BATCH_SIZE, ingest
from receipt_events.records import InputRecord, read_input


def read_paths(paths: list[str]) -> list[InputRecord]:
    """Read and split every input before anything is appended (``-`` is stdin)."""
    records: list[InputRecord] = []
    for path in paths:
        if path == "-":
            data, name = sys.stdin.buffer.read(), "<stdin>"
        else:
            try:
                data, name = Path(path).read_bytes(), path
            except OSError as error:
                fail(f"cannot read {path}: {error.strerror or error}")
        records.extend(read_input(data, name))
    return records


def ingest_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help='Stream record files: a Lambda event {"Records": [...]}, one record, '
            "or JSON Lines. '-' reads stdin.",
            show_default=False,
        ),
    ],
    store: StoreOption = None,
    json: JsonOption = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Events appended per transaction.")
    ] = DEFAULT_BATCH_SIZE,
) -> None:
    """Parse DynamoDB stream records and append their events, each stream record once."""
    records = read_paths(paths)
    with opened_store(store) as event_store, progress_bar(not json, "ingesting", "records") as bar:
        summary = ingest(
            event_store,
            records,
            batch_size=batch_size,
            progress=None if bar is None else lambda done: bar(done, len(records)),
        )
    if json:
        emit_json(summary)
    else:
        console.print(ingest_table(summary, f"Ingested {len(paths)} input(s)"))


def log_command(
    after: Annotated[int, typer.Option("--after", min=0, help="Start after this position.")] = 0,
    to: ToOption = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Print at most this many events.")
    ] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Print events in position order (--json: one JSON object per line)."""
    with opened_store(store) as event_store:
        for recorded in islice(event_store.iter_events(after=after, to=to), limit):
            if json:
                emit_json({"position": recorded.position, **event_to_dict(recorded.event)})
            else:
                console.print(event_line(recorded), highlight=False, soft_wrap=True)


def schema_command(json: JsonOption = True) -> None:
    """Print the JSON Schema of the event union (always JSON)."""
    emit_json(json_schema())
