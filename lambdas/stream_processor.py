"""Lambda: DynamoDB stream batch → idempotent append to the event store.

Routing and failure reporting only; parsing, detection and appending are ``receipt_events``.
Bad records are parked (the shard never blocks on a poison record). If the store fails, the
lowest SequenceNumber not durably stored is reported as the batch item failure, so Lambda
retries from there; anything already stored is a harmless duplicate on the retry. Imports no
chromadb: this function ships as a small zip.
"""

from __future__ import annotations

import os
from typing import Any

from lambdas.invocation import Invocation, batch_item_failures
from lambdas.wakeup import WAKE_QUEUE_ENV, send_wakeup
from lambdas.warm_store import WarmStore
from receipt_events.ingest import IngestInterrupted, ingest, lowest_unstored_sequence
from receipt_events.records import records_from_lambda_event
from receipt_events.store import STORE_ENV

FUNCTION = "stream_processor"
_store = WarmStore()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    invocation = Invocation(FUNCTION, context)
    records = records_from_lambda_event(event)
    try:
        summary = ingest(_store.get(os.environ.get(STORE_ENV)), records)
    except Exception as error:  # the store failed (IngestInterrupted) or could not be opened
        stored = error.stored_through if isinstance(error, IngestInterrupted) else 0
        _store.drop()
        failed = lowest_unstored_sequence(records, stored)
        invocation.report(
            "ERROR",
            "event store failed",
            {"StoreFailures": 1, "RecordsNotStored": len(records) - stored},
            timed=False,
            error=str(error),
            records=len(records),
            stored=stored,
            retry_from=failed,
        )
        if failed is None:
            raise  # nothing identifiable to retry from: fail the whole batch
        return batch_item_failures([failed])
    queue = os.environ.get(WAKE_QUEUE_ENV)
    wake_error = send_wakeup(queue, summary.head) if summary.appended and queue else None
    invocation.report(
        "INFO",
        "batch ingested",
        {
            "Records": summary.records,
            "Appended": summary.appended,
            "Duplicates": summary.duplicates,
            "Parked": summary.parked,
            "Skipped": summary.skipped,
            "Unchanged": summary.unchanged,
            "WakeupFailures": int(wake_error is not None),
        },
        records=summary.records,
        appended=summary.appended,
        duplicates=summary.duplicates,
        parked=summary.parked,
        skipped=summary.skipped,
        unchanged=summary.unchanged,
        head=summary.head,
        wake_error=wake_error,
    )
    return batch_item_failures([])
