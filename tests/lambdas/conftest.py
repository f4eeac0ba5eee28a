"""Fixtures for the Lambda end-to-end suite: one small receipts history, played through AWS.

``pipeline`` gives a test everything a deployment has, all over HTTP: the receipts table with
its stream on DynamoDB Local, the bucket (deltas and snapshots) and the wake-up queue on moto,
the lock table on DynamoDB Local, the event store in its own PostgreSQL schema, and the
functions' environment (``RECEIPT_EVENTS_*``) set as the template sets it. Nothing is written
yet: a test writes the history (all of it or in parts), uploads the deltas, and drives the
handlers itself.

Every test starts with cold "containers": the handlers' module-level store is dropped before
and after each test (a real container never sees its environment change; these tests do).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import lambdas.projector
import lambdas.stream_processor
from receipt_events.ingest import ingest
from receipt_events.records import records_from_lambda_event
from receipt_events.store import EventStore, open_store
from synthetic.history import History, HistoryConfig, generate_history
from tests.aws.harness import AwsEnv
from tests.lambdas.harness import (
    Delivery,
    LambdaContext,
    ReceiptTable,
    StreamReader,
    WakeQueue,
    upload_deltas,
    write_local_deltas,
)

SEED = 7  # chosen to hold every case the tests look for (each test asserts what it needs)
DIMENSION = 32
STREAM_BATCH = 25  # GetRecords Limit: the ESM's batch size


def history_config(seed: int = SEED, *, delta_root: str = "deltas") -> HistoryConfig:
    return HistoryConfig(
        seed=seed,
        receipts=4,
        lines_per_receipt=(3, 5),
        words_per_line=(1, 3),
        letters_per_word=(0, 1),
        removal_rate=0.3,
        delta_root=delta_root,
    )


def drop_warm_store(module: Any) -> None:
    """Forget the store a handler module keeps across warm invocations."""
    drop = getattr(getattr(module, "_store", None), "drop", None)
    if callable(drop):
        drop()
    elif hasattr(module, "_drop_store"):
        module._drop_store()


@pytest.fixture(autouse=True)
def cold_containers() -> Iterator[None]:
    """No warm store left from another test (another schema) in either handler module."""
    for module in (lambdas.stream_processor, lambdas.projector):
        drop_warm_store(module)
    yield
    for module in (lambdas.stream_processor, lambdas.projector):
        drop_warm_store(module)


@pytest.fixture(scope="session")
def local_deltas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Deltas written once per session (a run's content does not depend on the bucket)."""
    return tmp_path_factory.mktemp("deltas")


@dataclass
class Pipeline:
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


@pytest.fixture
def pipeline(
    aws_env: AwsEnv,
    s3_bucket: str,
    lock_table: str,
    dynamodb_client: Any,
    postgres_url: str,
    tmp_path: Path,
    local_deltas: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Pipeline]:
    history = generate_history(history_config(delta_root=f"s3://{s3_bucket}/deltas"))
    table = ReceiptTable.create(dynamodb_client, f"receipts-{uuid.uuid4().hex[:8]}")
    reader = StreamReader(
        aws_env.client("dynamodbstreams"),
        table.stream_arn,
        region=aws_env.region,
        limit=STREAM_BATCH,
    )
    queue = WakeQueue(aws_env.client("sqs"), f"wake-{uuid.uuid4().hex[:8]}", region=aws_env.region)
    built = Pipeline(
        aws=aws_env,
        bucket=s3_bucket,
        store_url=postgres_url,
        lock_table=lock_table,
        cache=tmp_path / "lambda-tmp" / "snapshot",
        history=history,
        table=table,
        reader=reader,
        queue=queue,
        local_deltas=local_deltas,
        monkeypatch=monkeypatch,
    )
    built.env(
        RECEIPT_EVENTS_STORE=postgres_url,
        RECEIPT_EVENTS_WAKE_QUEUE=queue.url,
        RECEIPT_EVENTS_SNAPSHOTS=built.snapshots_url,
        RECEIPT_EVENTS_LEASE_TABLE=lock_table,
        RECEIPT_EVENTS_DELTAS=built.deltas_url,
        RECEIPT_EVENTS_CACHE=str(built.cache),
        RECEIPT_EVENTS_PUBLISH_EVERY_EVENTS=None,
        RECEIPT_EVENTS_PUBLISH_EVERY_SECONDS=None,
        RECEIPT_EVENTS_LEASE_TTL=None,
        RECEIPT_EVENTS_KEEP=None,
    )
    yield built
    built.close()


@pytest.fixture
def other_store(
    new_postgres_schema: Callable[[], str], postgres_server: str
) -> Iterator[Callable[[list[dict[str, Any]]], EventStore]]:
    """Ingest records cleanly into a fresh PostgreSQL schema of their own (the reference)."""
    opened: list[EventStore] = []

    def make(records: list[dict[str, Any]]) -> EventStore:
        store = clean_ingest(records, f"{postgres_server}?schema={new_postgres_schema()}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
