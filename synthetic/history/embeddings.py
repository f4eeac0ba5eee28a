"""The embedding writers: a compaction run and the word-status noise around it.

A run INSERT is the event that publishes embeddings; the run's content (the receipt's lines
and words at that moment) is recorded beside the stream for the delta writers.
"""

from __future__ import annotations

from decimal import Decimal

from receipt_events.attributes import Item
from synthetic.history import ids
from synthetic.history.model import RunContent
from synthetic.history.receipt_state import ReceiptState


class EmbeddingWriter(ReceiptState):
    """Embeds one receipt: marks words, INSERTs the run, then the compactor's MODIFYs."""

    def embed(self) -> None:
        """Mark words PENDING, write the deltas, INSERT the run, then the compactor's MODIFYs."""
        rng = self.rng
        noisy = [word for word in self.word_content if rng.random() < 0.25]
        self.tick(0, 2)
        for word in noisy:
            self.set_word_status(word, "PENDING")
        self.tick(5, 40)
        run_id = ids.random_uuid(rng)
        sk = ids.run_sk(self.rsk, run_id)
        root = self.config.delta_root
        lines_delta, words_delta = f"{root}/{run_id}/lines", f"{root}/{run_id}/words"
        created = self.iso()
        item: Item = {
            "PK": self.pk,
            "SK": sk,
            "GSI1PK": "RUNS",
            "GSI1SK": f"CREATED_AT#{created}",
            "TYPE": "COMPACTION_RUN",
            "run_id": run_id,
            "image_id": self.image_id,
            "receipt_id": Decimal(self.receipt_id),
            "lines_delta_prefix": lines_delta,
            "words_delta_prefix": words_delta,
            "lines_state": "PENDING",
            "words_state": "PENDING",
            "lines_started_at": None,
            "lines_finished_at": None,
            "words_started_at": None,
            "words_finished_at": None,
            "lines_error": None,
            "words_error": None,
            "lines_merged_vectors": Decimal(0),
            "words_merged_vectors": Decimal(0),
            "created_at": created,
            "updated_at": None,
        }
        order = self.put(sk, item, "run_insert")
        self.run_sks.append(sk)
        self.s.runs[order] = RunContent(
            image_id=self.image_id,
            receipt_id=self.receipt_id,
            run_id=run_id,
            lines_delta=lines_delta,
            words_delta=words_delta,
            lines=tuple(self.line_content[line_id] for line_id in sorted(self.line_content)),
            words=tuple(self.word_content[word] for word in sorted(self.word_content)),
        )
        counts = {"lines": len(self.line_content), "words": len(self.word_content)}
        self.tick(5, 300)
        item = self.current(sk)
        started = self.iso()
        for collection in ("lines", "words"):
            item[f"{collection}_state"] = "PROCESSING"
            item[f"{collection}_started_at"] = started
        item["updated_at"] = started
        self.put(sk, item, "run_status_modify")
        collections = ["lines", "words"]
        rng.shuffle(collections)
        for collection in collections:
            self.tick(10, 120)
            self.s.completions.append(self.t)
            item = self.current(sk)
            finished = self.iso()
            item[f"{collection}_state"] = "COMPLETED"
            item[f"{collection}_finished_at"] = finished
            item[f"{collection}_merged_vectors"] = Decimal(counts[collection])
            item["updated_at"] = finished
            self.put(sk, item, "run_status_modify")
        self.tick(1, 10)
        for word in noisy:
            if word in self.word_content:
                self.set_word_status(word, "SUCCESS")

    def set_word_status(self, word: tuple[int, int], status: str) -> None:
        """A word's embedding_status MODIFY: noise that ingest skips."""
        sk = self.word_sk(word)
        item = self.current(sk)
        item["embedding_status"] = status
        self.put(sk, item, "word_modify_noise")
