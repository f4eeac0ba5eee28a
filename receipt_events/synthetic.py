"""Seeded synthetic DynamoDB stream histories, shaped exactly like the records AWS delivers.

The demo, the tests and the benchmarks need a stream that looks like production: many
receipts in flight on one timeline, full item images typed like the real entities, noise the
pipeline must skip, MODIFYs that change nothing it reads, cascading deletes, re-embeds, lock
traffic and Lambda redeliveries. :func:`generate_history` simulates the writers of the old
system (OCR upload, merchant resolution, embedding runs, label suggestion and validation,
edits, deletes, the compactor's lock) against an in-memory table and records every change as
a NEW_AND_OLD_IMAGES stream record, so each MODIFY/REMOVE carries the item's true previous
image. Everything comes from one ``random.Random(seed)`` and a simulated clock: the same
config gives byte-identical :func:`to_jsonl` output in any process.

Every record comes with an *intent*, what the generator meant it to be (:data:`INTENTS`):

=========================== =================================================================
``image``                   IMAGE item INSERT (skipped, kind ``IMAGE``)
``receipt_insert``          RECEIPT INSERT (skipped, ``RECEIPT``)
``line_insert``             RECEIPT_LINE INSERT (skipped, ``RECEIPT_LINE``)
``word_insert``             RECEIPT_WORD INSERT (skipped, ``RECEIPT_WORD``)
``letter_insert``           RECEIPT_LETTER INSERT (skipped, ``RECEIPT_LETTER``)
``word_modify_noise``       word ``embedding_status`` MODIFY (skipped, ``RECEIPT_WORD``)
``place_insert``            RECEIPT_PLACE / RECEIPT_METADATA INSERT → ``PlaceChanged``
``place_modify``            place MODIFY of a relevant field → ``PlaceChanged``
``place_modify_irrelevant`` place MODIFY of validated_by / matched_fields / timestamp /
                            validation_status / confidence only → unchanged
``place_remove``            place REMOVE → ``PlaceRemoved``
``label_insert``            word label INSERT (PENDING) → ``WordLabelSet``
``label_modify``            label status MODIFY → ``WordLabelSet``
``label_modify_irrelevant`` label MODIFY adding only GSI4 keys (a backfill) → unchanged
``label_remove``            label REMOVE → ``WordLabelRemoved``
``run_insert``              COMPACTION_RUN INSERT → ``EmbeddingsPublished``
``run_status_modify``       run state MODIFY (PROCESSING, COMPLETED) (skipped,
                            ``COMPACTION_RUN``)
``run_remove``              run REMOVE in a receipt delete (skipped, ``COMPACTION_RUN``)
``letter_remove``           RECEIPT_LETTER REMOVE (skipped, ``RECEIPT_LETTER``)
``word_remove``             RECEIPT_WORD REMOVE → ``WordRemoved``
``line_remove``             RECEIPT_LINE REMOVE → ``LineRemoved``
``receipt_remove``          RECEIPT REMOVE, last of its cascade → ``ReceiptRemoved``
``lock``                    compaction lock INSERT / heartbeat MODIFY / REMOVE (skipped,
                            ``LOCK``)
``redelivery``              an exact copy of an earlier record (same eventID): a duplicate
=========================== =================================================================

:data:`INTENT_OUTCOMES` states the same table as data; :data:`EVENT_INTENTS` are the intents
that become an event. :func:`corrupt_lines` damages a JSON Lines export in the ways real
inputs break, for the parking path.
"""

from __future__ import annotations

import functools
import gc
import math
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from receipt_events.attributes import Item, Value, encode_item, encode_value
from receipt_events.keys import CompactionRunKey, LabelKey, PlaceKey, parse_key

INTENTS: Final[tuple[str, ...]] = (
    "image",
    "receipt_insert",
    "line_insert",
    "word_insert",
    "letter_insert",
    "word_modify_noise",
    "place_insert",
    "place_modify",
    "place_modify_irrelevant",
    "place_remove",
    "label_insert",
    "label_modify",
    "label_modify_irrelevant",
    "label_remove",
    "run_insert",
    "run_status_modify",
    "run_remove",
    "letter_remove",
    "word_remove",
    "line_remove",
    "receipt_remove",
    "lock",
    "redelivery",
)

# What ingesting a record of each intent gives: an event type name, "skipped:<kind>",
# "unchanged" (a place or label MODIFY of no relevant field) or "duplicate" (for a redelivered
# event record; a redelivered skipped or unchanged record is skipped or unchanged again).
INTENT_OUTCOMES: Final[dict[str, str]] = {
    "image": "skipped:IMAGE",
    "receipt_insert": "skipped:RECEIPT",
    "line_insert": "skipped:RECEIPT_LINE",
    "word_insert": "skipped:RECEIPT_WORD",
    "letter_insert": "skipped:RECEIPT_LETTER",
    "word_modify_noise": "skipped:RECEIPT_WORD",
    "place_insert": "PlaceChanged",
    "place_modify": "PlaceChanged",
    "place_modify_irrelevant": "unchanged",
    "place_remove": "PlaceRemoved",
    "label_insert": "WordLabelSet",
    "label_modify": "WordLabelSet",
    "label_modify_irrelevant": "unchanged",
    "label_remove": "WordLabelRemoved",
    "run_insert": "EmbeddingsPublished",
    "run_status_modify": "skipped:COMPACTION_RUN",
    "run_remove": "skipped:COMPACTION_RUN",
    "letter_remove": "skipped:RECEIPT_LETTER",
    "word_remove": "WordRemoved",
    "line_remove": "LineRemoved",
    "receipt_remove": "ReceiptRemoved",
    "lock": "skipped:LOCK",
    "redelivery": "duplicate",
}
EVENT_INTENTS: Final[tuple[str, ...]] = tuple(
    intent
    for intent, outcome in INTENT_OUTCOMES.items()
    if not outcome.startswith("skipped:") and outcome not in ("unchanged", "duplicate")
)

