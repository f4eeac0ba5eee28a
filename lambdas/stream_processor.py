"""Lambda: DynamoDB stream batch → idempotent append to the event store.

Routing and failure reporting only; parsing, detection and appending are ``receipt_events``.
Bad records are parked (the shard never blocks on a poison record). If the store fails, the
lowest SequenceNumber not durably stored is reported as the batch item failure, so Lambda
retries from there; anything already stored is a harmless duplicate on the retry. Imports no
chromadb: this function ships as a small zip.
"""

from __future__ import annotations

import os
import time
from typing import Any

from receipt_events.ingest import IngestInterrupted, ingest, lowest_unstored_sequence
from receipt_events.observability import emit_metrics, log
from receipt_events.records import records_from_lambda_event
from receipt_events.store.cached import CachedStore
from receipt_events.wakeup import WAKE_QUEUE_ENV, send_wakeup

FUNCTION = "stream_processor"
_store = CachedStore()  # kept across warm invocations


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.monotonic()
    records = records_from_lambda_event(event)
    request = getattr(context, "aws_request_id", None)
    try:
        summary = ingest(_store.get(os.environ.get("RECEIPT_EVENTS_STORE")), records)
    except Exception as error:  # the store failed (IngestInterrupted) or could not be opened
        stored = error.stored_through if isinstance(error, IngestInterrupted) else 0
        _store.drop()
        failed = lowest_unstored_sequence(records, stored)
        log(
            "ERROR",
            "event store failed",
            request_id=request,
            error=str(error),
            records=len(records),
            stored=stored,
            retry_from=failed,
        )
        emit_metrics(FUNCTION, {"StoreFailures": 1, "RecordsNotStored": len(records) - stored})
        if failed is None:
            raise  # nothing identifiable to retry from: fail the whole batch
        return {"batchItemFailures": [{"itemIdentifier": failed}]}
    wake_error = None
    queue = os.environ.get(WAKE_QUEUE_ENV)
    if summary.appended and queue:
        wake_error = send_wakeup(queue, summary.head)
    seconds = time.monotonic() - started
    log(
        "INFO",
        "batch ingested",
        request_id=request,
        records=summary.records,
        appended=summary.appended,
        duplicates=summary.duplicates,
        parked=summary.parked,
        skipped=summary.skipped,
        unchanged=summary.unchanged,
        head=summary.head,
        wake_error=wake_error,
    )
    emit_metrics(
        FUNCTION,
        {
            "Records": summary.records,
            "Appended": summary.appended,
            "Duplicates": summary.duplicates,
            "Parked": summary.parked,
            "Skipped": summary.skipped,
            "Unchanged": summary.unchanged,
            "WakeupFailures": int(wake_error is not None),
            "Duration": round(seconds * 1000, 1),
        },
        units={"Duration": "Milliseconds"},
    )
    return {"batchItemFailures": []}
