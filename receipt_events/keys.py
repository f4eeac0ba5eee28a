"""Table keys (``PK``/``SK``) to typed identities, and identities to Chroma ids.

Every receipt entity lives under ``PK = IMAGE#<uuid>``; ids in sort keys are zero-padded to
five digits (``RECEIPT#00001#LINE#00003#WORD#00002``). A key that claims to be one of ours but
is malformed (``RECEIPT#abc``) raises :class:`KeyFormatError`, so the record is parked rather
than silently skipped. Keys of entities that never become events (images, letters, locks,
other key families) parse to :class:`OtherEntity`, named by kind for the skip counters.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeAlias

import msgspec

from receipt_events.markers import MARKER_PK, MarkerKey

EntityKind: TypeAlias = Literal[
    "RECEIPT",
    "RECEIPT_LINE",
    "RECEIPT_WORD",
    "RECEIPT_WORD_LABEL",
    "RECEIPT_METADATA",
    "RECEIPT_PLACE",
    "COMPACTION_RUN",
]


class KeyFormatError(ValueError):
    """A PK/SK pair shaped like one of our entities but with a malformed part."""


# The projection keeps ids in SQLite and Chroma as 64-bit integers: a larger one could be
# logged but never projected (every catch-up would fail on it).
MAX_ID = 2**63 - 1


def _pad(number: int) -> str:
    return f"{number:05d}"


class ReceiptKey(msgspec.Struct, frozen=True):
    image_id: str
    receipt_id: int

    kind: ClassVar[EntityKind] = "RECEIPT"

    @property
    def sk(self) -> str:
        return f"RECEIPT#{_pad(self.receipt_id)}"

    @property
    def chroma_prefix(self) -> str:
        """The prefix every Chroma id of this receipt starts with."""
        return f"IMAGE#{self.image_id}#{self.sk}"


class LineKey(msgspec.Struct, frozen=True):
    image_id: str
    receipt_id: int
    line_id: int

    kind: ClassVar[EntityKind] = "RECEIPT_LINE"

    @property
    def receipt(self) -> ReceiptKey:
        return ReceiptKey(self.image_id, self.receipt_id)

    @property
    def sk(self) -> str:
        return f"RECEIPT#{_pad(self.receipt_id)}#LINE#{_pad(self.line_id)}"

    @property
    def chroma_id(self) -> str:
        return f"IMAGE#{self.image_id}#{self.sk}"


class WordKey(msgspec.Struct, frozen=True):
    image_id: str
    receipt_id: int
    line_id: int
    word_id: int

    kind: ClassVar[EntityKind] = "RECEIPT_WORD"

    @property
    def receipt(self) -> ReceiptKey:
        return ReceiptKey(self.image_id, self.receipt_id)

    @property
    def line(self) -> LineKey:
        return LineKey(self.image_id, self.receipt_id, self.line_id)

    @property
    def sk(self) -> str:
        return f"{self.line.sk}#WORD#{_pad(self.word_id)}"

    @property
    def chroma_id(self) -> str:
        return f"IMAGE#{self.image_id}#{self.sk}"


class LabelKey(msgspec.Struct, frozen=True):
    image_id: str
    receipt_id: int
    line_id: int
    word_id: int
    label: str

    kind: ClassVar[EntityKind] = "RECEIPT_WORD_LABEL"

    @property
    def word(self) -> WordKey:
        return WordKey(self.image_id, self.receipt_id, self.line_id, self.word_id)

    @property
    def sk(self) -> str:
        return f"{self.word.sk}#LABEL#{self.label}"


class PlaceKey(msgspec.Struct, frozen=True):
    """A receipt's merchant place: the older ``#METADATA`` item or the newer ``#PLACE`` item."""

    image_id: str
    receipt_id: int
    kind: Literal["RECEIPT_METADATA", "RECEIPT_PLACE"]

    @property
    def receipt(self) -> ReceiptKey:
        return ReceiptKey(self.image_id, self.receipt_id)

    @property
    def sk(self) -> str:
        suffix = "METADATA" if self.kind == "RECEIPT_METADATA" else "PLACE"
        return f"RECEIPT#{_pad(self.receipt_id)}#{suffix}"


class CompactionRunKey(msgspec.Struct, frozen=True):
    image_id: str
    receipt_id: int
    run_id: str

    kind: ClassVar[EntityKind] = "COMPACTION_RUN"

    @property
    def receipt(self) -> ReceiptKey:
        return ReceiptKey(self.image_id, self.receipt_id)

    @property
    def sk(self) -> str:
        return f"RECEIPT#{_pad(self.receipt_id)}#COMPACTION_RUN#{self.run_id}"