ACCOUNT_ID: Final = "123456789012"
STREAM_LABEL: Final = "2026-01-01T00:00:00.000"
LABELS: Final[tuple[str, ...]] = (
    "MERCHANT_NAME",
    "STORE_HOURS",
    "PHONE_NUMBER",
    "WEBSITE",
    "LOYALTY_ID",
    "ADDRESS_LINE",
    "DATE",
    "TIME",
    "PAYMENT_METHOD",
    "COUPON",
    "DISCOUNT",
    "PRODUCT_NAME",
    "QUANTITY",
    "UNIT_PRICE",
    "LINE_TOTAL",
    "SUBTOTAL",
    "TAX",
    "GRAND_TOTAL",
)


class HistoryConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What to simulate. Sizes are inclusive ranges; rates are per-record or per-item odds."""

    seed: int = 0
    receipts: int = 20  # spread over about receipts/2 images, at least 1
    lines_per_receipt: tuple[int, int] = (6, 20)
    words_per_line: tuple[int, int] = (1, 6)
    letters_per_word: tuple[int, int] = (0, 2)  # RECEIPT_LETTER noise items
    redelivery_rate: float = 0.03  # fraction of records re-emitted later as exact copies
    removal_rate: float = 0.1  # drives label, word, line and receipt removals
    region: str = "eu-west-1"
    table: str = "receipts"
    start_time: int = 1767225600  # simulated clock start, epoch seconds (2026-01-01)
    delta_root: str = "deltas"  # runs point at f"{delta_root}/{run_id}/lines" and ".../words"


class LineContent(msgspec.Struct, frozen=True):
    """A line as its embedding run saw it (the bounding box origin, as the old metadata had)."""

    line_id: int
    text: str
    x: float
    y: float
    width: float
    height: float
    confidence: float


class WordContent(msgspec.Struct, frozen=True):
    """A word as its embedding run saw it."""

    line_id: int
    word_id: int
    text: str
    x: float
    y: float
    width: float
    height: float
    confidence: float


class RunContent(msgspec.Struct, frozen=True):
    """What a compaction run's embedding deltas hold: the receipt's lines and words at the run's time."""  # noqa: E501

    image_id: str
    receipt_id: int
    run_id: str
    lines_delta: str
    words_delta: str
    lines: tuple[LineContent, ...]
    words: tuple[WordContent, ...]


class History(msgspec.Struct, frozen=True):
    """A generated stream: records in stream order, one intent per record, the runs' contents.

    Records are JSON-ready dicts (what a Lambda event's ``Records`` holds). Consecutive records
    of one item share their image dicts (a MODIFY's OldImage is the previous NewImage object):
    treat them as read-only, or copy before changing one.
    """

    records: list[dict[str, Any]]
    intents: list[str]
    runs: list[RunContent]


# -- the simulated table and stream ---------------------------------------------------------


class _Image:
    """One item's state: the Python attributes, their typed encoding, their stream size."""

    __slots__ = ("encoded", "item", "size")

    def __init__(self, item: Item, previous: _Image | None = None) -> None:
        self.item = item
        if previous is None:
            self.encoded = encode_item(item)
        else:  # a MODIFY: attributes it did not touch keep their encoding (same objects)
            before, encoded = previous.item, previous.encoded
            self.encoded = {
                name: encoded[name]
                if name in before and before[name] is value
                else encode_value(value)
                for name, value in item.items()
            }
        # Stream SizeBytes counts names and values, not the JSON type tags: about 3/5 of it.
        self.size = len(_ENCODER.encode(self.encoded)) * 3 // 5


_ENCODER = msgspec.json.Encoder()
_Op = tuple[int, int, dict[str, Any], str]


class _Stream:
    """The table every simulated writer changes, and the stream records those changes make."""

    def __init__(self, config: HistoryConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.arn = (
            f"arn:aws:dynamodb:{config.region}:{ACCOUNT_ID}:table/{config.table}"
            f"/stream/{STREAM_LABEL}"
        )
        self.table: dict[tuple[str, str], _Image] = {}
        self.ops: list[_Op] = []
        self.runs: dict[int, RunContent] = {}  # by op order
        self.completions: list[int] = []  # times runs completed: when the compactor locks

    def put(self, t: int, pk: str, sk: str, item: Item, intent: str) -> int:
        """PutItem/UpdateItem: INSERT when the item is new, else MODIFY with its old image."""
        old = self.table.get((pk, sk))
        new = _Image(item, old)
        self.table[(pk, sk)] = new
        return self._emit(t, "INSERT" if old is None else "MODIFY", pk, sk, new, old, intent)

    def delete(self, t: int, pk: str, sk: str, intent: str) -> None:
        old = self.table.pop((pk, sk))
        self._emit(t, "REMOVE", pk, sk, None, old, intent)

    def _emit(
        self,
        t: int,
        name: str,
        pk: str,
        sk: str,
        new: _Image | None,
        old: _Image | None,
        intent: str,
    ) -> int:
        size = len(pk) + len(sk) + 8
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": t,
            "Keys": {"PK": {"S": pk}, "SK": {"S": sk}},
        }
        if new is not None:
            body["NewImage"] = new.encoded
            size += new.size
        if old is not None:
            body["OldImage"] = old.encoded
            size += old.size
        body["SequenceNumber"] = ""  # assigned in stream order, once the timeline is merged
        body["SizeBytes"] = size
        body["StreamViewType"] = "NEW_AND_OLD_IMAGES"
        record = {
            "eventID": f"{self.rng.getrandbits(128):032x}",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.config.region,
            "dynamodb": body,
            "eventSourceARN": self.arn,
        }
        order = len(self.ops)
        self.ops.append((t, order, record, intent))
        return order


# -- reference data ---------------------------------------------------------------------------


class _Merchant(msgspec.Struct, frozen=True):
    name: str  # as printed on the receipt
    display: str  # as Google Places names it
    category: str
    street: str
    city: str
    phone: str
    website: str
    latitude: float
    longitude: float
    place_id: str
    products: tuple[str, ...]


