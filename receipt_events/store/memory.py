"""In-memory backend for tests (``memory://`` or ``memory://NAME``, shared within a process)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from receipt_events.store.recorders import HeadMoved, Recorders


class MemoryDedupRecorder(POPOApplicationRecorder):
    def insert_new(
        self, stored_events: Sequence[StoredEvent], *, expected_head: int | None = None
    ) -> list[int | None]:
        positions: list[int | None] = []
        with self._database_lock:
            if expected_head is not None:
                head = self.max_notification_id() or 0
                if head != expected_head:
                    raise HeadMoved(expected_head, head)
            for stored in stored_events:
                versions = self._stored_events_index[str(stored.originator_id)]
                if stored.originator_version in versions:
                    positions.append(None)
                else:
                    positions.extend(self._update_table([stored]) or [None])
        return positions


_named: dict[str, Recorders] = {}
_named_lock = threading.Lock()


def open_memory(name: str) -> Recorders:
    """A fresh store for an empty name; the same store for the same name within a process."""
    if not name:
        return _fresh()
    with _named_lock:
        if name not in _named:
            _named[name] = _fresh()
        return _named[name]


def _fresh() -> Recorders:
    return Recorders(MemoryDedupRecorder(), MemoryDedupRecorder(), MemoryDedupRecorder())
