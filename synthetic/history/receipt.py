"""One receipt's whole life: the order in which the old system's writers act on it.

The writers themselves live in their own modules (OCR, labels, place, embeddings, edits);
this module only sequences them, so the story of a receipt reads in one place.
"""

from __future__ import annotations

from synthetic.history.edits import EditWriter
from synthetic.history.embeddings import EmbeddingWriter
from synthetic.history.labels import LabelWriter
from synthetic.history.ocr import OcrWriter
from synthetic.history.places import PlaceWriter
from synthetic.history.printed import receipt_text


class Receipt(OcrWriter, LabelWriter, PlaceWriter, EmbeddingWriter, EditWriter):
    """Simulates every writer that touches one receipt, on the receipt's own clock."""

    def live(self) -> None:
        """The whole life of the receipt, in the order its writers act."""
        rng = self.rng
        rate = self.config.removal_rate
        self.insert_receipt()
        self.ocr(receipt_text(rng, self.merchant, self.t, self.config))
        proposals = self.plan_labels()
        early = [p for p in proposals if p[3] and rng.random() < 0.5]
        early_set = set(early)
        late = [p for p in proposals if p not in early_set]
        self.tick(1, 5)
        self.insert_labels(early)
        place_first = rng.random() < 0.85
        if place_first:
            self.tick(2, 15)
            self.insert_place()
        self.embed()
        if not place_first:
            self.tick(1, 30)
            self.insert_place()
        self.tick(60, 1800)
        self.insert_labels(late)
        self.tick(600, 7200)
        self.validate_labels()
        self.modify_place()
        self.tick(3600, 86400)
        self.backfill_labels()
        self.tick(3600, 3 * 86400)
        edited = self.edit(rate)
        if (edited and rng.random() < 0.6) or rng.random() < 0.04:
            self.tick(60, 900)
            if rng.random() < 0.5:
                self.ocr_extra_line()
            self.embed()
        self.tick(3600, 86400)
        self.revalidate_labels()
        if self.place_sk is not None and rng.random() < rate * 0.3:
            self.tick(600, 86400)
            self.delete(self.place_sk, "place_remove")
            self.place_sk = None
            if rng.random() < 0.5:
                self.tick(60, 3600)
                self.insert_place(kind="RECEIPT_PLACE")
        if rng.random() < rate:
            self.tick(3600, 7 * 86400)
            self.remove_receipt()