class OtherEntity(msgspec.Struct, frozen=True):
    """An item that never produces an event; ``kind`` names it in the skip counters."""

    kind: str


EntityKey: TypeAlias = (
    ReceiptKey
    | LineKey
    | WordKey
    | LabelKey
    | PlaceKey
    | CompactionRunKey
    | MarkerKey
    | OtherEntity
)


def parse_key(pk: str, sk: str) -> EntityKey:
    """Parse a table key into the identity of the entity it names."""
    if pk == MARKER_PK:
        return MarkerKey(sk)
    if not pk.startswith("IMAGE#"):
        family = pk.split("#", 1)[0] or "EMPTY_PK"
        return OtherEntity(kind=family)
    image_id = pk[len("IMAGE#") :]
    if not image_id or "#" in image_id:
        raise KeyFormatError(f"PK {pk!r}: expected IMAGE#<image id>")
    parts = sk.split("#")
    if parts == ["IMAGE"]:
        return OtherEntity(kind="IMAGE")
    if parts[0] != "RECEIPT" or len(parts) < 2:
        return OtherEntity(kind="IMAGE_OTHER")
    receipt_id = _parse_id(parts[1], "receipt", sk)
    rest = parts[2:]
    if not rest:
        return ReceiptKey(image_id, receipt_id)
    tag = rest[0]
    if tag in ("METADATA", "PLACE") and len(rest) == 1:
        kind: Literal["RECEIPT_METADATA", "RECEIPT_PLACE"] = (
            "RECEIPT_METADATA" if tag == "METADATA" else "RECEIPT_PLACE"
        )
        return PlaceKey(image_id, receipt_id, kind)
    if tag == "COMPACTION_RUN":
        run_id = "#".join(rest[1:])
        if not run_id:
            raise KeyFormatError(f"SK {sk!r}: compaction run without a run id")
        return CompactionRunKey(image_id, receipt_id, run_id)
    if tag != "LINE":
        return OtherEntity(kind="RECEIPT_OTHER")
    if len(rest) < 2:
        raise KeyFormatError(f"SK {sk!r}: LINE without a line id")
    line_id = _parse_id(rest[1], "line", sk)
    rest = rest[2:]
    if not rest:
        return LineKey(image_id, receipt_id, line_id)
    if rest[0] != "WORD":
        return OtherEntity(kind="RECEIPT_LINE_OTHER")
    if len(rest) < 2:
        raise KeyFormatError(f"SK {sk!r}: WORD without a word id")
    word_id = _parse_id(rest[1], "word", sk)
    rest = rest[2:]
    if not rest:
        return WordKey(image_id, receipt_id, line_id, word_id)
    if rest[0] == "LABEL":
        label = "#".join(rest[1:])
        if not label:
            raise KeyFormatError(f"SK {sk!r}: LABEL without a label name")
        return LabelKey(image_id, receipt_id, line_id, word_id, label)
    if rest[0] == "LETTER":
        return OtherEntity(kind="RECEIPT_LETTER")
    return OtherEntity(kind="RECEIPT_WORD_OTHER")


def parse_chroma_id(chroma_id: str) -> LineKey | WordKey:
    """Parse a Chroma record id (``IMAGE#<uuid>#RECEIPT#00001#LINE#00003[#WORD#00002]``)."""
    pk, sep, sk = chroma_id.partition("#RECEIPT#")
    if not sep:
        raise KeyFormatError(f"Chroma id {chroma_id!r}: expected IMAGE#<id>#RECEIPT#...")
    key = parse_key(pk, "RECEIPT#" + sk)
    if not isinstance(key, LineKey | WordKey):
        raise KeyFormatError(f"Chroma id {chroma_id!r} names neither a line nor a word")
    if key.chroma_id != chroma_id:
        raise KeyFormatError(f"Chroma id {chroma_id!r} is not in canonical zero-padded form")
    return key


def _parse_id(text: str, what: str, sk: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise KeyFormatError(f"SK {sk!r}: {what} id {text!r} is not a number")
    try:
        number = int(text)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
        raise KeyFormatError(f"SK {sk[:80]!r}: {what} id has too many digits") from None
    if number <= 0:
        raise KeyFormatError(f"SK {sk!r}: {what} id must be positive")
    if number > MAX_ID:
        raise KeyFormatError(f"SK {sk[:80]!r}: {what} id is larger than {MAX_ID}")
    return number