# fmt: off
_MERCHANTS: Final[tuple[_Merchant, ...]] = (
    _Merchant(
        "TRADER JOE'S", "Trader Joe's", "grocery_store", "2738 Agoura Rd",
        "Westlake Village, CA 91361", "(805) 494-5040", "traderjoes.com", 34.1478, -118.8317,
        "ChIJ7wYxR1Yl6IARr8NKz1b3sEo",
        ("BANANAS", "ORGANIC MILK", "SOURDOUGH BREAD", "EGGS LARGE 12CT", "AVOCADOS BAG",
         "GREEK YOGURT", "MANDARINS", "DARK CHOCOLATE", "SPINACH", "PEANUT BUTTER"),
    ),
    _Merchant(
        "COSTCO WHOLESALE", "Costco Wholesale", "warehouse_store", "5700 Lindero Canyon Rd",
        "Westlake Village, CA 91362", "(818) 707-0022", "costco.com", 34.1522, -118.7997,
        "ChIJq6qq6jQl6IARwZ4bD0wQp1c",
        ("KS PAPER TOWEL", "ROTISSERIE CHKN", "KS WATER 40PK", "BLUEBERRIES 18OZ", "CROISSANTS",
         "OLIVE OIL 2L", "COFFEE BEANS 2LB", "SALMON FILLET", "TP 30 ROLLS"),
    ),
    _Merchant(
        "SPROUTS FARMERS MARKET", "Sprouts Farmers Market", "grocery_store", "2310 Michael Dr",
        "Newbury Park, CA 91320", "(805) 498-2620", "sprouts.com", 34.1849, -118.9101,
        "ChIJd8BlQ2Bm6IARsDnV9u8kEjM",
        ("ORG STRAWBERRIES", "BULK ALMONDS", "KOMBUCHA", "HASS AVOCADO", "ORG KALE", "OAT MILK",
         "GRANOLA", "TOMATOES ON VINE"),
    ),
    _Merchant(
        "STARBUCKS", "Starbucks", "cafe", "30861 Thousand Oaks Blvd", "Westlake Village, CA 91362",
        "(818) 991-0401", "starbucks.com", 34.1466, -118.8049, "ChIJ3S-JXmom6IAR8nPj0VtAs3I",
        ("GRANDE LATTE", "VENTI COLD BREW", "BUTTER CROISSANT", "BANANA BREAD", "EGG BITES",
         "TALL MOCHA", "CHAI TEA LATTE"),
    ),
    _Merchant(
        "CVS PHARMACY", "CVS", "pharmacy", "3900 E Thousand Oaks Blvd", "Thousand Oaks, CA 91362",
        "(805) 495-8444", "cvs.com", 34.1601, -118.8234, "ChIJk0Q7bWEk6IARpYvZrj2Xh0U",
        ("IBUPROFEN 200MG", "TOOTHPASTE", "VITAMIN D3", "BAND AIDS", "SHAMPOO", "GREETING CARD",
         "HAND SOAP"),
    ),
    _Merchant(
        "THE HOME DEPOT", "The Home Depot", "hardware_store", "400 N Moorpark Rd",
        "Thousand Oaks, CA 91360", "(805) 379-2290", "homedepot.com", 34.1764, -118.8755,
        "ChIJ0R3_4xIk6IARZ5Q2f6hDsYk",
        ("2X4 STUD 8FT", "WOOD SCREWS", "PAINT ROLLER", "LED BULB 4PK", "DUCT TAPE",
         "GARDEN HOSE", "SANDPAPER"),
    ),
    _Merchant(
        "IN-N-OUT BURGER", "In-N-Out Burger", "restaurant", "4115 E Thousand Oaks Blvd",
        "Westlake Village, CA 91362", "(800) 786-1000", "in-n-out.com", 34.1484, -118.8113,
        "ChIJ6YyVd1Mk6IARwS6v3h8q2rQ",
        ("DOUBLE-DOUBLE", "CHEESEBURGER", "FRENCH FRIES", "CHOC SHAKE", "LEMONADE MED"),
    ),
    _Merchant(
        "CAFÉ RIO", "Café Rio Mexican Grill", "restaurant", "2900 Townsgate Rd",
        "Westlake Village, CA 91361", "(805) 557-1940", "caferio.com", 34.1561, -118.8290,
        "ChIJ_3rM3Ekl6IAR1c8yAF2p9wE",
        ("PORK BARBACOA", "CHICKEN TOSTADA", "CHIPS & QUESO", "HORCHATA"),
    ),
)
# fmt: on
_FILLERS: Final = ("ST#0421", "OP#17", "TRN#8841", "REG", "3", "ITEMS", "*", "SAVED", "MEMBER")
_CONFUSIONS: Final[dict[str, str]] = {
    "LINE_TOTAL": "UNIT_PRICE",
    "UNIT_PRICE": "LINE_TOTAL",
    "SUBTOTAL": "GRAND_TOTAL",
    "GRAND_TOTAL": "SUBTOTAL",
    "TAX": "LINE_TOTAL",
    "DATE": "TIME",
    "TIME": "DATE",
    "ADDRESS_LINE": "MERCHANT_NAME",
    "MERCHANT_NAME": "PRODUCT_NAME",
    "PRODUCT_NAME": "MERCHANT_NAME",
    "PHONE_NUMBER": "LOYALTY_ID",
    "PAYMENT_METHOD": "LOYALTY_ID",
    "QUANTITY": "UNIT_PRICE",
    "WEBSITE": "MERCHANT_NAME",
    "DISCOUNT": "COUPON",
}
_PROPOSERS: Final = ("llm-initial-tagging", "label-suggestion-agent", "label-harmonizer")
_PATTERN_PROPOSER: Final = "pattern-matcher"
_VALIDATORS: Final = ("label-evaluator-llm", "label-validation-agent", "manual-review")
_VALIDATION_METHODS: Final = ("PHONE_LOOKUP", "ADDRESS_LOOKUP", "TEXT_SEARCH", "INFERENCE")
_MATCH_FIELDS: Final = ("name", "phone", "address", "website")
_EXTRACTED_TYPES: Final[dict[str, str]] = {
    "PHONE_NUMBER": "phone",
    "ADDRESS_LINE": "address",
    "WEBSITE": "url",
}


def _iso(t: int, micros: int) -> str:
    """An ISO timestamp on the simulated clock, as Python writes ``datetime.isoformat()``."""
    return datetime.fromtimestamp(t, UTC).replace(microsecond=micros).isoformat()


def _n(value: float) -> Decimal:
    return Decimal(f"{value:.8f}")


def _slug(name: str) -> str:
    out = []
    previous_sep = True
    for char in name.upper():
        if "A" <= char <= "Z" or "0" <= char <= "9":
            out.append(char)
            previous_sep = False
        elif not previous_sep:
            out.append("_")
            previous_sep = True
    return "".join(out).strip("_")


