"""``backfill``: adopt an existing table's current state into the log (SPEC §11).

The work is the library's (:func:`receipt_events.backfill.adopt.run_backfill`); this module
reads the options, shows progress, and prints the summary.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from projections.cli.options import DeltasOption
from receipt_events.cli.errors import fail
from receipt_events.cli.options import JsonOption, StoreOption, opened_store
from receipt_events.cli.output import console, emit_json, error_console

EXIT_INTERRUPTED = 130

TableOption = Annotated[
    str | None,
    typer.Option(
        "--table",
        help="The DynamoDB table to adopt (read by a consistent parallel Scan), or, with "
        "--export, the table whose stream the log follows (default: the export's table).",
    ),
]
ExportOption = Annotated[
    str | None,
    typer.Option(
        "--export",
        help="Read the rows from a DynamoDB export to S3 instead of a Scan (no read "
        "capacity): s3://BUCKET/PREFIX/AWSDynamoDB/<ExportId>/ or a local copy of it.",
    ),
]
SegmentsOption = Annotated[
    int, typer.Option("--segments", min=1, max=1_000_000, help="Parallel Scan segments.")
]
SettleOption = Annotated[
    float,
    typer.Option(
        "--settle",
        min=0.0,
        help="Seconds the stream processor may lag behind the table (on every shard). Rows "
        "read at time T are decided once the processor has ingested a marker written after "
        "T and T + SETTLE has passed; a marker not ingested within SETTLE stops the backfill.",
    ),
]
PageRowsOption = Annotated[
    int | None,
    typer.Option("--page-rows", min=1, hidden=True, help="Scan Limit (rows per page)."),
]
EmbeddingsOption = Annotated[
    str | None,
    typer.Option(
        "--embeddings",
        help="Adopt the old system's Chroma snapshot as the embeddings baseline: a Chroma "
        "directory (lines and/or words), or the old layout <collection>/snapshot/"
        "latest-pointer.txt under a directory or s3://BUCKET/PREFIX. Copied once under "
        "--deltas (baseline/<digest>/) and appended before the compaction runs.",
    ),
]
TouchOption = Annotated[
    bool,
    typer.Option(
        "--touch",
        help="The exact mode: instead of appending a place or label, touch its item in the "
        "table (one write per item the log lacks) so its own stream record brings its state, "
        "with no timing assumption (compaction runs are still appended, behind one barrier). "
        "Costs a write per item and wakes every other consumer of the stream.",
    ),
]
ProgressOption = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show a progress line on a terminal.")
]


def backfill_command(
    table: TableOption = None,
    export: ExportOption = None,
    segments: SegmentsOption = 4,
    settle: SettleOption = 30.0,
    embeddings: EmbeddingsOption = None,
    touch: TouchOption = False,
    deltas: DeltasOption = ".",
    page_rows: PageRowsOption = None,
    store: StoreOption = None,
    json: JsonOption = False,
    progress: ProgressOption = True,
) -> None:
    """Adopt a table the stream never carried: its current places, labels and compaction runs
    become events, while the table keeps taking writes and the stream keeps being ingested.

    Run it after the stream processor is deployed on the table's stream (NEW_AND_OLD_IMAGES).
    A row lands only if the log holds no event for its item, decided behind a barrier (marker
    items under PK RECEIPT_EVENTS#BACKFILL, which the stream processor records), so a
    backfilled value never follows a newer streamed change. Ctrl-C, then run it again: it
    continues from its checkpoint in the store. Running it after it finished appends nothing
    the log already holds. See docs/backfill.md.
    """
    from projections.baseline import adopt_baseline
    from receipt_chroma.deltas import DeltaSources
    from receipt_events.backfill.adopt import BackfillOptions, run_backfill
    from receipt_events.backfill.run import BackfillSummary

    if table is None and export is None:
        fail("say which rows to adopt: --table NAME (a Scan) or --export URL (an export)")
    options = BackfillOptions(
        table=table,
        export=export,
        segments=segments,
        settle=settle,
        page_rows=page_rows,
        touch=touch,
    )
    sources = DeltaSources(deltas)
    started = time.monotonic()
    with opened_store(store) as event_store, _ProgressLine(progress and not json) as show:
        try:
            summary: BackfillSummary = run_backfill(
                event_store,
                options,
                delta_check=sources.absent,
                on_progress=show,
                baseline=(
                    (lambda name: adopt_baseline(embeddings, deltas, table=name))
                    if embeddings is not None
                    else None
                ),
            )
        except KeyboardInterrupt:
            error_console.print(
                "interrupted: every page decided so far is checkpointed; run the same "
                "backfill again to continue"
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
    elapsed = time.monotonic() - started
    document: dict[str, Any] = {
        "read": summary.read,
        "appended": summary.appended,
        "superseded": summary.superseded,
        "skipped": summary.skipped,
        "skipped_by_kind": dict(sorted(summary.skipped_by_kind.items())),
        "parked": summary.parked,
        "runs_appended": summary.runs_appended,
        "touched": summary.touched,
        "head": summary.head,
        "job": summary.job,
        "pass": summary.run,
        "resumed": summary.resumed,
        "settle_s": round(summary.settle_s, 3),
        "baseline": summary.baseline,
        "seconds": round(elapsed, 3),
    }
    if json:
        emit_json(document)
        return
    console.print(
        f"backfill {summary.job} (pass {summary.run}{', resumed' if summary.resumed else ''}): "
        f"read {summary.read} rows, appended {summary.appended} events "
        f"({summary.runs_appended} compaction runs), "
        + (f"touched {summary.touched} items, " if touch else "")
        + f"superseded {summary.superseded}, skipped {summary.skipped}, "
        f"parked {summary.parked}; log head {summary.head}"
    )
    if summary.baseline is not None:
        console.print(f"embeddings baseline {embeddings}: {summary.baseline}")
    if summary.parked:
        console.print("see `receipt-events parked list` for the parked rows and why")


class _ProgressLine:
    """A progress bar on a terminal: rows read of about how many, rows/s, what it waits for."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled and console.is_terminal
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self._enabled:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("backfill"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[waiting]}"),
            console=console,
            transient=True,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("backfill", total=None, rate="0", waiting="")
        return self.show

    def show(self, summary: Any, waiting: str | None) -> None:
        task = self._bar.tasks[0]
        elapsed = task.elapsed or 0.0
        rate = summary.read / elapsed if elapsed > 0 else 0.0
        self._bar.update(
            self._task,
            completed=summary.read,
            total=max(summary.expected_rows or 0, summary.read) or None,
            rate=f"{rate:,.0f}",
            waiting=waiting or "",
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
