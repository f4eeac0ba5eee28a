"""The idempotent-append seam shared by every backend.

Each backend subclasses (or, for DynamoDB, implements) the ``eventsourcing`` application
recorder and adds ``insert_new``: insert the stored events that are not already there, in
order, and say which were new. The dedup key ``(originator_id, originator_version)`` is
enforced by the database, so the guarantee holds across processes and restarts. Each stored
event carries a content hash beside its dedup key, so a *different* item arriving under a
stored key can be told from a redelivered copy (:meth:`DedupRecorder.logged`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eventsourcing.persistence import Notification, StoredEvent

DedupKey = tuple[str, int]  # (originator_id, originator_version)


class HeadMoved(Exception):
    """A conditional append found the log's head past the position it was decided at."""

    def __init__(self, expected: int, head: int) -> None:
        super().__init__(f"the log's head moved from {expected} to {head}")
        self.expected = expected
        self.head = head


@dataclass(frozen=True)
class Logged:
    """Where an already-stored key is, and the content hash stored with it.

    ``content_hash`` is None for events stored before hashes were kept; the caller then
    hashes the stored event itself.
    """

    position: int
    content_hash: str | None


class DedupRecorder(Protocol):
    def insert_new(
        self,
        stored_events: Sequence[StoredEvent],
        hashes: Sequence[str],
        *,
        expected_head: int | None = None,
    ) -> list[int | None]:
        """Insert what is new; return each event's position, or None where its key is stored.

        ``hashes[i]`` is stored with ``stored_events[i]``'s dedup key. The events of one call
        have distinct dedup keys. With ``expected_head``, the insert happens only if no other
        insert committed since the head was read: else nothing is inserted and
        :class:`HeadMoved` is raised (optimistic concurrency).
        """

    def logged(self, keys: Sequence[DedupKey]) -> dict[DedupKey, Logged]:
        """The stored ones among ``keys``, with their positions and content hashes."""

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
