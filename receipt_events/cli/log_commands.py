"""Commands on the log itself: ingest, log, parked, schema, status, generate."""

from __future__ import annotations

import sys
from itertools import islice
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.progress import Progress
from rich.table import Table

from receipt_events.cli.common import (
    JsonOption,
    StoreOption,
    console,
    emit_json,
    fail,
    guarded,
    opened_store,
)
from receipt_events.cli.render import event_line, ingest_table
from receipt_events.events import event_to_dict, json_schema
from receipt_events.ingest import DEFAULT_BATCH_SIZE, ingest, redrive
from receipt_events.records import InputRecord, read_input

parked_app = typer.Typer(help="Records that could not become events: list them, retry them.")


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

    def run() -> None:
        records = read_paths(paths)
        with opened_store(store) as event_store:
            if json or not console.is_terminal:
                summary = ingest(event_store, records, batch_size=batch_size)
            else:
                with Progress(console=console, transient=True) as bar:
                    task = bar.add_task("ingesting", total=len(records))
                    summary = ingest(
                        event_store,
                        records,
                        batch_size=batch_size,
                        progress=lambda done: bar.update(task, completed=done),
                    )
        if json:
            emit_json(summary)
        else:
            console.print(ingest_table(summary, f"Ingested {len(paths)} input(s)"))

    guarded(run)


def log_command(
    after: Annotated[int, typer.Option("--after", min=0, help="Start after this position.")] = 0,
    to: Annotated[
        int | None, typer.Option("--to", min=0, help="Stop at this position (inclusive).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Print at most this many events.")
    ] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Print events in position order (--json: one JSON object per line)."""

    def run() -> None:
        with opened_store(store) as event_store:
            for recorded in islice(event_store.iter_events(after=after, to=to), limit):
                if json:
                    emit_json({"position": recorded.position, **event_to_dict(recorded.event)})
                else:
                    console.print(event_line(recorded), highlight=False, soft_wrap=True)

    guarded(run)


@parked_app.command("list")
def parked_list(store: StoreOption = None, json: JsonOption = False) -> None:
    """Show the records still parked, with why and where each was read."""

    def run() -> None:
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

    guarded(run)


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

    def run() -> None:
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

    guarded(run)


def schema_command(
    json: JsonOption = True,
) -> None:
    """Print the JSON Schema of the event union (always JSON)."""
    guarded(lambda: emit_json(json_schema()))


def status_command(
    chroma: Annotated[
        Path | None,
        typer.Option("--chroma", help="Also show this snapshot directory's checkpoint and lag."),
    ] = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Show the log head, parked records and (with --chroma) a snapshot's checkpoint and lag."""

    def run() -> None:
        with opened_store(store) as event_store:
            head = event_store.head()
            parked = len(event_store.parked_records())
            url = event_store.url
        document: dict[str, object] = {
            "store": url,
            "head": head,
            "parked": parked,
            "checkpoint": None,
            "lag": None,
        }
        if chroma is not None:
            from receipt_events.cli.projection_commands import chroma_status

            document.update(chroma_status(chroma, head))
        if json:
            emit_json(document)
            return
        lines = [f"store          {url}", f"head           {head}", f"parked         {parked}"]
        if chroma is not None:
            lines += [
                f"snapshot       {chroma}",
                f"checkpoint     {document['checkpoint']}",
                f"lag            {document['lag']}",
                f"records        {document['records']}",
            ]
            if document["inflight_to"] is not None:
                lines.append(f"in flight to   {document['inflight_to']} (run project to finish)")
            for parked_delta in document["parked_deltas"]:  # type: ignore[attr-defined]
                lines.append(
                    f"parked delta   run {parked_delta['run_id']} {parked_delta['collection']} "
                    f"at {parked_delta['position']}: {parked_delta['error']}"
                )
        console.print("\n".join(lines), highlight=False)

    guarded(run)


def generate_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Write the JSON Lines here ('-' = stdout).")
    ],
    receipts: Annotated[int, typer.Option("--receipts", min=1, help="Receipts to simulate.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same history.")] = 0,
    corrupt: Annotated[
        int, typer.Option("--corrupt", min=0, help="Malformed records to mix in.")
    ] = 0,
    json: JsonOption = False,
) -> None:
    """Write a seeded synthetic stream history (as AWS emits it) as JSON Lines."""

    def run() -> None:
        from receipt_events.synthetic import (
            HistoryConfig,
            corrupt_lines,
            generate_history,
            to_jsonl,
        )

        history = generate_history(HistoryConfig(seed=seed, receipts=receipts))
        data = to_jsonl(history.records)
        if corrupt:
            data = corrupt_lines(data, corrupt, seed)
        if str(out) == "-":
            sys.stdout.buffer.write(data)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        lines = data.count(b"\n")
        if json:
            emit_json({"path": str(out), "records": lines, "runs": len(history.runs)})
        else:
            console.print(f"wrote {lines} records ({len(history.runs)} compaction runs) to {out}")

    guarded(run)