def _geometry(x: float, y: float, width: float, height: float, slope: float) -> dict[str, Value]:
    """Bounding box, the four corners and the angle, as the OCR entities store them."""
    rise = width * slope
    angle = math.atan(slope)
    left, bottom, right, top = _n(x), _n(y), _n(x + width), _n(y + height)
    return {
        "bounding_box": {"x": left, "y": bottom, "width": _n(width), "height": _n(height)},
        "top_right": {"x": right, "y": _n(y + height + rise)},
        "top_left": {"x": left, "y": top},
        "bottom_right": {"x": right, "y": _n(y + rise)},
        "bottom_left": {"x": left, "y": bottom},
        "angle_degrees": _n(math.degrees(angle)),
        "angle_radians": _n(angle),
    }


# -- one receipt's life -----------------------------------------------------------------------


class _Token(msgspec.Struct):
    text: str
    label: str | None


class _Receipt:
    """Simulates every writer that touches one receipt, on the receipt's own clock."""

    def __init__(
        self, stream: _Stream, image_id: str, receipt_id: int, merchant: _Merchant, t: int
    ) -> None:
        self.s = stream
        self.rng = stream.rng
        self.config = stream.config
        self.image_id = image_id
        self.receipt_id = receipt_id
        self.merchant = merchant
        self.t = t
        self.pk = f"IMAGE#{image_id}"
        self.rsk = f"RECEIPT#{receipt_id:05d}"
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
        return dict(self.s.table[(self.pk, sk)].item)

    def line_sk(self, line_id: int) -> str:
        return f"{self.rsk}#LINE#{line_id:05d}"

    def word_sk(self, word: tuple[int, int]) -> str:
        return f"{self.rsk}#LINE#{word[0]:05d}#WORD#{word[1]:05d}"

    def iso(self) -> str:
        return _iso(self.t, self.rng.randrange(1_000_000))

    # the lifecycle

    def live(self) -> None:
        """The whole life of the receipt, in the order its writers act."""
        rng = self.rng
        rate = self.config.removal_rate
        self.insert_receipt()
        self.ocr(self.receipt_text())
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

    def insert_receipt(self) -> None:
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
            "top_left": {"x": _n(0.02), "y": _n(0.98)},
            "top_right": {"x": _n(0.97), "y": _n(0.99)},
            "bottom_left": {"x": _n(0.03), "y": _n(0.01)},
            "bottom_right": {"x": _n(0.98), "y": _n(0.02)},
            "sha256": f"{rng.getrandbits(256):064x}",
            "cdn_s3_bucket": "receipts-cdn",
            "cdn_s3_key": f"assets/{self.image_id}_RECEIPT_{self.receipt_id:05d}.png",
        }
        self.put(self.rsk, item, "receipt_insert")

    def receipt_text(self) -> list[list[_Token]]:
        """The printed lines: header, items, totals, each cut or padded to a word count."""
        rng = self.rng
        m = self.merchant
        low, high = self.config.lines_per_receipt
        count = rng.randint(low, high)
        day = datetime.fromtimestamp(self.t - rng.randint(0, 5 * 86400), UTC)
        date = day.strftime("%m/%d/%Y")
        clock = f"{rng.randint(7, 21):02d}:{rng.randint(0, 59):02d}"
        area, number = m.phone.split(" ")
        header = [
            [_Token(w, "MERCHANT_NAME") for w in m.name.split()],
            [_Token(w, "ADDRESS_LINE") for w in m.street.split()],
            [_Token(w, "ADDRESS_LINE") for w in m.city.split()],
            [_Token(area, "PHONE_NUMBER"), _Token(number, "PHONE_NUMBER")],
            [_Token(date, "DATE"), _Token(clock, "TIME")],
        ]
        header_count = min(len(header), (count + 1) // 2)
        footer_count = min(5, count - header_count)
        item_count = count - header_count - footer_count
        items: list[list[_Token]] = []
        subtotal = 0
        for _ in range(item_count):
            cents = rng.randint(99, 1999)
            product = rng.choice(m.products)
            tokens = [_Token(w, "PRODUCT_NAME") for w in product.split()]
            if rng.random() < 0.25:
                quantity = rng.randint(2, 4)
                tokens += [
                    _Token(str(quantity), "QUANTITY"),
                    _Token("@", None),
                    _Token(f"{cents / 100:.2f}", "UNIT_PRICE"),
                ]
                cents *= quantity
            tokens.append(_Token(f"{cents / 100:.2f}", "LINE_TOTAL"))
            subtotal += cents
            items.append(tokens)
        tax = subtotal * 725 // 10000
        total = subtotal + tax
        card = f"****{rng.randint(0, 9999):04d}"
        footer_all = {
            "subtotal": [_Token("SUBTOTAL", None), _Token(f"{subtotal / 100:.2f}", "SUBTOTAL")],
            "tax": [_Token("TAX", None), _Token(f"{tax / 100:.2f}", "TAX")],
            "total": [_Token("TOTAL", None), _Token(f"{total / 100:.2f}", "GRAND_TOTAL")],
            "payment": [_Token("VISA", "PAYMENT_METHOD"), _Token(card, "PAYMENT_METHOD")],
            "website": [_Token(m.website.upper(), "WEBSITE")],
        }
        priority = ("total", "subtotal", "tax", "payment", "website")
        chosen = set(priority[:footer_count])
        footer = [footer_all[name] for name in footer_all if name in chosen]
        lines = header[:header_count] + items + footer
        w_low, w_high = self.config.words_per_line
        shaped = []
        for tokens in lines:
            n = rng.randint(w_low, w_high)
            shaped.append(_pad(tokens, n, rng))
        return shaped

    def ocr(self, lines: list[list[_Token]]) -> None:
        """The upload writes lines, then words, then letters, in batches of 25."""
        rng = self.rng
        spacing = 0.9 / max(len(lines), 1)
        first = self.next_line
        self.next_line += len(lines)
        new_lines: list[tuple[int, list[_Token]]] = []
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
                **_geometry(x, y, width, height, slope),
                "confidence": Decimal(f"{confidence:.2f}"),
                "embedding_status": "NONE",
                "is_noise": False,
            }
            line_items.append((line_sk, line_item))
            self.line_content[line_id] = LineContent(
                line_id, text, *_floats(x, y, width, height), confidence
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
                kind = _EXTRACTED_TYPES.get(token.label or "")
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
                    **_geometry(cursor, y, word_width, height, slope),
                    "confidence": Decimal(f"{word_conf:.2f}"),
                    "extracted_data": extracted,
                    "embedding_status": "NONE",
                    "is_noise": False,
                    "histogram": histogram,
                    "num_chars": Decimal(len(token.text)),
                }
                word_items.append((word_sk, word_item))
                self.word_content[word] = WordContent(
                    line_id, word_id, token.text, *_floats(cursor, y, word_width, height), word_conf
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
                    letter_sk = f"{word_sk}#LETTER#{letter_id:05d}"
                    letter_item: Item = {
                        "PK": self.pk,
                        "SK": letter_sk,
                        "TYPE": "RECEIPT_LETTER",
                        "text": char,
                        **_geometry(cursor + index * char_width, y, char_width, height, slope),
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
        m = self.merchant
        candidates = [
            [_Token("THANK", None), _Token("YOU", None)],
            [_Token(m.website.upper(), "WEBSITE")],
            [_Token("MEMBER", None), _Token("SAVINGS", None), _Token("-1.00", "DISCOUNT")],
        ]
        tokens = self.rng.choice(candidates)
        w_low, w_high = self.config.words_per_line
        n = max(w_low, min(w_high, len(tokens)))
        self.ocr([_pad(tokens, n, self.rng)])

    # labels

    def plan_labels(self) -> list[tuple[int, int, str, bool]]:
        """Proposals: (line, word, label, pattern-proposable); correct ones and some wrong."""
        rng = self.rng
        proposals: list[tuple[int, int, str, bool]] = []
        for word, truth in self.truth.items():
            if truth is not None and rng.random() < 0.85:
                pattern = truth in ("PHONE_NUMBER", "DATE", "TIME", "WEBSITE")
                proposals.append((word[0], word[1], truth, pattern))
            if truth is not None and rng.random() < 0.08:
                proposals.append((word[0], word[1], _CONFUSIONS.get(truth, "PRODUCT_NAME"), False))
            elif truth is None and rng.random() < 0.03:
                proposals.append((word[0], word[1], rng.choice(LABELS), False))
        seen: set[tuple[int, int, str]] = set()
        unique = []
        for proposal in proposals:
            if proposal[:3] not in seen:
                seen.add(proposal[:3])
                unique.append(proposal)
        return unique

    def label_sk(self, word: tuple[int, int], label: str) -> str:
        return f"{self.word_sk(word)}#LABEL#{label}"

    def insert_labels(self, proposals: list[tuple[int, int, str, bool]]) -> None:
        rng = self.rng
        for line_id, word_id, label, pattern in proposals:
            word = (line_id, word_id)
            if word not in self.labels:
                continue  # the word was removed meanwhile
            self.tick(0, 3)
            proposer = _PATTERN_PROPOSER if pattern else rng.choice(_PROPOSERS)
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
        validator = self.rng.choice(_VALIDATORS)
        item["GSI3PK"] = f"VALIDATION_STATUS#{status}"
        item["validation_status"] = status
        item["reasoning"] = f"[{validator}] Decision: {status}"
        self.put(sk, item, "label_modify")
        self.labels[word][label] = status

    def validate_labels(self) -> None:
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

    # the merchant place

    def insert_place(self, kind: str | None = None) -> None:
        rng = self.rng
        m = self.merchant
        if kind is None:
            kind = "RECEIPT_METADATA" if rng.random() < 0.2 else "RECEIPT_PLACE"
        stamp = self.iso()
        method = rng.choice(_VALIDATION_METHODS)
        matched = sorted(rng.sample(_MATCH_FIELDS, rng.randint(1, 3)))
        reasoning = f"Matched {', '.join(matched)} via {method.lower()}"
        if kind == "RECEIPT_METADATA":
            sk = f"{self.rsk}#METADATA"
            item: Item = {
                "PK": self.pk,
                "SK": sk,
                "GSI1PK": f"MERCHANT#{_slug(m.name)}",
                "GSI1SK": f"IMAGE#{self.image_id}#{sk}",
                "GSI2PK": f"PLACE#{m.place_id}",
                "GSI2SK": f"IMAGE#{self.image_id}#{sk}",
                "GSI3PK": "MERCHANT_VALIDATION",
                "GSI3SK": "STATUS#MATCHED",
                "TYPE": "RECEIPT_METADATA",
                "place_id": m.place_id,
                "merchant_name": m.name,
                "merchant_category": m.category,
                "address": f"{m.street}, {m.city}",
                "phone_number": m.phone,
                "matched_fields": frozenset(matched),
                "timestamp": stamp,
                "validated_by": method,
                "reasoning": reasoning,
                "canonical_place_id": None,  # optional strings left empty are written NULL
                "canonical_merchant_name": None,
                "canonical_address": None,
                "canonical_phone_number": None,
                "validation_status": "MATCHED",
            }
        else:
            sk = f"{self.rsk}#PLACE"
            confidence = Decimal(f"{rng.uniform(0.7, 0.99):.2f}")
            item = {
                "PK": self.pk,
                "SK": sk,
                "GSI1PK": f"MERCHANT#{_slug(m.display)}",
                "GSI1SK": f"IMAGE#{self.image_id}#{sk}",
                "GSI2PK": f"PLACE#{m.place_id}",
                "GSI2SK": f"IMAGE#{self.image_id}#{sk}",
                "GSI3PK": "PLACE_VALIDATION",
                "GSI3SK": f"CONFIDENCE#{confidence:.4f}#STATUS#MATCHED#IMAGE#{self.image_id}",
                "GSI4PK": f"IMAGE#{self.image_id}#{self.rsk}",
                "GSI4SK": "1_PLACE",
                "TYPE": "RECEIPT_PLACE",
                "image_id": self.image_id,
                "receipt_id": Decimal(self.receipt_id),
                "place_id": m.place_id,
                "merchant_name": m.display,
                "validation_status": "MATCHED",
                "timestamp": stamp,
                "confidence": confidence,
                "merchant_category": m.category,
                "formatted_address": f"{m.street}, {m.city}, USA",
                "short_address": m.street,
                "phone_number": m.phone,
                "phone_intl": "+1 " + m.phone.replace("(", "").replace(") ", "-"),
                "website": f"https://www.{m.website}/",
                "maps_url": f"https://maps.google.com/?cid={rng.getrandbits(63)}",
                "business_status": "OPERATIONAL",
                "plus_code": None,
                "validated_by": method,
                "reasoning": reasoning,
                "places_api_version": "v1",
                "merchant_types": [m.category, "point_of_interest", "establishment"],
                "matched_fields": list[Value](matched),
                "latitude": _n(m.latitude),
                "longitude": _n(m.longitude),
                "open_now": rng.random() < 0.7,
            }
        self.put(sk, item, "place_insert")
        self.place_sk = sk

    def modify_place(self) -> None:
        """Later resolution passes: some change a relevant field, most only bookkeeping."""
        rng = self.rng
        for _ in range(rng.randint(0, 3)):
            if self.place_sk is None:
                return
            self.tick(60, 43200)
            item = self.current(self.place_sk)
            item["timestamp"] = self.iso()
            if rng.random() < 0.45:
                self.modify_relevant(item)
                self.put(self.place_sk, item, "place_modify")
                continue
            choice = rng.randrange(3)
            if choice == 0:
                item["validated_by"] = "MANUAL" if item["validated_by"] != "MANUAL" else "INFERENCE"
            elif choice == 1:
                fields = sorted(rng.sample(_MATCH_FIELDS, rng.randint(1, 4)))
                if item["TYPE"] == "RECEIPT_METADATA":
                    item["matched_fields"] = frozenset(fields)
                else:
                    item["matched_fields"] = list[Value](fields)
            else:
                status = "UNSURE" if item["validation_status"] == "MATCHED" else "MATCHED"
                item["validation_status"] = status
                if item["TYPE"] == "RECEIPT_METADATA":
                    item["GSI3SK"] = f"STATUS#{status}"
                else:
                    confidence = Decimal(f"{rng.uniform(0.5, 0.99):.2f}")
                    item["confidence"] = confidence
                    item["GSI3SK"] = (
                        f"CONFIDENCE#{confidence:.4f}#STATUS#{status}#IMAGE#{self.image_id}"
                    )
            self.put(self.place_sk, item, "place_modify_irrelevant")

    def modify_relevant(self, item: Item) -> None:
        """Change one relevant place field to a different value."""
        m = self.merchant
        metadata = item["TYPE"] == "RECEIPT_METADATA"
        options = ["merchant_name", "phone_number", "merchant_category"]
        if metadata and item.get("canonical_merchant_name") is None:
            options.append("canonical_merchant_name")
        field = self.rng.choice(options)
        if field == "merchant_name":
            name = m.display if item["merchant_name"] != m.display else m.name
            item["merchant_name"] = name
            if not metadata or item.get("canonical_merchant_name") is None:
                item["GSI1PK"] = f"MERCHANT#{_slug(name)}"
        elif field == "phone_number":
            digits = "".join(c for c in m.phone if c.isdigit())
            dashed = f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
            item["phone_number"] = dashed if item["phone_number"] != dashed else m.phone
        elif field == "merchant_category":
            alternatives = {"grocery_store": "supermarket", "restaurant": "fast_food_restaurant"}
            other = alternatives.get(m.category, "store")
            item["merchant_category"] = other if item["merchant_category"] != other else m.category
        else:
            item["canonical_merchant_name"] = m.display
            item["canonical_place_id"] = m.place_id
            item["GSI1PK"] = f"MERCHANT#{_slug(m.display)}"

    # embeddings

    def embed(self) -> None:
        """Mark words PENDING, write the deltas, INSERT the run, then the compactor's MODIFYs."""
        rng = self.rng
        noisy = [word for word in self.word_content if rng.random() < 0.25]
        self.tick(0, 2)
        for word in noisy:
            self.set_word_status(word, "PENDING")
        self.tick(5, 40)
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        sk = f"{self.rsk}#COMPACTION_RUN#{run_id}"
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
        sk = self.word_sk(word)
        item = self.current(sk)
        item["embedding_status"] = status
        self.put(sk, item, "word_modify_noise")

    # edits and deletes

    def remove_word(self, word: tuple[int, int]) -> None:
        """A word goes with its labels and letters first, as the app deletes them."""
        for label in list(self.labels[word]):
            self.tick(0, 1)
            self.delete(self.label_sk(word, label), "label_remove")
        sk = self.word_sk(word)
        for letter_id in self.letters[word]:
            self.delete(f"{sk}#LETTER#{letter_id:05d}", "letter_remove")
        self.tick(0, 1)
        self.delete(sk, "word_remove")
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
            sk = self.word_sk(word)
            for letter_id in self.letters[word]:
                self.delete(f"{sk}#LETTER#{letter_id:05d}", "letter_remove")
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


def _pad(tokens: list[_Token], n: int, rng: random.Random) -> list[_Token]:
    """Exactly ``n`` words: the line cut short, or filled out with register noise."""
    cut = tokens[:n]
    missing = n - len(cut)
    while missing > 0:
        fill = rng.sample(_FILLERS, min(missing, len(_FILLERS)))
        cut += [_Token(text, None) for text in fill]
        missing -= len(fill)
    return cut


def _floats(x: float, y: float, width: float, height: float) -> tuple[float, float, float, float]:
    """The values exactly as stored (8 decimals), so a delta matches the table."""
    return (
        float(f"{x:.8f}"),
        float(f"{y:.8f}"),
        float(f"{width:.8f}"),
        float(f"{height:.8f}"),
    )


# -- images, locks, the merged timeline ----------------------------------------------------------


def _insert_image(stream: _Stream, t: int, image_id: str, receipts: int) -> None:
    rng = stream.rng
    image_type = "PHOTO" if rng.random() < 0.7 else "SCAN"
    item: Item = {
        "PK": f"IMAGE#{image_id}",
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
        "timestamp_added": _iso(t, rng.randrange(1_000_000)),
        "raw_s3_bucket": "receipts-raw",
        "raw_s3_key": f"raw/{image_id}.png",
        "sha256": f"{rng.getrandbits(256):064x}",
        "cdn_s3_bucket": "receipts-cdn",
        "cdn_s3_key": f"assets/{image_id}.jpg",
        "image_type": image_type,
        "receipt_count": Decimal(receipts),
    }
    stream.put(t, f"IMAGE#{image_id}", "IMAGE", item, "image")


def _locks(stream: _Stream) -> None:
    """The compactor's lock per collection: acquire, heartbeat, release around run completions."""
    rng = stream.rng
    start = stream.config.start_time
    completions = sorted(stream.completions)
    for collection in ("lines", "words"):
        lock_id = f"chroma-{collection}-update"
        pk, sk = f"LOCK#{collection}#{lock_id}", "LOCK"
        free_at = start - 1
        for completed in completions:
            acquired = max(start, completed - rng.randint(1, 20))
            if acquired <= free_at or rng.random() < 0.5:
                continue
            released = acquired + rng.randint(20, 240)
            owner = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            expires = acquired + 300
            item: Item = {
                "PK": pk,
                "SK": sk,
                "GSI1PK": f"LOCK#{collection}",
                "GSI1SK": f"EXPIRES#{expires}",
                "TYPE": "COMPACTION_LOCK",
                "lock_id": lock_id,
                "owner": owner,
                "expires": Decimal(expires),
                "collection": collection,
                "heartbeat": None,
            }
            stream.put(acquired, pk, sk, item, "lock")
            beat = acquired
            while True:
                beat += rng.randint(30, 60)
                if beat >= released:
                    break
                item = dict(item)
                item["expires"] = Decimal(beat + 300)
                item["GSI1SK"] = f"EXPIRES#{beat + 300}"
                item["heartbeat"] = _iso(beat, rng.randrange(1_000_000))
                stream.put(beat, pk, sk, item, "lock")
            stream.delete(released, pk, sk, "lock")
            free_at = released


def _check(config: HistoryConfig) -> None:
    for name in ("lines_per_receipt", "words_per_line", "letters_per_word"):
        low, high = getattr(config, name)
        minimum = 0 if name == "letters_per_word" else 1
        if not minimum <= low <= high:
            raise ValueError(f"{name} must be an inclusive range ({minimum} <= low <= high)")
    if config.receipts < 0:
        raise ValueError("receipts must not be negative")
    for name in ("redelivery_rate", "removal_rate"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")


def generate_history(config: HistoryConfig = HistoryConfig()) -> History:
    """Simulate every writer on one timeline and return the stream they produced."""
    _check(config)
    collecting = gc.isenabled()
    gc.disable()  # millions of small dicts and no cycles: the collector only slows this down
    try:
        return _generate(config)
    finally:
        if collecting:
            gc.enable()


def _generate(config: HistoryConfig) -> History:
    rng = random.Random(config.seed)
    stream = _Stream(config, rng)
    image_count = max(1, config.receipts // 2)
    per_image = [1 if index < config.receipts else 0 for index in range(image_count)]
    for _ in range(config.receipts - sum(per_image)):
        per_image[rng.randrange(image_count)] += 1
    t = config.start_time
    for index, receipts in enumerate(per_image):
        if index:
            t += int(rng.expovariate(1 / 45)) + 1
        image_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        _insert_image(stream, t, image_id, receipts)
        start = t + rng.randint(2, 20)
        for receipt_id in range(1, receipts + 1):
            merchant = rng.choice(_MERCHANTS)
            _Receipt(stream, image_id, receipt_id, merchant, start + rng.randint(0, 5)).live()
    _locks(stream)
    return _finish(stream)


def _finish(stream: _Stream) -> History:
    """Merge the writers' records by time, number them, and weave in the redeliveries."""
    rng = stream.rng
    ops = sorted(stream.ops)  # (time, order): per item, the order it happened in
    sequence = 4 * 10**26 + rng.getrandbits(64)
    records: list[dict[str, Any]] = []
    intents: list[str] = []
    runs: list[RunContent] = []
    for _t, order, record, intent in ops:
        sequence += rng.getrandbits(20) + 1  # random gaps, as shards and other tables leave
        record["dynamodb"]["SequenceNumber"] = str(sequence)
        records.append(record)
        intents.append(intent)
        if intent == "run_insert":
            runs.append(stream.runs[order])
    copies = _redeliveries(rng, len(records), stream.config.redelivery_rate)
    if not copies:
        return History(records=records, intents=intents, runs=runs)
    woven: list[dict[str, Any]] = []
    woven_intents: list[str] = []
    for index, record in enumerate(records):
        woven.append(record)
        woven_intents.append(intents[index])
        for start, length in copies.get(index, ()):
            for original in records[start : start + length]:
                woven.append(msgspec.json.decode(_ENCODER.encode(original)))
                woven_intents.append("redelivery")
    return History(records=woven, intents=woven_intents, runs=runs)


def _redeliveries(rng: random.Random, size: int, rate: float) -> dict[int, list[tuple[int, int]]]:
    """Windows of records (a retried batch) re-emitted a little later: after index → windows."""
    wanted = round(size * rate)
    windows: dict[int, list[tuple[int, int]]] = {}
    copied = 0
    while copied < wanted:
        length = min(rng.choice((1, 2, 3, 5, 8, 10)), wanted - copied, size)
        start = rng.randrange(size - length + 1)
        after = min(size - 1, start + length - 1 + rng.randint(0, 100))
        windows.setdefault(after, []).append((start, length))
        copied += length
    return windows


def config_for_records(n: int, seed: int = 0) -> HistoryConfig:
    """A default config whose history has roughly ``n`` records (within about 20 %).

    Measured, not estimated: a pilot history of the same seed gives the records per receipt,
    so the answer stays right when the simulation changes. Tiny ``n`` get one receipt.
    """
    return HistoryConfig(seed=seed, receipts=max(1, round(n / _records_per_receipt(seed))))


@functools.lru_cache(maxsize=32)
def _records_per_receipt(seed: int) -> float:
    pilot_receipts = 40
    pilot = generate_history(HistoryConfig(seed=seed, receipts=pilot_receipts))
    return len(pilot.records) / pilot_receipts


# -- export and damage ---------------------------------------------------------------------------


def to_jsonl(records: Sequence[dict[str, Any]]) -> bytes:
    """One compact JSON object per line, keys in their insertion order: deterministic bytes."""
    return _ENCODER.encode_lines(records)


CORRUPTIONS: Final[tuple[str, ...]] = (
    "truncated_json",
    "bad_attribute_type",
    "missing_keys",
    "bad_utf8",
    "unknown_event_name",
    "non_numeric_n",
    "empty_object",
)


def corrupt_lines(jsonl: bytes, count: int, seed: int) -> bytes:
    """Replace or insert ``count`` malformed lines, each of which ingest must park.

    The kinds (:data:`CORRUPTIONS`) take turns. Each damaged line is a copy of a real line
    with a fresh eventID (or unreadable, or empty), so each parks under its own identity. The
    first line is never damaged (nor, for an empty input, cut short), so the input still reads
    as JSON Lines rather than as one broken multi-line document.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)
    lines = [line for line in jsonl.split(b"\n") if line.strip()]
    parsed = [_decode_record(line) for line in lines]
    bases = [record for record in parsed if record is not None] or [_TEMPLATE]
    decoded_bases = [record for record in bases if _decodes_new_image(record)]
    entries: list[tuple[bytes, bool]] = [(line, False) for line in lines]
    kinds = list(CORRUPTIONS)
    rng.shuffle(kinds)
    seen: set[bytes] = set(lines)
    for number in range(count):
        kind = kinds[number % len(kinds)]
        for _attempt in range(1000):  # fresh eventIDs make a repeat all but impossible
            damaged = _damage(kind, rng, bases, decoded_bases, number)
            if damaged not in seen:
                break
        else:  # pragma: no cover - a repeat a thousand times over is a bug in _damage
            raise RuntimeError(f"cannot make a distinct {kind} line")
        seen.add(damaged)
        replaceable = [i for i in range(1, len(entries)) if not entries[i][1]]
        if replaceable and rng.random() < 0.5:
            entries[rng.choice(replaceable)] = (damaged, True)
        else:
            entries.insert(rng.randint(1, len(entries)) if entries else 0, (damaged, True))
    if entries and entries[0][1] and not _readable_first(entries[0][0]):
        swap = next((i for i, (line, _) in enumerate(entries) if _readable_first(line)), None)
        if swap is None:
            entries[0] = (b"{}", True)
        else:
            entries[0], entries[swap] = entries[swap], entries[0]
    return b"".join(line + b"\n" for line, _ in entries)


_TEMPLATE: Final[dict[str, Any]] = {
    "eventID": "0" * 32,
    "eventName": "INSERT",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "eu-west-1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1767225600,
        "Keys": {"PK": {"S": "IMAGE#00000000-0000-4000-8000-000000000000"}, "SK": {"S": "IMAGE"}},
        "NewImage": {
            "PK": {"S": "IMAGE#00000000-0000-4000-8000-000000000000"},
            "SK": {"S": "IMAGE"},
            "TYPE": {"S": "IMAGE"},
        },
        "SequenceNumber": "400000000000000000000000001",
        "SizeBytes": 120,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    },
    "eventSourceARN": (
        f"arn:aws:dynamodb:eu-west-1:{ACCOUNT_ID}:table/receipts/stream/{STREAM_LABEL}"
    ),
}


def _decode_record(line: bytes) -> dict[str, Any] | None:
    try:
        record = msgspec.json.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("dynamodb"), dict):
        return None
    keys = record["dynamodb"].get("Keys")
    return record if isinstance(keys, dict) else None


def _decodes_new_image(record: dict[str, Any]) -> bool:
    """Whether ingest decodes this record's NewImage (so a bad number in it must park)."""
    try:
        key = parse_key(
            record["dynamodb"]["Keys"]["PK"]["S"], record["dynamodb"]["Keys"]["SK"]["S"]
        )
    except (KeyError, TypeError, ValueError):
        return False
    if "NewImage" not in record["dynamodb"]:
        return False
    if isinstance(key, CompactionRunKey):
        return bool(record.get("eventName") == "INSERT")
    return isinstance(key, PlaceKey | LabelKey)


def _readable_first(line: bytes) -> bool:
    """A first line read_input can still tell is one JSON Lines record (complete JSON)."""
    try:
        msgspec.json.decode(line)
    except msgspec.DecodeError:
        return False
    except UnicodeDecodeError:
        return True
    return True


def _damage(
    kind: str,
    rng: random.Random,
    bases: list[dict[str, Any]],
    decoded_bases: list[dict[str, Any]],
    number: int,
) -> bytes:
    if kind == "empty_object":
        return b"{" + b" " * (number // len(CORRUPTIONS)) + b"}"
    pool = decoded_bases if kind == "non_numeric_n" and decoded_bases else bases
    record: dict[str, Any] = msgspec.json.decode(_ENCODER.encode(rng.choice(pool)))
    record["eventID"] = f"{rng.getrandbits(128):032x}"
    body = record["dynamodb"]
    if kind == "truncated_json":
        data = _ENCODER.encode(record)
        return data[: rng.randint(len(data) // 4, len(data) - 2)]
    if kind == "bad_attribute_type":
        bad = rng.choice(({"S": 42}, {"STRING": "x"}, {"N": ["1"]}, {"S": "a", "N": "1"}))
        body["Keys"][rng.choice(("PK", "SK"))] = bad
    elif kind == "missing_keys":
        del body["Keys"]
    elif kind == "unknown_event_name":
        record["eventName"] = rng.choice(("UPDATE", "DELETE", "TTL_EXPIRE", "insert"))
    elif kind == "non_numeric_n":
        image = body.get("NewImage")
        numbers = [n for n, v in (image or {}).items() if isinstance(v, dict) and "N" in v]
        garbage = {"N": rng.choice(("twelve", "1O", "0x1F", "NaN", "1,5", ""))}
        if image is not None and _decodes_new_image(record):
            image[rng.choice(numbers) if numbers else "confidence"] = garbage
        else:
            body["Keys"]["SK"] = garbage  # Keys are always decoded
    data = _ENCODER.encode(record)
    if kind == "bad_utf8":
        at = data.find(b'"S":"')
        at = at + 5 if at >= 0 else data.find(b'"eventID":"') + 11
        return data[:at] + rng.choice((b"\xff", b"\xc3\x28", b"\x80")) + data[at:]
    return data
