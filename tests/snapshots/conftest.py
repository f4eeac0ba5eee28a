"""Fixtures for snapshot tests: a small log, snapshot directories at chosen positions, stores.

Every store and compaction test runs on both backends:

* ``local``: a snapshot store in a directory, its lock a :class:`FileLeases` beside it;
* ``s3``: a snapshot store at ``s3://<fresh bucket>/snapshots`` on the moto server (over
  HTTP), its lock a :class:`DynamoDBLeases` item in a fresh table on DynamoDB Local.

The ``s3`` cases use the AWS fixtures of ``tests/conftest.py``: without the services they are
skipped, except under ``CI=true``, where they fail (CI never passes by skipping them).

Leases run on a :class:`Clock` that only moves when a test moves it, so a lease expires exactly
when the test says. :class:`Site` hands out fresh handles on the same store and lock (each
with its own client, as separate processes would have), and reads a lock's stored record
directly, without the code under test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from receipt_chroma.lease import DynamoDBLeases, FileLeases, Leases
from receipt_chroma.snapshots import SnapshotStore, open_snapshot_store
from receipt_events.store import EventStore, open_store
from tests.projection.helpers import Log, project

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.aws)]


@pytest.fixture
def event_store() -> Iterator[EventStore]:
    store = open_store(f"memory://snapshots-{uuid.uuid4().hex}")
    yield store
    store.close()


@pytest.fixture
def log(event_store: EventStore) -> Log:
    return Log(event_store)


class History:
    """A few receipts' events, and snapshot directories projected to chosen positions."""

    def __init__(self, log: Log, root: Path) -> None:
        self.log = log
        self.root = root
        first = log.add(
            log.run(
                "run-1", lines={1: "TOTAL", 2: "CASH"}, words={(1, 1): "TOTAL", (2, 1): "CASH"}
            ),
            log.place(merchant_name="Corner Shop"),
        )
        second = log.add(log.label(1, 1, "GRAND_TOTAL", "PENDING"))
        third = log.add(log.label(1, 1, "GRAND_TOTAL", "VALID"), log.place(merchant_name="Corner"))
        fourth = log.add(
            log.run("run-2", words={(1, 2): "12.50"}),
            log.label(1, 2, "LINE_TOTAL", "VALID"),
        )
        self.positions = [first[-1], second[-1], third[-1], fourth[-1]]
        log.add(log.label(2, 1, "PAYMENT", "INVALID"), log.unplace())  # a tail past them all

    def snapshot_at(self, position: int) -> Path:
        path = self.root / f"at-{position}"
        if not path.exists():
            project(self.log.store, path, self.log.deltas, to=position)
        return path


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


class Clock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.25  # a fraction, so a rounding would show

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class LockRecord:
    """A lock's stored record, read directly: owner (None once released), token, expiry."""

    owner: str | None
    token: int
    expires_at: float


@dataclass
class Site:
    """One backend's snapshot store and publish lock, with handles made as other processes
    would make them."""

    backend: str
    url: str
    clock: Clock
    _new_locks: Callable[[], Leases]
    _raw: Callable[[str], LockRecord | None]

    def store(self) -> SnapshotStore:
        """A fresh handle on the store (on S3: its own client)."""
        return open_snapshot_store(self.url)

    def locks(self) -> Leases:
        """A fresh handle on the lock (on DynamoDB: its own client), on the test's clock."""
        return self._new_locks()

    def lock_record(self, name: str) -> LockRecord | None:
        return self._raw(name)


@pytest.fixture
def site(
    request: pytest.FixtureRequest, snapshots: SnapshotStore, clock: Clock, tmp_path: Path
) -> Site:
    """The ``snapshots`` store's backend, with its lock: DynamoDB Local for S3, files locally."""
    if snapshots.url.startswith("s3://"):
        table: str = request.getfixturevalue("lock_table")
        admin = boto3.client("dynamodb")

        def dynamodb_record(name: str) -> LockRecord | None:
            item: dict[str, Any] | None = admin.get_item(
                TableName=table, Key={"lock_id": {"S": name}}, ConsistentRead=True
            ).get("Item")
            if item is None:
                return None
            return LockRecord(
                item["owner"]["S"] if "owner" in item else None,
                int(item["token"]["N"]),
                float(item["expires_at"]["N"]),
            )

        return Site(
            "s3",
            snapshots.url,
            clock,
            lambda: DynamoDBLeases(table, client=boto3.client("dynamodb"), clock=clock),
            dynamodb_record,
        )

    root = tmp_path / "locks"

    def file_record(name: str) -> LockRecord | None:
        path = FileLeases(root).state_path(name)
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        return LockRecord(state.get("owner"), int(state["token"]), float(state["expires_at"]))

    return Site("local", snapshots.url, clock, lambda: FileLeases(root, clock=clock), file_record)


@pytest.fixture
def locks(site: Site) -> Leases:
    """The publish lock of the ``snapshots`` store."""
    return site.locks()
