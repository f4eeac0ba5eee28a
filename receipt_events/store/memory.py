"""In-memory backend for tests (``memory://`` or ``memory://NAME``, shared within a process)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from receipt_events.store.recorders import DedupKey, HeadMoved, Logged, Recorders


class MemoryDedupRecorder(POPOApplicationRecorder):
    def __init__(self) -> None:
        super().__init__()
        self._logged: dict[DedupKey, Logged] = {}

    def insert_new(
        self,
        stored_events: Sequence[StoredEvent],
        hashes: Sequence[str],
        *,
        expected_head: int | None = None,
    ) -> list[int | None]:
        positions: list[int | None] = []
        with self._database_lock:
            if expected_head is not None:
                head = self.max_notification_id() or 0
                if head != expected_head:
                    raise HeadMoved(expected_head, head)
            for stored, content_hash in zip(stored_events, hashes, strict=True):
                key = (str(stored.originator_id), stored.originator_version)
                if key in self._logged:
                    positions.append(None)
                    continue
                (position,) = self._update_table([stored]) or [0]
                self._logged[key] = Logged(position, content_hash)
                positions.append(position)
        return positions

    def logged(self, keys: Sequence[DedupKey]) -> dict[DedupKey, Logged]:
        with self._database_lock:
            return {key: self._logged[key] for key in keys if key in self._logged}


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
