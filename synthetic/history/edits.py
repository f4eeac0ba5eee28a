"""The edit and delete writers: label, word and line removals, and the receipt cascade.

Removals go child first (labels, letters, words, lines, place, runs, receipt), in the order
the app deletes them.
"""

from __future__ import annotations

from synthetic.history.receipt_state import ReceiptState


class EditWriter(ReceiptState):
    """Edits and deletes one receipt's items."""

    def remove_word(self, word: tuple[int, int]) -> None:
        """A word goes with its labels and letters first, as the app deletes them."""
        for label in list(self.labels[word]):
            self.tick(0, 1)
            self.delete(self.label_sk(word, label), "label_remove")
        for letter_id in self.letters[word]:
            self.delete(self.letter_sk(word, letter_id), "letter_remove")
        self.tick(0, 1)
        self.delete(self.word_sk(word), "word_remove")
        del self.labels[word], self.letters[word], self.word_content[word], self.truth[word]
        self.lines[word[0]].remove(word[1])

    def edit(self, rate: float) -> bool:
        """Label, word and line removals; True if lines or words changed (a re-embed may follow)."""
        rng = self.rng
        for word, labels in list(self.labels.items()):
            for label in list(labels):
                if rng.random() < rate * 0.5:
                    self.tick(1, 300)
                    self.delete(self.label_sk(word, label), "label_remove")
                    del labels[label]
        edited = False
        for word in list(self.word_content):
            if word in self.word_content and rng.random() < rate * 0.15:
                self.tick(1, 300)
                self.remove_word(word)
                edited = True
        for line_id in list(self.lines):
            if rng.random() < rate * 0.1:
                self.tick(1, 300)
                for word_id in list(self.lines[line_id]):
                    self.remove_word((line_id, word_id))
                self.delete(self.line_sk(line_id), "line_remove")
                del self.lines[line_id], self.line_content[line_id]
                edited = True
        return edited

    def remove_receipt(self) -> None:
        """The receipt delete cascade: labels, letters, words, lines, place, runs, receipt."""
        words = sorted(self.word_content)
        for word in words:
            for label in list(self.labels[word]):
                self.delete(self.label_sk(word, label), "label_remove")
        self.tick(0, 1)
        for word in words:
            for letter_id in self.letters[word]:
                self.delete(self.letter_sk(word, letter_id), "letter_remove")
        self.tick(0, 1)
        for word in words:
            self.delete(self.word_sk(word), "word_remove")
        self.tick(0, 1)
        for line_id in sorted(self.lines):
            self.delete(self.line_sk(line_id), "line_remove")
        if self.place_sk is not None:
            self.delete(self.place_sk, "place_remove")
        for sk in self.run_sks:
            self.delete(sk, "run_remove")
        self.tick(0, 1)
        self.delete(self.rsk, "receipt_remove")
        self.lines.clear()
        self.line_content.clear()
        self.word_content.clear()
        self.labels.clear()
        self.letters.clear()
        self.truth.clear()
        self.place_sk = None
        self.run_sks = []
