"""The OCR upload: the image, then each receipt with its lines, words and letters.

The bulk of the stream, and all of it skipped by ingest; but the text and geometry written
here are what the embedding runs later capture.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from receipt_events.attributes import Item, Value
from synthetic.history import ids
from synthetic.history.model import LineContent, WordContent
from synthetic.history.printed import Token, extra_line
from synthetic.history.receipt_state import ReceiptState
from synthetic.history.reference import EXTRACTED_TYPES
from synthetic.history.stream import Stream
from synthetic.history.values import decimal8, geometry, iso, stored_floats


def insert_image(stream: Stream, t: int, image_id: str, receipts: int) -> None:
    """The upload's IMAGE item, written before the receipts cut from it."""
    rng = stream.rng
    pk = ids.image_pk(image_id)
    image_type = "PHOTO" if rng.random() < 0.7 else "SCAN"
    item: Item = {
        "PK": pk,
        "SK": "IMAGE",
        "GSI1PK": "IMAGE",
        "GSI1SK": f"IMAGE#{image_id}",
        "GSI2PK": "IMAGE",
        "GSI2SK": f"IMAGE#{image_id}",
        "GSI3PK": f"IMAGE#{image_type}",
        "GSI3SK": f"IMAGE#{image_id}",
        "TYPE": "IMAGE",
        "width": Decimal(rng.choice((3024, 4032, 2550))),
        "height": Decimal(rng.choice((4032, 3024, 3300))),
        "timestamp_added": iso(t, rng.randrange(1_000_000)),
        "raw_s3_bucket": "receipts-raw",
        "raw_s3_key": f"raw/{image_id}.png",
        "sha256": f"{rng.getrandbits(256):064x}",
        "cdn_s3_bucket": "receipts-cdn",
        "cdn_s3_key": f"assets/{image_id}.jpg",
        "image_type": image_type,
        "receipt_count": Decimal(receipts),
    }
    stream.put(t, pk, "IMAGE", item, "image")


