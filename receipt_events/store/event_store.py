"""The event store: idempotent append, reads by global position, and parked records.

One facade over the backend recorders. Positions are the recorder's notification ids:
strictly increasing in commit order, readable after any position, up to any position, in
pages. ``append`` stores each stream record's event at most once, whatever is redelivered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

import msgspec

from receipt_events.events import Event
from receipt_events.store.mapper import MsgspecMapper
from receipt_events.store.parked import ParkedRecord, ParkedResolved
from receipt_events.store.recorders import DedupRecorder, Recorders

DEFAULT_PAGE_SIZE = 1000


class Recorded(msgspec.Struct, frozen=True):
    """An event at its position in the log."""

    position: int
    event: Event


class EventStore:
    def __init__(
        self, url: str, recorders: Recorders, close: Callable[[], None] = lambda: None
    ) -> None:
        self.url = url
        self._log = recorders.log
        self._parked = recorders.parked
        self._progress = recorders.progress
        self._close = close
        self._mapper = MsgspecMapper()

    # -- the log -------------------------------------------------------------------------

    def append(
        self, events: Sequence[Event], *, expected_head: int | None = None
    ) -> list[int | None]:
        """Append events in order, once each; return each one's position, None for duplicates.

        With ``expected_head``, append only if the log's head is still that position, else
        append nothing and raise :class:`HeadMoved`: a decision taken from the log up to a
        position (the backfill's) lands only if nothing came after it in between.
        """
        return _insert_once(self._log, self._mapper, events, expected_head)

    def head(self) -> int:
        """The last position in the log, 0 when it is empty."""
        return self._log.max_notification_id() or 0

    def read(
        self, *, after: int = 0, to: int | None = None, limit: int = DEFAULT_PAGE_SIZE
    ) -> list[Recorded]:
        """Events with ``after < position <= to``, in position order, at most ``limit``."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        notifications = self._log.select_notifications(
            start=after, limit=limit, stop=to, inclusive_of_start=False
        )
        decode = self._mapper.to_domain_event
        return [Recorded(n.id, decode(n)) for n in notifications]

    def iter_events(
        self, *, after: int = 0, to: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[Recorded]:
        """Every event after ``after`` (up to ``to``), read page by page."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        while True:
            page = self.read(after=after, to=to, limit=page_size)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].position

    # -- parked records ----------------------------------------------------------------------

    def park(self, records: Sequence[ParkedRecord]) -> list[bool]:
        """Park records (once each); return which were newly parked."""
        return [
            position is not None for position in _insert_once(self._parked, self._mapper, records)
        ]

    def resolve_parked(self, resolutions: Sequence[ParkedResolved]) -> None:
        _insert_once(self._parked, self._mapper, resolutions)

    def parked_records(self) -> list[ParkedRecord]:
        """Records still parked (not resolved by a redrive), in the order they were parked."""
        waiting: dict[str, ParkedRecord] = {}
        after = 0
        while True:
            page = self._parked.select_notifications(
                start=after, limit=DEFAULT_PAGE_SIZE, inclusive_of_start=False
            )
            for notification in page:
                entry = self._mapper.to_domain_event(notification)
                if isinstance(entry, ParkedRecord):
                    waiting[entry.parked_id] = entry
                elif isinstance(entry, ParkedResolved):
                    waiting.pop(entry.parked_id, None)
            if len(page) < DEFAULT_PAGE_SIZE:
                return list(waiting.values())
            after = page[-1].id

    # -- progress of long commands (the backfill's resume points, markers seen) --------------

    def record_progress(self, entries: Sequence[Any]) -> list[bool]:
        """Record progress entries (once each, by identity); return which were new."""
        return [
            position is not None for position in _insert_once(self._progress, self._mapper, entries)
        ]

    def progress_after(self, after: int = 0) -> list[tuple[int, Any]]:
        """Progress entries recorded after position ``after``, with their positions."""
        entries: list[tuple[int, Any]] = []
        while True:
            page = self._progress.select_notifications(
                start=after, limit=DEFAULT_PAGE_SIZE, inclusive_of_start=False
            )
            entries.extend((n.id, self._mapper.to_domain_event(n)) for n in page)
            if len(page) < DEFAULT_PAGE_SIZE:
                return entries
            after = page[-1].id

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        self._close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _insert_once(
    recorder: DedupRecorder,
    mapper: MsgspecMapper,
    items: Sequence[Any],
    expected_head: int | None = None,
) -> list[int | None]:
    """Insert items in order, a repeated identity within the batch counting as a duplicate."""
    first_index: dict[str, int] = {}
    stored = []
    for index, item in enumerate(items):
        originator_id = item.originator_id
        if originator_id not in first_index:
            first_index[originator_id] = index
            stored.append(mapper.to_stored_event(item))
    inserted = iter(recorder.insert_new(stored, expected_head=expected_head))
    positions: list[int | None] = [None] * len(items)
    for index in first_index.values():
        positions[index] = next(inserted)
    return positions
