"""Everything a deployment of the two Lambda functions has, over HTTP, for one test.

The receipts table with its stream on DynamoDB Local, the bucket (deltas and snapshots) and
the wake-up queue on moto, the lease table on DynamoDB Local, the event store (in its own
PostgreSQL schema, or a store table of its own on DynamoDB Local), and the functions'
environment (``RECEIPT_EVENTS_*``). The ``pipeline`` fixture (``tests/lambdas/conftest.py``)
builds one; a test writes the history (all of it or in parts), uploads the deltas, and drives
the handlers itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import lambdas.projector
import lambdas.stream_processor
from receipt_events.ingest import ingest
from receipt_events.records import records_from_lambda_event
from receipt_events.store import EventStore, open_store
from synthetic.history import History, HistoryConfig
from tests.aws.harness import AwsEnv
from tests.support.lambda_context import LambdaContext
from tests.support.receipt_table import ReceiptTable
from tests.support.s3_deltas import upload_deltas, write_local_deltas
from tests.support.stream_reader import Delivery, StreamReader
from tests.support.wake_queue import WakeQueue

SEED = 7  # chosen to hold every case the tests look for (each test asserts what it needs)
DIMENSION = 32
STREAM_BATCH = 25  # GetRecords Limit: the ESM's batch size
# The event stores a pipeline runs on (PostgreSQL unless a test says otherwise):
# @pytest.mark.parametrize("pipeline", STORES, indirect=True)
STORES = ["postgres", "dynamodb"]


def history_config(seed: int = SEED, *, delta_root: str = "deltas") -> HistoryConfig:
    """The small receipts history the Lambda tests play."""
    return HistoryConfig(
        seed=seed,
        receipts=4,
        lines_per_receipt=(3, 5),
        words_per_line=(1, 3),
        letters_per_word=(0, 1),
        removal_rate=0.3,
        delta_root=delta_root,
    )


@dataclass
class Pipeline:
    """One deployment's resources and environment, and the event source mappings' parts."""

    aws: AwsEnv
    bucket: str
    store_url: str
    lock_table: str
    cache: Path
    history: History
    table: ReceiptTable
    reader: StreamReader
    queue: WakeQueue
    local_deltas: Path
    monkeypatch: pytest.MonkeyPatch
    _stores: list[EventStore] = field(default_factory=list)

    @property
    def snapshots_url(self) -> str:
        return f"s3://{self.bucket}/snapshots"

    @property
    def deltas_url(self) -> str:
        return f"s3://{self.bucket}"

    def env(self, **overrides: str | None) -> None:
        """Set the functions' environment (None removes a variable)."""
        for name, value in overrides.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)

    def write(self, start: int = 0, stop: int | None = None) -> int:
        """The app's writes for ``history.records[start:stop]`` (deltas uploaded first)."""
        stop = len(self.history.records) if stop is None else stop
        run_ids = {
            r["dynamodb"]["NewImage"]["run_id"]["S"]
            for r, intent in zip(
                self.history.records[start:stop], self.history.intents[start:stop], strict=True
            )
            if intent == "run_insert"
        }
        runs = [run for run in self.history.runs if run.run_id in run_ids]
        written = write_local_deltas(
            self.history.runs,
            self.local_deltas,
            dimension=DIMENSION,
            layout_of=lambda index: "tarball" if index % 2 else "directory",
        )
        # an embedding run writes its deltas before its run item
        upload_deltas(self.aws.client("s3"), runs, written)
        return self.table.write(self.history, start, stop)

    def deliver(self, **kwargs: Any) -> list[Delivery]:
        """Every unread stream batch to the stream processor, as the ESM would."""
        return self.reader.deliver(lambdas.stream_processor.handler, **kwargs)

    def project(self, event: dict[str, Any]) -> Any:
        """One projector invocation; the SQS messages it handled are deleted, as the ESM does."""
        response = lambdas.projector.handler(event, LambdaContext("projector"))
        if event.get("Records"):
            self.queue.settle(event, response)
        return response

    def store(self) -> EventStore:
        """The event store, opened once by the test (not the handlers' copy)."""
        if not self._stores:
            self._stores.append(open_store(self.store_url))
        return self._stores[0]

    def stream_records(self) -> list[dict[str, Any]]:
        """Every record of the stream so far, read with a fresh iterator (the ESM's shape)."""
        reader = StreamReader(
            self.aws.client("dynamodbstreams"),
            self.table.stream_arn,
            region=self.aws.region,
            limit=1000,
        )
        return [record for event in reader.events() for record in event["Records"]]

    def close(self) -> None:
        for store in self._stores:
            store.close()


def clean_ingest(records: list[dict[str, Any]], url: str) -> EventStore:
    """The same records ingested in one go into another store: the reference log."""
    store = open_store(url)
    ingest(store, records_from_lambda_event({"Records": records}))
    return store