class OcrWriter(ReceiptState):
    """Writes what the OCR upload writes for one receipt."""

    def insert_receipt(self) -> None:
        """The RECEIPT item, cut from its image."""
        rng = self.rng
        width, height = rng.randint(600, 1400), rng.randint(1800, 4200)
        item: Item = {
            "PK": self.pk,
            "SK": self.rsk,
            "GSI1PK": "IMAGE",
            "GSI1SK": f"IMAGE#{self.image_id}#{self.rsk}",
            "GSI2PK": "RECEIPT",
            "GSI2SK": f"IMAGE#{self.image_id}#{self.rsk}",
            "GSI3PK": f"IMAGE#{self.image_id}",
            "GSI3SK": self.rsk,
            "TYPE": "RECEIPT",
            "width": Decimal(width),
            "height": Decimal(height),
            "timestamp_added": self.iso(),
            "raw_s3_bucket": "receipts-raw",
            "raw_s3_key": f"raw/{self.image_id}_RECEIPT_{self.receipt_id:05d}.png",
            "top_left": {"x": decimal8(0.02), "y": decimal8(0.98)},
            "top_right": {"x": decimal8(0.97), "y": decimal8(0.99)},
            "bottom_left": {"x": decimal8(0.03), "y": decimal8(0.01)},
            "bottom_right": {"x": decimal8(0.98), "y": decimal8(0.02)},
            "sha256": f"{rng.getrandbits(256):064x}",
            "cdn_s3_bucket": "receipts-cdn",
            "cdn_s3_key": f"assets/{self.image_id}_RECEIPT_{self.receipt_id:05d}.png",
        }
        self.put(self.rsk, item, "receipt_insert")

    def ocr(self, lines: list[list[Token]]) -> None:
        """The upload writes lines, then words, then letters, in batches of 25."""
        rng = self.rng
        spacing = 0.9 / max(len(lines), 1)
        first = self.next_line
        self.next_line += len(lines)
        new_lines: list[tuple[int, list[Token]]] = []
        for index, tokens in enumerate(lines):
            new_lines.append((first + index, tokens))
        line_items: list[tuple[str, Item]] = []
        word_items: list[tuple[str, Item]] = []
        letter_items: list[tuple[str, Item]] = []
        slope = rng.uniform(-0.02, 0.02)
        for position, (line_id, tokens) in enumerate(new_lines):
            # a line added by a later correction goes at the bottom
            y = rng.uniform(0.02, 0.04) if first > 1 else 0.95 - (position + 1) * spacing
            height = spacing * rng.uniform(0.45, 0.6)
            text = " ".join(t.text for t in tokens)
            x = rng.uniform(0.04, 0.12)
            width = min(0.92 - x, 0.016 * len(text) + rng.uniform(0.0, 0.02))
            confidence = round(rng.uniform(0.86, 1.0), 2)
            line_sk = self.line_sk(line_id)
            line_item: Item = {
                "PK": self.pk,
                "SK": line_sk,
                "GSI1PK": "EMBEDDING_STATUS#NONE",
                "GSI1SK": f"IMAGE#{self.image_id}#{line_sk}",
                "TYPE": "RECEIPT_LINE",
                "text": text,
                **geometry(x, y, width, height, slope),
                "confidence": Decimal(f"{confidence:.2f}"),
                "embedding_status": "NONE",
                "is_noise": False,
            }
            line_items.append((line_sk, line_item))
            self.line_content[line_id] = LineContent(
                line_id, text, *stored_floats(x, y, width, height), confidence
            )
            self.lines[line_id] = []
            total_chars = sum(len(t.text) + 1 for t in tokens)
            cursor = x
            for word_id, token in enumerate(tokens, start=1):
                share = width * (len(token.text) + 1) / total_chars
                word_width = share * 0.85
                word_conf = round(min(1.0, confidence + rng.uniform(-0.08, 0.05)), 2)
                word = (line_id, word_id)
                word_sk = self.word_sk(word)
                extracted: Value = None
                kind = EXTRACTED_TYPES.get(token.label or "")
                if kind is not None:
                    extracted = {"type": kind, "value": token.text}
                histogram: dict[str, Value] = {
                    char: Decimal(count) for char, count in Counter(token.text).items()
                }
                word_item: Item = {
                    "PK": self.pk,
                    "SK": word_sk,
                    "GSI2PK": "RECEIPT",
                    "GSI2SK": f"IMAGE#{self.image_id}#{word_sk}",
                    "GSI3PK": self.pk,
                    "GSI3SK": word_sk,
                    "TYPE": "RECEIPT_WORD",
                    "text": token.text,
                    **geometry(cursor, y, word_width, height, slope),
                    "confidence": Decimal(f"{word_conf:.2f}"),
                    "extracted_data": extracted,
                    "embedding_status": "NONE",
                    "is_noise": False,
                    "histogram": histogram,
                    "num_chars": Decimal(len(token.text)),
                }
                word_items.append((word_sk, word_item))
                self.word_content[word] = WordContent(
                    line_id,
                    word_id,
                    token.text,
                    *stored_floats(cursor, y, word_width, height),
                    word_conf,
                )
                self.lines[line_id].append(word_id)
                self.truth[word] = token.label
                self.labels[word] = {}
                l_low, l_high = self.config.letters_per_word
                letter_ids = list(range(1, rng.randint(l_low, l_high) + 1))
                self.letters[word] = letter_ids
                char_width = word_width / max(len(token.text), 1)
                for letter_id in letter_ids:
                    index = (letter_id - 1) % max(len(token.text), 1)
                    char = token.text[index] if token.text else " "
                    letter_sk = ids.letter_sk(word_sk, letter_id)
                    letter_item: Item = {
                        "PK": self.pk,
                        "SK": letter_sk,
                        "TYPE": "RECEIPT_LETTER",
                        "text": char,
                        **geometry(cursor + index * char_width, y, char_width, height, slope),
                        "confidence": Decimal(f"{word_conf:.2f}"),
                    }
                    letter_items.append((letter_sk, letter_item))
                cursor += share
        for items, intent in (
            (line_items, "line_insert"),
            (word_items, "word_insert"),
            (letter_items, "letter_insert"),
        ):
            for index, (sk, item) in enumerate(items):
                if index % 25 == 0:
                    self.tick(0, 1)
                self.put(sk, item, intent)

    def ocr_extra_line(self) -> None:
        """A correction adds a line the first OCR pass missed (before a re-embed)."""
        self.ocr([extra_line(self.rng, self.merchant, self.config)])
