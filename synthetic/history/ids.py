"""Random ids and the table's primary keys, rendered as the app writes them.

Every writer and every cascade delete must name an item the same way; the formats live here
once. The random ids draw from the history's one generator, so their call order is output.
"""

from __future__ import annotations

import random
import uuid


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID string (an image or run id, a lock owner) drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def event_id(rng: random.Random) -> str:
    """A stream record's eventID: 32 hex digits drawn from ``rng``."""
    return f"{rng.getrandbits(128):032x}"


def image_pk(image_id: str) -> str:
    """The partition key of an image and of everything on its receipts."""
    return f"IMAGE#{image_id}"


def receipt_sk(receipt_id: int) -> str:
    return f"RECEIPT#{receipt_id:05d}"


def line_sk(rsk: str, line_id: int) -> str:
    return f"{rsk}#LINE#{line_id:05d}"


def word_sk(rsk: str, word: tuple[int, int]) -> str:
    """A word's sort key; ``word`` is (line id, word id)."""
    return f"{rsk}#LINE#{word[0]:05d}#WORD#{word[1]:05d}"


def letter_sk(wsk: str, letter_id: int) -> str:
    return f"{wsk}#LETTER#{letter_id:05d}"


def label_sk(wsk: str, label: str) -> str:
    return f"{wsk}#LABEL#{label}"


def metadata_sk(rsk: str) -> str:
    return f"{rsk}#METADATA"


def place_sk(rsk: str) -> str:
    return f"{rsk}#PLACE"


def run_sk(rsk: str, run_id: str) -> str:
    return f"{rsk}#COMPACTION_RUN#{run_id}"


def lock_pk(collection: str, lock_id: str) -> str:
    return f"LOCK#{collection}#{lock_id}"
