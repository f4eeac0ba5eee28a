"""In-memory backend for tests (``memory://`` or ``memory://NAME``, shared within a process)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder


class MemoryDedupRecorder(POPOApplicationRecorder):
    def insert_new(self, stored_events: Sequence[StoredEvent]) -> list[int | None]:
        positions: list[int | None] = []
        with self._database_lock:
            for stored in stored_events:
                versions = self._stored_events_index[str(stored.originator_id)]
                if stored.originator_version in versions:
                    positions.append(None)
                else:
                    positions.extend(self._update_table([stored]) or [None])
        return positions


_named: dict[str, tuple[MemoryDedupRecorder, MemoryDedupRecorder]] = {}
_named_lock = threading.Lock()


def open_memory(name: str) -> tuple[MemoryDedupRecorder, MemoryDedupRecorder]:
    """A fresh store for an empty name; the same store for the same name within a process."""
    if not name:
        return MemoryDedupRecorder(), MemoryDedupRecorder()
    with _named_lock:
        if name not in _named:
            _named[name] = (MemoryDedupRecorder(), MemoryDedupRecorder())
        return _named[name]
