"""The event store: idempotent append, reads by global position, and parked records.

One facade over the backend recorders. Positions are the recorder's notification ids:
strictly increasing in commit order, readable after any position, up to any position, in
pages. ``append`` stores each stream record's event at most once, whatever is redelivered;
a *different* event under a stored key is a :class:`Conflict`, parked with both contents
reachable (the stored one at its position, the new one in the parked record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

import msgspec

from receipt_events.events import Event
from receipt_events.store.content import content_checked, content_hash
from receipt_events.store.mapper import MsgspecMapper
from receipt_events.store.parked import ParkedRecord, ParkedResolved
from receipt_events.store.recorders import DedupKey, DedupRecorder, Logged, Recorders

DEFAULT_PAGE_SIZE = 1000
CONFLICT_ORIGIN = "conflict:"  # the origin of an event parked by append() as a conflict


class Recorded(msgspec.Struct, frozen=True):
    """An event at its position in the log."""

    position: int
    event: Event


class Conflict(msgspec.Struct, frozen=True):
    """An item whose dedup key is already stored with other content: not appended."""

    key: str  # the stored item's originator id, e.g. ``ddb:<eventID>``
    position: int  # where the stored one is
    stored_hash: str
    content_hash: str

    def describe(self) -> str:
        return (
            f"{self.key} is already stored at position {self.position} with other content "
            f"(sha256 {self.stored_hash[:12]}, this one {self.content_hash[:12]}): "
            "a different record under the same identity, kept here beside the stored one"
        )

    def parked_id(self, identity: str) -> str:
        """The conflicting item's parked id: its identity and content, so it parks once."""
        return f"{identity}@{self.content_hash[:16]}"


Outcome = int | Conflict | None  # position, conflict, or None for a copy of what is stored


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
        position (the backfill's) lands only if nothing came after it in between. An event
        that conflicts with a stored one (same identity, other content) is parked here, with
        the event as its payload, and is None in the result too.
        """
        outcomes = self.append_outcomes(events, expected_head=expected_head)
        conflicts = [
            ParkedRecord(
                parked_id=outcome.parked_id(event.originator_id),
                origin=CONFLICT_ORIGIN + event.originator_id,
                error=outcome.describe(),
                payload=msgspec.json.encode(event),
                log_head=outcome.position,
            )
            for event, outcome in zip(events, outcomes, strict=True)
            if isinstance(outcome, Conflict)
        ]
        if conflicts:
            self.park(conflicts)
        return [outcome if isinstance(outcome, int) else None for outcome in outcomes]

    def append_outcomes(
        self, events: Sequence[Event], *, expected_head: int | None = None
    ) -> list[Outcome]:
        """Like :meth:`append`, but a conflict is returned (for the caller to park) instead."""
        return self._insert(self._log, events, expected_head, check=True)

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
        """Park records (once each); return which were newly parked.

        A record whose parked id is taken by a record with another payload is parked too,
        under its id and content hash (:meth:`Conflict.parked_id`).
        """
        outcomes = self._insert(self._parked, records, None, check=True)
        again = {
            index: msgspec.structs.replace(
                record,
                parked_id=outcome.parked_id(record.parked_id),
                error=f"{record.error} (another record was parked as {record.parked_id!r} "
                f"with a different payload)",
            )
            for index, (record, outcome) in enumerate(zip(records, outcomes, strict=True))
            if isinstance(outcome, Conflict)
        }
        newly = [isinstance(outcome, int) for outcome in outcomes]
        if again:
            for index, parked in zip(again, self.park(list(again.values())), strict=True):
                newly[index] = parked
        return newly

    def resolve_parked(self, resolutions: Sequence[ParkedResolved]) -> None:
        self._insert(self._parked, resolutions, None, check=False)

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
            position is not None
            for position in self._insert(self._progress, entries, None, check=False)
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

    # -- inserting once ------------------------------------------------------------------

    def _insert(
        self,
        recorder: DedupRecorder,
        items: Sequence[Any],
        expected_head: int | None,
        *,
        check: bool,
    ) -> list[Outcome]:
        """Insert items in order, once per dedup key; with ``check``, name conflicts.

        A key repeated within the batch is compared with its first occurrence; a key stored
        before with the hash stored beside it, or (for rows from before hashes, or hashes of
        an older schema) with the stored item hashed again now.
        """
        keys = [(item.originator_id, item.originator_version) for item in items]
        hashes = [content_hash(item) for item in items]
        first: dict[DedupKey, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        inserted = recorder.insert_new(
            [self._mapper.to_stored_event(items[index]) for index in first.values()],
            [hashes[index] for index in first.values()],
            expected_head=expected_head,
        )
        outcomes: list[Outcome] = [None] * len(items)
        for index, inserted_at in zip(first.values(), inserted, strict=True):
            outcomes[index] = inserted_at
        if not check:
            return outcomes
        stored_before = [
            key
            for key, index in first.items()
            if outcomes[index] is None and content_checked(items[index])
        ]
        logged = recorder.logged(stored_before) if stored_before else {}
        for index, key in enumerate(keys):
            if isinstance(outcomes[index], int) or not content_checked(items[index]):
                continue
            position = outcomes[first[key]]
            if isinstance(position, int):  # a repeat of an item this batch inserted
                reference = Logged(position, hashes[first[key]])
            elif key in logged:
                reference = logged[key]
            else:
                continue  # stored, but not found again: nothing to compare with
            stored_hash = self._stored_hash(recorder, reference, hashes[index])
            if stored_hash != hashes[index]:
                outcomes[index] = Conflict(key[0], reference.position, stored_hash, hashes[index])
        return outcomes

    def _stored_hash(self, recorder: DedupRecorder, logged: Logged, expected: str) -> str:
        if logged.content_hash == expected:
            return expected
        (notification,) = recorder.select_notifications(
            start=logged.position, limit=1, inclusive_of_start=True
        )
        return content_hash(self._mapper.to_domain_event(notification))

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
