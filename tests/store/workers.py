"""Code run in child processes by the concurrency tests (importable under "spawn").

Nothing here opens a store at import time: each child opens its own, after it has started.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from receipt_events.events import Event
from receipt_events.store import open_store
from tests.store.helpers import event_ids, numbered


class AppendPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What one appender appends: its own events in batches, some mixed with another's
    (``other``: the next appender, so every appender's events are raced for)."""

    token: str  # unique per test run, so event ids never collide with another run's
    worker: str
    other: str
    count: int = 2000
    batch_size: int = 50
    overlap_every: int = 2  # every this many batches, also append ...
    overlap: int = 20  # ... this many of the other worker's events from the same batch index
    sync_every: int = 4  # batches between meeting the other appenders

    def own(self) -> list[Event]:
        return numbered(f"{self.token}-{self.worker}", self.count)

    def batches(self) -> list[list[Event]]:
        own = self.own()
        theirs = numbered(f"{self.token}-{self.other}", self.count)
        batches = []
        for index, start in enumerate(range(0, self.count, self.batch_size)):
            batch = own[start : start + self.batch_size]
            if index % self.overlap_every == 0:
                shared = theirs[start : start + self.overlap]
                middle = len(batch) // 2
                batch = [*batch[:middle], *shared, *batch[middle:]]
            batches.append(batch)
        return batches


def append_in_batches(
    url: str, plan: AppendPlan, start: Any, rounds: Any, results_path: str
) -> None:
    """Open the store, wait for everyone, append every batch; write what each append returned.

    ``start`` (a Barrier shared with the tailer) starts everyone together; ``rounds`` (a
    Barrier shared by the appenders) is passed every ``plan.sync_every`` batches, so they
    are always appending at the same time, however the scheduler favours one.
    """
    try:
        with open_store(url) as store:
            batches = plan.batches()
            start.wait(timeout=60)
            appended: list[tuple[Sequence[str], Sequence[int | None]]] = []
            for index, batch in enumerate(batches):
                if index % plan.sync_every == 0:
                    rounds.wait(timeout=60)
                appended.append((event_ids(batch), store.append(batch)))
    except BaseException:
        start.abort()  # do not keep the others waiting for this one
        rounds.abort()
        raise
    Path(results_path).write_text(json.dumps(appended))


def read_results(results_path: Path) -> list[tuple[list[str], list[int | None]]]:
    return [(ids, positions) for ids, positions in json.loads(results_path.read_text())]


def open_and_append(url: str, name: str, start: Any) -> None:
    """Open the store at the same moment as the others, then append one event."""
    start.wait(timeout=60)
    with open_store(url) as store:
        store.append(numbered(name, 1))
