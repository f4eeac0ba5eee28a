"""Fixtures for snapshot tests: a small log, snapshot directories at chosen positions, stores.

Every store and compaction test runs on both backends (``local`` and ``s3``; see
:mod:`tests.support.snapshot_site`). The ``s3`` cases use the AWS fixtures of
``tests/conftest.py``: without the services they are skipped, except under ``CI=true``, where
they fail (CI never passes by skipping them).

Leases run on a :class:`~tests.support.clock.FakeClock` that only moves when a test moves it,
so a lease expires exactly when the test says. ``site`` hands out fresh handles on the same
store and lease (each with its own client, as separate processes would have), and reads a
lease's stored record directly, without the code under test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from receipt_chroma.lease import DynamoDBLeases, FileLeases, Leases
from receipt_chroma.snapshots import SnapshotStore, open_snapshot_store
from receipt_events.store import EventStore, open_store
from tests.projection.helpers import Log
from tests.support.clock import FakeClock
from tests.support.lease_records import DynamoDBLeaseRecords, FileLeaseRecords
from tests.support.snapshot_history import History
from tests.support.snapshot_site import BACKENDS, Site


@pytest.fixture
def event_store() -> Iterator[EventStore]:
    store = open_store(f"memory://snapshots-{uuid.uuid4().hex}")
    yield store
    store.close()


@pytest.fixture
def log(event_store: EventStore) -> Log:
    return Log(event_store)


@pytest.fixture
def history(log: Log, tmp_path: Path) -> History:
    return History(log, tmp_path / "directories")


@pytest.fixture(params=BACKENDS)
def snapshots(request: pytest.FixtureRequest, tmp_path: Path) -> SnapshotStore:
    """An empty snapshot store on each backend."""
    if request.param == "s3":
        bucket: str = request.getfixturevalue("s3_bucket")
        return open_snapshot_store(f"s3://{bucket}/snapshots")
    return open_snapshot_store(str(tmp_path / "store"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.25)  # a fraction, so a rounding would show


@pytest.fixture
def site(
    request: pytest.FixtureRequest, snapshots: SnapshotStore, clock: FakeClock, tmp_path: Path
) -> Site:
    """The ``snapshots`` store's backend, with its lease: DynamoDB Local for S3, files locally."""
    if snapshots.url.startswith("s3://"):
        table: str = request.getfixturevalue("lock_table")
        return Site(
            "s3",
            snapshots.url,
            clock,
            lambda: DynamoDBLeases(table, client=boto3.client("dynamodb"), clock=clock),
            DynamoDBLeaseRecords(boto3.client("dynamodb"), table),
        )
    root = tmp_path / "locks"
    return Site(
        "local",
        snapshots.url,
        clock,
        lambda: FileLeases(root, clock=clock),
        FileLeaseRecords(root),
    )


@pytest.fixture
def locks(site: Site) -> Leases:
    """The publish lease of the ``snapshots`` store."""
    return site.locks()
