"""The backfill's bookkeeping on an in-memory store, with a scripted row source and a barrier
that always passes: parked rows and their later resolution, the runs' merge order, runs whose
delta is gone, and resuming from the checkpoint after a crash."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from receipt_events.backfill.run import backfill
from receipt_events.backfill.sources import Page
from receipt_events.events import BackfillVia, EmbeddingsPublished
from receipt_events.ingest import redrive
from receipt_events.store import EventStore, open_store

IMAGE = "3f2b8c1e-9d4a-4b6e-8f1a-2c3d4e5f6a7b"
PK = {"S": f"IMAGE#{IMAGE}"}


def label(word: int, status: str) -> dict[str, Any]:
    sk = f"RECEIPT#00001#LINE#00001#WORD#{word:05d}#LABEL#TOTAL"
    return {"PK": PK, "SK": {"S": sk}, "validation_status": {"S": status}}


def run_row(run_id: str, finished: str | None, created: str) -> dict[str, Any]:
    row = {
        "PK": PK,
        "SK": {"S": f"RECEIPT#00001#COMPACTION_RUN#{run_id}"},
        "run_id": {"S": run_id},
        "lines_delta_prefix": {"S": f"deltas/{run_id}/lines"},
        "words_delta_prefix": {"S": f"deltas/{run_id}/words"},
        "created_at": {"S": created},
    }
    if finished is not None:
        row["lines_finished_at"] = {"S": finished}
    return row


class Source:
    """Pages of rows, one part; optionally fails after ``fail_after`` pages (a crash)."""

    via: BackfillVia = "scan"
    table = "receipts"
    export_id = None
    parts = 1

    def __init__(self, pages: list[list[dict[str, Any]]], fail_after: int | None = None) -> None:
        self.job = "scan:receipts:1"
        self._pages = pages
        self._fail_after = fail_after
        self.read_from: list[int] = []

    def pages(self, part: int, resume: str | None) -> Iterator[Page]:
        start = int(resume) if resume else 0
        self.read_from.append(start)
        for index in range(start, len(self._pages)):
            if self._fail_after is not None and index >= self._fail_after:
                raise ConnectionError("the table went away")
            more = index + 1 < len(self._pages)
            yield Page(part, self._pages[index], 1.0, str(index + 1) if more else None)


class OpenBarrier:
    """A barrier that has always passed (the stream is assumed ingested)."""

    def mark(self) -> str:
        return "marker"

    def passed(self, marker: str, read_at: float) -> bool:
        return True

    def forget(self, marker: str) -> None:
        pass

    def waiting_for(self, marker: str, read_at: float) -> str:
        return ""


@pytest.fixture
def store() -> Iterator[EventStore]:
    with open_store(f"memory://{uuid.uuid4().hex}") as opened:
        yield opened


def test_a_bad_row_is_parked_kept_by_redrive_and_resolved_by_a_later_pass(
    store: EventStore,
) -> None:
    first = backfill(store, Source([[label(1, "BOGUS"), label(2, "VALID")]]), OpenBarrier())  # type: ignore[arg-type]
    assert (first.read, first.appended, first.parked) == (2, 1, 1)
    (parked,) = store.parked_records()
    assert parked.parked_id == f"fill:IMAGE#{IMAGE}|RECEIPT#00001#LINE#00001#WORD#00001#LABEL#TOTAL"
    assert "'BOGUS' is not one of" in parked.error
    assert parked.origin == "backfill:scan:receipts"
    retried = redrive(store)
    assert retried.still_parked == 1
    assert "run `receipt-events backfill` again" in retried.errors[parked.parked_id]
    again = backfill(store, Source([[label(1, "VALID"), label(2, "VALID")]]), OpenBarrier())  # type: ignore[arg-type]
    assert (again.appended, again.superseded, again.parked) == (1, 1, 0)
    assert store.parked_records() == []


def test_runs_go_last_in_the_old_systems_merge_order_and_a_gone_delta_is_parked(
    store: EventStore,
) -> None:
    rows = [
        run_row("c", None, "2024-01-01"),  # never finished: last
        run_row("b", "2024-03-02", "2024-01-01"),
        label(1, "VALID"),
        run_row("a", "2024-03-01", "2024-01-01"),
        run_row("gone", "2024-02-01", "2024-01-01"),
    ]
    summary = backfill(
        store,
        Source([rows[:2], rows[2:]]),  # type: ignore[arg-type]
        OpenBarrier(),  # type: ignore[arg-type]
        delta_check=lambda location: "not found" if "/gone/" in location else None,
    )
    events = [recorded.event for recorded in store.iter_events()]
    runs = [event.run_id for event in events if isinstance(event, EmbeddingsPublished)]
    assert runs == ["a", "b", "c"]
    assert not isinstance(events[0], EmbeddingsPublished)  # the label before every run
    assert (summary.runs_appended, summary.parked) == (3, 1)
    (parked,) = store.parked_records()
    assert "compaction run gone: delta deltas/gone/lines cannot be read (not found)" in parked.error
    assert "--embeddings" in parked.error


def test_a_crashed_pass_continues_from_its_checkpoint(store: EventStore) -> None:
    pages = [[label(word, "VALID")] for word in range(1, 6)]
    crashing = Source(pages, fail_after=3)
    with pytest.raises(ConnectionError):
        backfill(store, crashing, OpenBarrier())  # type: ignore[arg-type]
    assert store.head() == 3
    resumed_source = Source(pages)
    resumed = backfill(store, resumed_source, OpenBarrier())  # type: ignore[arg-type]
    assert resumed.resumed
    assert resumed.run == 1
    assert resumed_source.read_from == [3]  # from the checkpoint, not from the start
    assert (resumed.read, resumed.appended) == (2, 2)
    assert store.head() == 5
    next_pass = backfill(store, Source(pages), OpenBarrier())  # type: ignore[arg-type]
    assert (next_pass.run, next_pass.read, next_pass.appended, next_pass.superseded) == (2, 5, 0, 5)
