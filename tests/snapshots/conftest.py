"""Fixtures for snapshot tests: a small log, snapshot directories at chosen positions, stores."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from receipt_chroma.snapshots import SnapshotStore, open_snapshot_store
from receipt_events.store import EventStore, open_store
from tests.projection.helpers import Log, project


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


@pytest.fixture(params=["local"])
def snapshots(request: pytest.FixtureRequest, tmp_path: Path) -> SnapshotStore:
    """An empty snapshot store on each backend."""
    return open_snapshot_store(str(tmp_path / "store"))
