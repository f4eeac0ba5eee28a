"""What the log holds, per item, read forward from the last position seen.

The backfill's rule (SPEC §11, docs/backfill.md): a row is appended only if the log holds no
event for its item, where a removal covers what lies under it (a receipt's removal: every
place, label and run of that receipt; a line's or word's removal: the labels under it). Whether
an adopted run's records may replace records a streamed run wrote is the projection's call,
record by record (docs/projection.md), not the backfill's.
"""

from __future__ import annotations

from receipt_events.events import (
    EmbeddingsAdopted,
    Event,
    LineRemoved,
    ReceiptEvent,
    ReceiptRemoved,
    WordLabelSet,
    WordRemoved,
)
from receipt_events.keys import LineKey
from receipt_events.store import EventStore


def _item(pk: str, sk: str) -> str:
    return f"{pk}|{sk}"


class LogIndex:
    """Items with an event in the log up to :attr:`position`, and the scopes it removed."""

    def __init__(self) -> None:
        self.position = 0
        self._items: set[str] = set()
        self._removed: set[str] = set()  # receipts, lines and words the stream removed

    def catch_up(self, store: EventStore) -> int:
        """Read every event after :attr:`position`; return the new position (the head)."""
        for recorded in store.iter_events(after=self.position):
            self.add(recorded.event)
            self.position = recorded.position
        return self.position

    def add(self, event: Event) -> None:
        item = _item(event.pk, event.sk)
        self._items.add(item)
        if isinstance(event, EmbeddingsAdopted):
            return  # the projection decides the baseline per receipt
        if isinstance(event, ReceiptRemoved | LineRemoved | WordRemoved):
            self._removed.add(item)

    def supersedes(self, event: ReceiptEvent) -> bool:
        """Whether the log already speaks for this row's item (so the row must not land)."""
        if _item(event.pk, event.sk) in self._items:
            return True
        receipt = _item(event.pk, event.receipt.sk)
        if receipt in self._removed:
            return True
        if isinstance(event, WordLabelSet):
            line = LineKey(event.image_id, event.receipt_id, event.line_id)
            return (
                _item(event.pk, line.sk) in self._removed
                or _item(event.pk, event.word.sk) in self._removed
            )
        return False  # a place or a run: only its own item, or its receipt's removal
