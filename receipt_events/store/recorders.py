"""The idempotent-append seam shared by every backend.

Each backend subclasses the ``eventsourcing`` application recorder and adds ``insert_new``:
insert the stored events that are not already there, in order, in one transaction, and say
which were new. The primary key ``(originator_id, originator_version)`` is the dedup key, so
the guarantee holds across processes and restarts because the database enforces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eventsourcing.persistence import Notification, StoredEvent


class HeadMoved(Exception):
    """A conditional append found the log's head past the position it was decided at."""

    def __init__(self, expected: int, head: int) -> None:
        super().__init__(f"the log's head moved from {expected} to {head}")
        self.expected = expected
        self.head = head


class DedupRecorder(Protocol):
    def insert_new(
        self, stored_events: Sequence[StoredEvent], *, expected_head: int | None = None
    ) -> list[int | None]:
        """Insert what is new; return each event's position, or None where it was a duplicate.

        The events of one call must have distinct originator ids. With ``expected_head``,
        the insert happens only if no other insert committed since the head was read: else
        nothing is inserted and :class:`HeadMoved` is raised (optimistic concurrency).
        """

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]: ...

    def max_notification_id(self) -> int | None: ...


@dataclass(frozen=True)
class Recorders:
    """A backend's three tables: the log, parked records, and progress of long commands."""

    log: DedupRecorder
    parked: DedupRecorder
    progress: DedupRecorder
