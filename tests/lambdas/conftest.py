"""Fixtures for the Lambda end-to-end suite: one small receipts history, played through AWS.

``pipeline`` gives a test everything a deployment has, all over HTTP: the receipts table with
its stream on DynamoDB Local, the bucket (deltas and snapshots) and the wake-up queue on moto,
the lock table on DynamoDB Local, the event store in its own PostgreSQL schema (or, for a test
that parametrises ``pipeline`` indirectly with ``"dynamodb"``, in a store table of its own on
DynamoDB Local: ``STORES``), and the functions' environment (``RECEIPT_EVENTS_*``) set as
the template sets it. Nothing is written yet: a test writes the history (all of it or in
parts), uploads the deltas, and drives the handlers itself.

Every test starts with cold "containers": the handlers' module-level store is dropped before
and after each test (a real container never sees its environment change; these tests do).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import lambdas.projector
import lambdas.stream_processor
from receipt_events.store import EventStore
from synthetic.history import generate_history
from tests.aws.harness import AwsEnv
from tests.support.lambda_pipeline import (
    STORES,
    STREAM_BATCH,
    Pipeline,
    clean_ingest,
    history_config,
)
from tests.support.receipt_table import ReceiptTable
from tests.support.stream_reader import StreamReader
from tests.support.wake_queue import WakeQueue
from tests.support.warm_store import drop_warm_store


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


@pytest.fixture
def pipeline(
    request: pytest.FixtureRequest,
    aws_env: AwsEnv,
    s3_bucket: str,
    lock_table: str,
    dynamodb_client: Any,
    postgres_url: str,
    tmp_path: Path,
    local_deltas: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Pipeline]:
    store_url = postgres_url  # the event store: PostgreSQL unless parametrised otherwise
    backend = getattr(request, "param", "postgres")
    assert backend in STORES, f"no event store {backend!r} for the pipeline; one of {STORES}"
    if backend == "dynamodb":
        store_url = str(request.getfixturevalue("dynamodb_url"))
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
        store_url=store_url,
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
        RECEIPT_EVENTS_STORE=store_url,
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
