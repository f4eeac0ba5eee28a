"""The label writers: proposals (some wrong), validation, review, backfills, overturns.

Each label INSERT and status MODIFY is an event; a GSI4 backfill changes no field ingest
reads, so it must come out unchanged.
"""

from __future__ import annotations

from receipt_events.attributes import Item, Value
from synthetic.history.receipt_state import ReceiptState
from synthetic.history.reference import (
    CONFUSIONS,
    LABELS,
    PATTERN_PROPOSER,
    PROPOSERS,
    VALIDATORS,
)


class LabelWriter(ReceiptState):
    """Proposes, validates and rewrites one receipt's word labels."""

    def plan_labels(self) -> list[tuple[int, int, str, bool]]:
        """Proposals: (line, word, label, pattern-proposable); correct ones and some wrong."""
        rng = self.rng
        proposals: list[tuple[int, int, str, bool]] = []
        for word, truth in self.truth.items():
            if truth is not None and rng.random() < 0.85:
                pattern = truth in ("PHONE_NUMBER", "DATE", "TIME", "WEBSITE")
                proposals.append((word[0], word[1], truth, pattern))
            if truth is not None and rng.random() < 0.08:
                proposals.append((word[0], word[1], CONFUSIONS.get(truth, "PRODUCT_NAME"), False))
            elif truth is None and rng.random() < 0.03:
                proposals.append((word[0], word[1], rng.choice(LABELS), False))
        seen: set[tuple[int, int, str]] = set()
        unique = []
        for proposal in proposals:
            if proposal[:3] not in seen:
                seen.add(proposal[:3])
                unique.append(proposal)
        return unique

    def insert_labels(self, proposals: list[tuple[int, int, str, bool]]) -> None:
        """Each proposal as a PENDING label, unless its word is gone."""
        rng = self.rng
        for line_id, word_id, label, pattern in proposals:
            word = (line_id, word_id)
            if word not in self.labels:
                continue  # the word was removed meanwhile
            self.tick(0, 3)
            proposer = PATTERN_PROPOSER if pattern else rng.choice(PROPOSERS)
            word_key = f"IMAGE#{self.image_id}#{self.word_sk(word)}"
            consolidated: Value = None
            if label == "GRAND_TOTAL" and rng.random() < 0.2:
                consolidated = "TOTAL"
            item: Item = {
                "PK": self.pk,
                "SK": self.label_sk(word, label),
                "GSI1PK": f"LABEL#{label}".ljust(40, "_"),
                "GSI1SK": word_key,
                "GSI2PK": "RECEIPT",
                "GSI2SK": word_key,
                "GSI3PK": "VALIDATION_STATUS#PENDING",
                "GSI3SK": f"{word_key}#LABEL#{label}",
                "TYPE": "RECEIPT_WORD_LABEL",
                "reasoning": f"'{self.word_content[word].text}' looks like {label.lower()}"
                f" ({proposer})",
                "timestamp_added": self.iso(),
                "validation_status": "PENDING",
                "label_consolidated_from": consolidated,
                "label_proposed_by": proposer,
            }
            self.put(self.label_sk(word, label), item, "label_insert")
            self.labels[word][label] = "PENDING"

    def set_label_status(self, word: tuple[int, int], label: str, status: str) -> None:
        sk = self.label_sk(word, label)
        item = self.current(sk)
        validator = self.rng.choice(VALIDATORS)
        item["GSI3PK"] = f"VALIDATION_STATUS#{status}"
        item["validation_status"] = status
        item["reasoning"] = f"[{validator}] Decision: {status}"
        self.put(sk, item, "label_modify")
        self.labels[word][label] = status

    def validate_labels(self) -> None:
        """The validation pass; labels sent for review are decided a while later."""
        rng = self.rng
        review: list[tuple[tuple[int, int], str]] = []
        for word, labels in self.labels.items():
            for label in list(labels):
                correct = self.truth[word] == label
                roll = rng.random()
                if roll < 0.1:
                    continue  # never validated: stays PENDING
                self.tick(0, 5)
                if roll < 0.2:
                    self.set_label_status(word, label, "NEEDS_REVIEW")
                    review.append((word, label))
                elif correct == (roll < 0.92):
                    self.set_label_status(word, label, "VALID")
                else:
                    self.set_label_status(word, label, "INVALID")
        if review:
            self.tick(3600, 2 * 86400)
        for word, label in review:
            self.tick(1, 60)
            status = "VALID" if (self.truth[word] == label) == (rng.random() < 0.9) else "INVALID"
            self.set_label_status(word, label, status)

    def revalidate_labels(self) -> None:
        """Now and then a later pass overturns a VALID label."""
        for word, labels in self.labels.items():
            for label, status in list(labels.items()):
                if status == "VALID" and self.rng.random() < 0.04:
                    self.tick(1, 120)
                    self.set_label_status(word, label, "INVALID")

    def backfill_labels(self) -> None:
        """A GSI4 backfill rewrites some labels: no field the projection reads changes."""
        gsi4 = f"IMAGE#{self.image_id}#{self.rsk}"
        for word, labels in self.labels.items():
            for label in labels:
                if self.rng.random() < 0.15:
                    self.tick(0, 2)
                    sk = self.label_sk(word, label)
                    item = self.current(sk)
                    item["GSI4PK"] = gsi4
                    item["GSI4SK"] = f"2_LABEL#{word[0]:05d}#{word[1]:05d}#{label}"
                    self.put(sk, item, "label_modify_irrelevant")
