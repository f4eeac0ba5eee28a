"""One call that adopts a table: pick the row source, check the stream, run the backfill.

The command line (and any service) calls :func:`run_backfill`; everything it needs from AWS
comes through the standard environment (``AWS_REGION``, ``AWS_ENDPOINT_URL_DYNAMODB``, …) or
clients passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from receipt_events.backfill.barrier import Barrier
from receipt_events.backfill.errors import BackfillError, StreamNotReady
from receipt_events.backfill.run import BackfillSummary, DeltaCheck, Progress, backfill
from receipt_events.backfill.sources import EXPORT_FUZZ_SECONDS, RowSource, ScanSource
from receipt_events.backfill.table import check_stream
from receipt_events.backfill.touch import Toucher
from receipt_events.events import EmbeddingsAdopted
from receipt_events.store import EventStore

DEFAULT_SEGMENTS = 4
DEFAULT_SETTLE_SECONDS = 30.0


class BackfillOptions(msgspec.Struct, kw_only=True):
    table: str | None = None
    export: str | None = None
    segments: int = DEFAULT_SEGMENTS
    settle: float = DEFAULT_SETTLE_SECONDS
    page_rows: int | None = None  # Scan's Limit (tests use small pages to have many)
    export_fuzz: float = EXPORT_FUZZ_SECONDS  # how far an export's point in time is fuzzy
    touch: bool = False  # the exact mode: touch items instead of appending them


def run_backfill(
    store: EventStore,
    options: BackfillOptions,
    *,
    delta_check: DeltaCheck | None = None,
    on_progress: Progress | None = None,
    dynamodb: Any | None = None,
    s3: Any | None = None,
    baseline: Callable[[str], EmbeddingsAdopted] | None = None,
) -> BackfillSummary:
    """Adopt the table's current rows into ``store`` (SPEC §11).

    ``baseline``, given the table's name, makes the embeddings baseline event (the command
    line passes one that copies the old system's snapshot); it is appended before the runs.
    """
    if options.table is None and options.export is None:
        raise BackfillError("say where the rows come from: --table NAME or --export URL")
    if dynamodb is None:
        import boto3

        dynamodb = boto3.client("dynamodb")
    source = _source(options, dynamodb, s3)
    facts = check_stream(dynamodb, source.table)
    if options.export is not None:
        _check_stream_before_export(facts.stream_label, source)
    adopted = baseline(source.table) if baseline is not None else None
    stamp = f"{source.job}#{time.time_ns()}"  # differs from any earlier touch's value
    return backfill(
        store,
        source,
        Barrier(dynamodb, source.table, store, job=source.job, settle=options.settle),
        delta_check=delta_check,
        on_progress=on_progress,
        baseline=adopted,
        toucher=Toucher(dynamodb, source.table, stamp) if options.touch else None,
        expected_rows=source.expected_rows
        if source.expected_rows is not None
        else facts.item_count,
    )


def _source(options: BackfillOptions, dynamodb: Any, s3: Any | None) -> RowSource:
    if options.export is not None:
        from receipt_events.backfill.export_source import ExportSource

        return ExportSource.open(
            options.export, table=options.table, s3_client=s3, fuzz=options.export_fuzz
        )
    assert options.table is not None
    return ScanSource(
        dynamodb, options.table, segments=options.segments, page_rows=options.page_rows
    )


def _check_stream_before_export(stream_label: str | None, source: Any) -> None:
    """An export adopts the state at its point in time; the stream must carry what followed.

    The stream's label is the time it was enabled (ISO 8601, UTC); if that is after the export's
    point in time, changes made in between are in neither, so the export cannot be used.
    """
    if stream_label is None:
        return
    try:
        enabled = datetime.fromisoformat(stream_label)
    except ValueError:
        return  # not a time: nothing to compare
    if enabled.tzinfo is None:
        enabled = enabled.replace(tzinfo=UTC)
    exported = datetime.fromtimestamp(source.manifest.export_time, UTC)
    if enabled > exported:
        raise StreamNotReady(
            f"the stream of {source.table!r} was enabled at {enabled.isoformat()}, after the "
            f"export's point in time ({exported.isoformat()}): changes made in between are in "
            "neither; export the table again (or backfill with --table, a Scan)"
        )
