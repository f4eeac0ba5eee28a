"""One receipt's state and clock, shared by the writers that act on it.

Each writer (OCR, labels, place, embeddings, edits) is a mixin over :class:`ReceiptState` in
a module of its own; this base holds what they all read and the table helpers they all use,
so a writer module never needs another writer to name or change an item.
"""

from __future__ import annotations

from receipt_events.attributes import Item
from synthetic.history import ids
from synthetic.history.model import LineContent, WordContent
from synthetic.history.reference import Merchant
from synthetic.history.stream import Stream
from synthetic.history.values import iso


class ReceiptState:
    """A receipt's items as its writers know them, and its own clock on the shared timeline."""

    def __init__(
        self, stream: Stream, image_id: str, receipt_id: int, merchant: Merchant, t: int
    ) -> None:
        self.s = stream
        self.rng = stream.rng
        self.config = stream.config
        self.image_id = image_id
        self.receipt_id = receipt_id
        self.merchant = merchant
        self.t = t
        self.pk = ids.image_pk(image_id)
        self.rsk = ids.receipt_sk(receipt_id)
        self.lines: dict[int, list[int]] = {}  # line id → its word ids, in order
        self.line_content: dict[int, LineContent] = {}
        self.word_content: dict[tuple[int, int], WordContent] = {}
        self.truth: dict[tuple[int, int], str | None] = {}  # each word's correct label
        self.letters: dict[tuple[int, int], list[int]] = {}
        self.labels: dict[tuple[int, int], dict[str, str]] = {}  # word → label → status
        self.place_sk: str | None = None
        self.run_sks: list[str] = []
        self.next_line = 1  # line ids are never reused, even after a line is removed

    # clock and table helpers

    def tick(self, low: int, high: int) -> None:
        """Move this receipt's clock forward; receipts' clocks interleave on the timeline."""
        self.t += self.rng.randint(low, high)

    def put(self, sk: str, item: Item, intent: str) -> int:
        return self.s.put(self.t, self.pk, sk, item, intent)

    def delete(self, sk: str, intent: str) -> None:
        self.s.delete(self.t, self.pk, sk, intent)

    def current(self, sk: str) -> Item:
        """A copy of the item as the table holds it now, to change and put back."""
        return dict(self.s.table[(self.pk, sk)].item)

    def iso(self) -> str:
        """Now on this receipt's clock, with random microseconds."""
        return iso(self.t, self.rng.randrange(1_000_000))

    # this receipt's sort keys

    def line_sk(self, line_id: int) -> str:
        return ids.line_sk(self.rsk, line_id)

    def word_sk(self, word: tuple[int, int]) -> str:
        return ids.word_sk(self.rsk, word)

    def letter_sk(self, word: tuple[int, int], letter_id: int) -> str:
        return ids.letter_sk(self.word_sk(word), letter_id)

    def label_sk(self, word: tuple[int, int], label: str) -> str:
        return ids.label_sk(self.word_sk(word), label)
