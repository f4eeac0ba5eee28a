"""The idempotent-append seam shared by every backend.

Each backend subclasses the ``eventsourcing`` application recorder and adds ``insert_new``:
insert the stored events that are not already there, in order, in one transaction, and say
which were new. The primary key ``(originator_id, originator_version)`` is the dedup key, so
the guarantee holds across processes and restarts because the database enforces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from eventsourcing.persistence import Notification, StoredEvent


class DedupRecorder(Protocol):
    def insert_new(self, stored_events: Sequence[StoredEvent]) -> list[int | None]:
        """Insert what is new; return each event's position, or None where it was a duplicate.

        The events of one call must have distinct originator ids.
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
