"""The backfill: read pages, wait at the barrier, decide each row against the log, append.

Follow a page: a reader thread per part reads it (:mod:`sources`); the main thread writes a
marker for it and queues it; once its barrier passes (:mod:`barrier`) its rows become events
(:mod:`rows`), each kept only if the log holds nothing for its item (:mod:`log_index`), and
the survivors are appended *conditionally on the head the decision read*, so a stream event
committed in between sends the page back to be decided again (never a row after a newer
change). The page is then checkpointed (:mod:`progress`). Compaction runs wait until every
part is done and go in last, in the old system's merge order.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from receipt_events.backfill.barrier import POLL_SECONDS, Barrier, Marker
from receipt_events.backfill.errors import BackfillStopped
from receipt_events.backfill.log_index import LogIndex
from receipt_events.backfill.progress import (
    Checkpoint,
    PagePassed,
    PassFinished,
    load_checkpoint,
)
from receipt_events.backfill.rows import merge_order, park_row, row_outcome
from receipt_events.backfill.sources import Page, RowSource
from receipt_events.backfill.touch import Toucher
from receipt_events.changes import Skipped
from receipt_events.events import (
    BackfillSource,
    EmbeddingsAdopted,
    EmbeddingsPublished,
    ReceiptEvent,
)
from receipt_events.ingest import BACKFILL_ORIGIN
from receipt_events.store import EventStore, HeadMoved, ParkedRecord, ParkedResolved

MAX_PENDING_PAGES = 64  # pages read ahead (queued, and waiting at the barrier), each way
APPEND_ATTEMPTS = 100
RUN_BATCH = 500
DeltaCheck = Callable[[str], str | None]  # a delta location → why it cannot be read, or None


class BackfillSummary(msgspec.Struct, kw_only=True):
    """What this invocation did (``read`` … ``parked`` count rows)."""

    job: str
    run: int
    resumed: bool
    read: int = 0
    appended: int = 0
    superseded: int = 0
    parked: int = 0
    skipped: int = 0
    skipped_by_kind: dict[str, int] = msgspec.field(default_factory=dict)
    runs_appended: int = 0
    touched: int = 0  # --touch: items touched (their stream records bring them)
    settle_s: float = 0.0  # time spent waiting at the barrier with nothing left to read
    baseline: str | None = None  # what became of the embeddings baseline, if one was given
    expected_rows: int | None = None  # about how many rows there are (for a progress bar)
    head: int = 0


class _Done(msgspec.Struct):
    part: int


class _Failed(msgspec.Struct):
    error: BaseException


Progress = Callable[[BackfillSummary, str | None], None]


def backfill(
    store: EventStore,
    source: RowSource,
    barrier: Barrier,
    *,
    delta_check: DeltaCheck | None = None,
    on_progress: Progress | None = None,
    clock: Callable[[], float] | None = None,
    baseline: EmbeddingsAdopted | None = None,
    toucher: Toucher | None = None,
    expected_rows: int | None = None,
) -> BackfillSummary:
    """Adopt every row of ``source`` that the log does not already speak for (SPEC §11).

    With a ``toucher``, the places and labels the log lacks are touched in the table instead
    of appended, so their own stream records bring them (the exact mode, no barrier per
    page); compaction runs are still appended, behind one barrier: whether a run yields to a
    newer run of its receipt is a question across items, which a touch cannot order.

    The embeddings ``baseline``, if any, is appended first (once: its identity is its
    content), so it precedes every run the backfill adopts.
    """
    now = clock or time.monotonic
    checkpoint = load_checkpoint(store, source.job)
    summary = BackfillSummary(
        job=source.job, run=checkpoint.run, resumed=checkpoint.resumed, expected_rows=expected_rows
    )
    deciding = _Decider(store, source, checkpoint, summary, toucher)
    if baseline is not None:
        (position,) = store.append([baseline])
        summary.baseline = "appended" if position is not None else "already in the log"
    pages: queue.Queue[Page | _Done | _Failed] = queue.Queue(maxsize=MAX_PENDING_PAGES)
    stop = threading.Event()
    readers = [
        threading.Thread(
            target=_read_part,
            args=(source, part, checkpoint.cursor(part).resume, pages, stop),
            name=f"backfill-part-{part}",
            daemon=True,
        )
        for part in range(source.parts)
        if not checkpoint.cursor(part).finished
    ]
    for reader in readers:
        reader.start()
    reading = len(readers)
    pending: deque[tuple[Page, Marker]] = deque()
    try:
        while reading or pending:
            waited_from = now() if not reading else None
            item: Page | _Done | _Failed | None = None
            if len(pending) < MAX_PENDING_PAGES:  # else the readers wait on the full queue
                with contextlib.suppress(queue.Empty):
                    item = pages.get(timeout=POLL_SECONDS if pending else 1.0)
            else:
                time.sleep(POLL_SECONDS)
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _Done):
                reading -= 1
            elif isinstance(item, Page):
                if toucher is not None:
                    deciding.page(item)
                else:
                    pending.append((item, barrier.mark()))
            while pending and barrier.passed(pending[0][1], pending[0][0].read_at):
                page, marker = pending.popleft()
                deciding.page(page)
                barrier.forget(marker)
            if waited_from is not None:
                summary.settle_s += now() - waited_from
            if on_progress is not None:
                waiting = (
                    barrier.waiting_for(pending[0][1], pending[0][0].read_at) if pending else None
                )
                on_progress(summary, waiting)
    finally:
        stop.set()
    if toucher is not None and checkpoint.runs:
        started = now()
        _wait(barrier, deciding.last_run_read_at(), summary, on_progress)
        summary.settle_s += now() - started
    deciding.runs(delta_check)
    store.record_progress([PassFinished(job=source.job, run=checkpoint.run)])
    summary.head = store.head()
    return summary


def _wait(
    barrier: Barrier, read_at: float, summary: BackfillSummary, on_progress: Progress | None
) -> None:
    """Wait at the barrier for rows read at ``read_at`` (the runs, in the touch mode)."""
    marker = barrier.mark()
    while not barrier.passed(marker, read_at):
        if on_progress is not None:
            on_progress(summary, barrier.waiting_for(marker, read_at))
        time.sleep(POLL_SECONDS)
    barrier.forget(marker)


def _read_part(
    source: RowSource,
    part: int,
    resume: str | None,
    pages: queue.Queue[Page | _Done | _Failed],
    stop: threading.Event,
) -> None:
    try:
        for page in source.pages(part, resume):
            while not stop.is_set():
                try:
                    pages.put(page, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        pages.put(_Done(part))
    except BaseException as error:  # reported to the main thread, which stops the backfill
        pages.put(_Failed(error))


class _Decider:
    """Decides pages (and finally the runs) against the log, and checkpoints them."""

    def __init__(
        self,
        store: EventStore,
        source: RowSource,
        checkpoint: Checkpoint,
        summary: BackfillSummary,
        toucher: Toucher | None = None,
    ) -> None:
        self._toucher = toucher
        self._store = store
        self._parked_rows = {  # rows an earlier pass parked: resolved once they land
            record.parked_id
            for record in store.parked_records()
            if record.origin.startswith(BACKFILL_ORIGIN)
        }
        self._source = source
        self._checkpoint = checkpoint
        self._summary = summary
        self._index = LogIndex()

    def page(self, page: Page) -> None:
        source = self._row_source(page.read_at)
        events: list[ReceiptEvent] = []
        parked: list[ParkedRecord] = []
        runs: list[bytes] = []
        skipped: dict[str, int] = {}
        for row in page.rows:
            outcome = row_outcome(row, source)
            if isinstance(outcome, Skipped):
                skipped[outcome.kind] = skipped.get(outcome.kind, 0) + 1
            elif isinstance(outcome, ParkedRecord):
                parked.append(outcome)
            elif isinstance(outcome, EmbeddingsPublished):
                runs.append(msgspec.json.encode({"read_at": page.read_at, "Item": row}))
            else:
                events.append(outcome)
        appended, superseded = self._touch(events) if self._toucher else self._append(events)
        newly_parked = sum(self._store.park(parked)) if parked else 0
        cursor = self._checkpoint.cursor(page.part)
        cursor.pages += 1
        self._store.record_progress(
            [
                PagePassed(
                    job=self._source.job,
                    run=self._checkpoint.run,
                    part=page.part,
                    page=cursor.pages,
                    resume=page.resume,
                    read=len(page.rows),
                    appended=appended,
                    superseded=superseded,
                    parked=newly_parked,
                    skipped_by_kind=skipped,
                    runs=runs,
                )
            ]
        )
        self._checkpoint.runs.extend(runs)
        summary = self._summary
        summary.read += len(page.rows)
        summary.appended += appended
        summary.superseded += superseded
        summary.parked += newly_parked
        for kind, count in skipped.items():
            summary.skipped += count
            summary.skipped_by_kind[kind] = summary.skipped_by_kind.get(kind, 0) + count

    def last_run_read_at(self) -> float:
        return float(max(msgspec.json.decode(kept)["read_at"] for kept in self._checkpoint.runs))

    def runs(self, delta_check: DeltaCheck | None) -> None:
        """Append the pass's compaction runs in the old system's merge order."""
        ordered: list[tuple[tuple[Any, ...], EmbeddingsPublished]] = []
        parked: list[ParkedRecord] = []
        for encoded in self._checkpoint.runs:
            kept = msgspec.json.decode(encoded)
            row = kept["Item"]
            source = self._row_source(kept["read_at"])
            event = row_outcome(row, source)
            assert isinstance(event, EmbeddingsPublished)  # it was one when the page was read
            problem = _missing_delta(event, delta_check)
            if problem is not None:
                parked.append(park_row(row, source, problem))
            else:
                ordered.append((merge_order(row, event), event))
        ordered.sort(key=lambda pair: pair[0])
        events = [event for _, event in ordered]
        for start in range(0, len(events), RUN_BATCH):
            batch = events[start : start + RUN_BATCH]
            appended, superseded = self._append(batch)
            self._summary.appended += appended
            self._summary.runs_appended += appended
            self._summary.superseded += superseded
        if parked:
            self._summary.parked += sum(self._store.park(parked))

    def _append(self, events: Sequence[ReceiptEvent]) -> tuple[int, int]:
        """Append the events the log does not speak for, deciding at the head appended at."""
        for _ in range(APPEND_ATTEMPTS):
            head = self._index.catch_up(self._store)
            fresh = [event for event in events if not self._index.supersedes(event)]
            if not fresh:
                self._resolve_parked(events, set())
                return 0, len(events)
            try:
                positions = self._store.append(fresh, expected_head=head)
            except HeadMoved:
                continue  # a stream event came in between: decide again from the new head
            landed = {
                event.originator_id
                for event, position in zip(fresh, positions, strict=True)
                if position is not None
            }
            self._resolve_parked(events, landed)
            return len(landed), len(events) - len(landed)
        raise BackfillStopped(
            f"the log moved on {APPEND_ATTEMPTS} times while a page was being appended; "
            "run backfill again (it continues from its checkpoint)"
        )

    def _resolve_parked(self, events: Sequence[ReceiptEvent], landed: set[str]) -> None:
        """Rows an earlier pass parked that this one could read are no longer parked: each
        was appended now (its identity in ``landed``) or the log already had its item."""
        if not self._parked_rows:
            return
        resolved = [
            ParkedResolved(
                parked_id=parked_id,
                outcome="appended" if event.originator_id in landed else "superseded",
            )
            for event in events
            if (parked_id := f"fill:{event.pk}|{event.sk}") in self._parked_rows
        ]
        if resolved:
            self._store.resolve_parked(resolved)
            self._parked_rows.difference_update(entry.parked_id for entry in resolved)

    def _touch(self, events: Sequence[ReceiptEvent]) -> tuple[int, int]:
        """Touch the items the log lacks, in order; nothing is appended here."""
        assert self._toucher is not None
        self._index.catch_up(self._store)
        touched = 0
        for event in events:
            if not self._index.supersedes(event) and self._toucher.touch(event):
                touched += 1
        self._summary.touched += touched
        self._resolve_parked(events, set())  # touched or not, the stream brings the item
        return 0, len(events) - touched

    def _row_source(self, read_at: float) -> BackfillSource:
        return BackfillSource(
            via=self._source.via,
            table=self._source.table,
            read_at=read_at,
            export_id=self._source.export_id,
        )


def _missing_delta(event: EmbeddingsPublished, delta_check: DeltaCheck | None) -> str | None:
    if delta_check is None:
        return None
    for location in (event.lines_delta, event.words_delta):
        problem = delta_check(location)
        if problem is not None:
            return (
                f"compaction run {event.run_id}: delta {location} cannot be read ({problem}); "
                "its vectors are only in the old system's snapshot: adopt it with --embeddings"
            )
    return None
