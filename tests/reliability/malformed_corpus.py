"""Malformed stream records made from real generated ones, each with what ingest must do with it.

:func:`build_corpus` takes a generated history (real records, in stream order) and inserts
malformed records between them: copies of real records damaged in one way each
(:data:`MALFORMED_KINDS`), every one of which must be *parked* (a record that cannot be read is
kept whole with the reason: docs/stream-records.md), plus records of well-formed but unknown
key families, which must be *skipped* by kind. Every entry says what ingest must make of it
(:class:`Entry`), worked out here from the history's intents and the damage done, without the
code under test.

Each damaged record gets a fresh eventID (``bad-...``), or none that can be read, so it parks
under its own identity; the ``duplicate_event_id`` kind instead carries the eventID of a valid
record of the corpus, with different (bad) content, and must park under that eventID while the
valid record is appended as usual. :func:`parked_identity` is the identity a parked record is
kept under (its eventID when readable, else the sha256 of its bytes).
"""

from __future__ import annotations

import copy
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from receipt_events.records import MAX_EVENT_ID_LENGTH
from synthetic.history import INTENT_OUTCOMES, History

MALFORMED_KINDS: Final[tuple[str, ...]] = (
    "wrong_type",
    "missing_key",
    "truncated_json",
    "huge_value",
    "deep_nesting",
    "bad_utf8",
    "unknown_kind",
    "unknown_event_name",
    "duplicate_event_id",
)
MEGABYTE: Final = 1 << 20
# Records whose NewImage the pipeline decodes, and the image fields it reads for each.
READ_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "place_insert": ("merchant_name", "place_id", "phone_number"),
    "place_modify": ("merchant_name", "canonical_merchant_name", "merchant_category"),
    "place_modify_irrelevant": ("merchant_name",),
    "label_insert": ("validation_status", "reasoning", "label_proposed_by"),
    "label_modify": ("validation_status", "timestamp_added"),
    "label_modify_irrelevant": ("validation_status",),
    "run_insert": ("lines_delta_prefix", "words_delta_prefix"),
}
_ENCODER = msgspec.json.Encoder()
# Byte sequences that are invalid UTF-8 wherever they are put.
_BAD_UTF8: Final = (
    b"\xff",
    b"\xfe",
    b"\xc0\xaf",
    b"\xc1\x81",
    b"\xf5\x80\x80\x80",
    b"\xed\xa0\x80",
)


@dataclass(frozen=True)
class Entry:
    """One input record and what ingest must make of it.

    ``expect`` is ``"parked"`` for a malformed record, else the valid outcome: an event type
    (appended the first time, ``"duplicate"`` for a redelivery), ``"unchanged"``, or
    ``"skipped:<kind>"``. ``identity`` is the parked id (malformed) or the eventID (valid).
    """

    origin: str
    raw: bytes
    expect: str
    kind: str  # a MALFORMED_KINDS name, "valid", or "unknown_family"
    identity: str

    @property
    def malformed(self) -> bool:
        return self.expect == "parked"


def payload_hash(raw: bytes) -> str:
    """The sha256 of a payload's content: its JSON with keys sorted, else its bytes."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(raw), order="sorted")
    except Exception:  # not JSON, bad UTF-8, nested past the decoder's limit
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


def same_payload(a: bytes, b: bytes) -> bool:
    return payload_hash(a) == payload_hash(b)


def parked_identity(raw: bytes) -> str:
    """A parked record is kept once, by its eventID when readable, else by its bytes.

    An eventID the store cannot index (over 256 characters, or holding a NUL) does not count
    as readable.
    """
    try:
        document = msgspec.json.decode(raw)
    except Exception:  # not JSON, bad UTF-8, nested past the decoder's limit
        document = None
    event_id = document.get("eventID") if isinstance(document, dict) else None
    storable = isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID_LENGTH
    if storable and "\x00" not in event_id:  # an id the store can index as text
        return str(event_id)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def valid_outcomes(history: History) -> list[str]:
    """What ingesting each record of a history gives, in order (redeliveries resolved)."""
    first: dict[str, str] = {}
    outcomes = []
    for record, intent in zip(history.records, history.intents, strict=True):
        event_id = record["eventID"]
        if intent == "redelivery":
            original = first[event_id]
            is_event = not original.startswith("skipped:") and original != "unchanged"
            outcomes.append("duplicate" if is_event else original)
        else:
            outcome = INTENT_OUTCOMES[intent]
            first.setdefault(event_id, outcome)
            outcomes.append(outcome)
    return outcomes


class Mutator:
    """Damages copies of real records, one way per call; deterministic for a given seed."""

    def __init__(self, history: History, seed: int, *, huge_budget: int = 0) -> None:
        self.rng = random.Random(seed)
        self.bases = [
            (record, intent)
            for record, intent in zip(history.records, history.intents, strict=True)
            if intent != "redelivery"
        ]
        self.decoded = [(r, i) for r, i in self.bases if i in READ_FIELDS]
        # records under IMAGE# (a key under another PK family is skipped whatever its SK)
        self.imaged = [
            (r, i) for r, i in self.bases if r["dynamodb"]["Keys"]["PK"]["S"].startswith("IMAGE#")
        ]
        self.huge_budget = huge_budget  # how many more 1 MB values to make
        self.counter = 0

    # -- helpers -------------------------------------------------------------------------

    def _fresh(self, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """A deep copy of a base record with a fresh eventID and a unique unread marker."""
        self.counter += 1
        base = record if record is not None else self.rng.choice(self.bases)[0]
        copied: dict[str, Any] = copy.deepcopy(base)
        copied["eventID"] = f"bad-{self.counter:07d}-{self.rng.getrandbits(32):08x}"
        copied["eventVersion"] = f"1.1+{self.counter}"  # not read: keeps the bytes unique
        return copied

    def _imaged_base(self) -> dict[str, Any]:
        return self._fresh(self.rng.choice(self.imaged)[0])

    def _decoded_base(self) -> tuple[dict[str, Any], str]:
        record, intent = self.rng.choice(self.decoded)
        return self._fresh(record), intent

    def _huge_size(self) -> int:
        if self.huge_budget > 0:
            self.huge_budget -= 1
            return MEGABYTE
        return self.rng.randint(2_000, 40_000)

    # -- the kinds -----------------------------------------------------------------------

    def make(self, kind: str, *, reuse_event_id: str | None = None) -> bytes:
        """One malformed record of ``kind`` (``duplicate_event_id`` needs the eventID to reuse)."""
        if kind == "duplicate_event_id":
            return self.duplicate_event_id(reuse_event_id)
        made: bytes = getattr(self, kind)()
        return made

    def wrong_type(self) -> bytes:
        rng = self.rng
        choice = rng.randrange(12)
        if choice < 3:  # a field the pipeline reads, in an image it decodes, mistyped
            record, intent = self._decoded_base()
            name = rng.choice(READ_FIELDS[intent])
            bad = rng.choice(
                [{"BOOL": True}, {"N": "5"}, {"L": [{"S": "x"}]}, {"M": {}}, {"SS": ["a", "b"]}]
            )
            if name == "validation_status" and rng.random() < 0.3:
                bad = {"S": rng.choice(["MAYBE", "valid", "VALIDATED", "NONE "])}
            record["dynamodb"]["NewImage"][name] = bad
            return _ENCODER.encode(record)
        record = self._fresh()
        body = record["dynamodb"]
        options: list[tuple[Any, str, Any]] = [
            (record, "eventID", rng.choice([42, None, [], {"S": "x"}, "", True])),
            (record, "eventName", rng.choice([1, None, ["INSERT"], {"S": "INSERT"}])),
            (record, "dynamodb", rng.choice(["dynamodb", [], 5, None, True])),
            (record, "awsRegion", rng.choice([5, ["eu-west-1"], {"r": 1}, False])),
            (body, "Keys", rng.choice([[], "PK", None, 7])),
            (
                body,
                "SequenceNumber",
                rng.choice([123, "12x", "", "-5", "1.5", None, "\u0661\u0662\u0663"]),
            ),
            (body, "NewImage", rng.choice(["image", [1], 7, True])),
            (body, "OldImage", rng.choice(["image", 3, [], False])),
            (body, "ApproximateCreationDateTime", rng.choice(["yesterday", True, [1]])),
            (body["Keys"], "PK", rng.choice([{"N": "1"}, {"S": 5}, {"BOOL": True}, "IMAGE#x"])),
            (body["Keys"], "SK", rng.choice([{"N": "1"}, {"S": None}, {"B": "AAAA"}, ["S"]])),
        ]
        parent, name, value = rng.choice(options)
        parent[name] = value
        return _ENCODER.encode(record)

    def missing_key(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.25:  # an INSERT/MODIFY the pipeline must read, without its image
            record, _ = self._decoded_base()
            del record["dynamodb"]["NewImage"]
            return _ENCODER.encode(record)
        record = self._fresh()
        body = record["dynamodb"]
        target = rng.choice(
            ["eventID", "eventName", "dynamodb", "Keys", "SequenceNumber", "PK", "SK", "region"]
        )
        if target == "region":
            record.pop("awsRegion", None)
            record.pop("eventSourceARN", None)
        elif target in ("Keys", "SequenceNumber"):
            del body[target]
        elif target in ("PK", "SK"):
            del body["Keys"][target]
        else:
            del record[target]
        return _ENCODER.encode(record)

    def truncated_json(self) -> bytes:
        data = _ENCODER.encode(self._fresh())
        # past the fresh eventID, so two cuts of one record are not the same bytes
        return data[: self.rng.randint(min(60, len(data) - 1), len(data) - 1)]

    def huge_value(self) -> bytes:
        rng = self.rng
        size = self._huge_size()
        choice = rng.randrange(5)
        if choice == 0:
            record = self._fresh()
            record["eventName"] = ("INSERT" * (size // 6 + 1))[:size]
        elif choice == 1:
            record = self._fresh()
            record["dynamodb"]["SequenceNumber"] = "7" * size  # all digits: only its length is bad
        elif choice == 2:
            record = self._imaged_base()
            keys = record["dynamodb"]["Keys"]
            keys["SK"] = {"S": "RECEIPT#" + "9" * size}
        elif choice == 3:
            record, intent = self._decoded_base()
            name = rng.choice(READ_FIELDS[intent])
            record["dynamodb"]["NewImage"][name] = {"N": "1" * size}  # more than 38 digits
        else:
            record = self._fresh()
            record["eventID"] = rng.randbytes(size // 2).hex()  # over-long: unindexable
        return _ENCODER.encode(record)

    def deep_nesting(self) -> bytes:
        rng = self.rng
        depth = rng.choice([33, 64, 200, 1000, 1000, 5000])
        marker = b'"@@deep@@"'
        choice = rng.randrange(3)
        if choice == 0:
            record, intent = self._decoded_base()
            record["dynamodb"]["NewImage"][rng.choice(READ_FIELDS[intent])] = "@@deep@@"
            nested = b'{"M":{"a":' * depth + b'{"S":"x"}' + b"}}" * depth
        elif choice == 1:
            record = self._fresh()
            record["dynamodb"]["Keys"]["SK"] = "@@deep@@"
            nested = b'{"M":{"a":' * depth + b'{"S":"x"}' + b"}}" * depth
        else:  # a field nobody reads, nested past any decoder's limit
            record = self._fresh()
            record["extra"] = "@@deep@@"
            depth = max(depth, 5000)
            nested = b"[" * depth + b"]" * depth
        return _ENCODER.encode(record).replace(marker, nested, 1)

    def bad_utf8(self) -> bytes:
        data = _ENCODER.encode(self._fresh())
        at = self.rng.randrange(1, len(data))
        return data[:at] + self.rng.choice(_BAD_UTF8) + data[at:]

    def unknown_kind(self) -> bytes:
        """A key of one of our families with a malformed part, or an unknown attribute tag."""
        rng = self.rng
        record = self._imaged_base()
        keys = record["dynamodb"]["Keys"]
        choice = rng.randrange(3)
        if choice == 0:
            keys["SK"] = {
                "S": rng.choice(
                    [
                        "RECEIPT#abc",
                        "RECEIPT#00000",
                        "RECEIPT#-0001",
                        "RECEIPT#00001#LINE#x1",
                        "RECEIPT#00001#LINE",
                        "RECEIPT#00001#LINE#00002#WORD#",
                        "RECEIPT#00001#COMPACTION_RUN#",
                        "RECEIPT#00001#LINE#00001#WORD#00001#LABEL#",
                        "RECEIPT#\u0661#LINE#00001",
                    ]
                )
            }
        elif choice == 1:
            keys["PK"] = {"S": rng.choice(["IMAGE#", "IMAGE#a#b", "IMAGE##"])}
        else:
            (value,) = keys["SK"].values()
            keys["SK"] = {rng.choice(["X", "s", "STRING", "SSS", ""]): value}
        return _ENCODER.encode(record)

    def unknown_event_name(self) -> bytes:
        record = self._fresh()
        record["eventName"] = self.rng.choice(
            ["UPDATE", "DELETE", "insert", "Modify", "", "TTL_EXPIRE", "INSERT ", "REMOVE\u0000"]
        )
        return _ENCODER.encode(record)

    def duplicate_event_id(self, event_id: str | None) -> bytes:
        """Bad content under the eventID of a valid record of the corpus."""
        assert event_id is not None
        rng = self.rng
        kind = rng.choice(["wrong_type_image", "unknown_event_name", "no_sequence", "bad_key"])
        if kind == "wrong_type_image":
            record, intent = self._decoded_base()
            record["dynamodb"]["NewImage"][rng.choice(READ_FIELDS[intent])] = {"BOOL": False}
        else:
            record = self._imaged_base()
            if kind == "unknown_event_name":
                record["eventName"] = "UPSERT"
            elif kind == "no_sequence":
                del record["dynamodb"]["SequenceNumber"]
            else:
                record["dynamodb"]["Keys"]["SK"] = {"S": "RECEIPT#bad"}
        record["eventID"] = event_id
        return _ENCODER.encode(record)

    # -- well-formed, unknown key families (skipped, never parked) ------------------------

    def unknown_family(self) -> tuple[bytes, str]:
        record = self._imaged_base()
        keys = record["dynamodb"]["Keys"]
        pk = keys["PK"]["S"]
        choice = self.rng.randrange(5)
        sk, kind = [
            ("RECEIPT#00001#WIDGET", "RECEIPT_OTHER"),
            ("RECEIPT#00001#LINE#00002#BOX", "RECEIPT_LINE_OTHER"),
            ("RECEIPT#00001#LINE#00002#WORD#00003#GLYPH", "RECEIPT_WORD_OTHER"),
            ("THUMBNAIL#00001", "IMAGE_OTHER"),
            ("PROFILE", "USER"),
        ][choice]
        if kind == "USER":
            pk = "USER#42"
        keys["PK"], keys["SK"] = {"S": pk}, {"S": sk}
        for image in ("NewImage", "OldImage"):
            if image in record["dynamodb"]:
                record["dynamodb"][image].update({"PK": {"S": pk}, "SK": {"S": sk}})
        return _ENCODER.encode(record), f"skipped:{kind}"


def build_corpus(
    history: History,
    malformed: int,
    *,
    seed: int,
    unknown_families: int = 0,
    huge_budget: int = 4,
    origin: str = "corpus",
) -> list[Entry]:
    """The history's records in order with ``malformed`` damaged records (kinds taking turns)
    and ``unknown_families`` well-formed unknown ones inserted at random places."""
    mutator = Mutator(history, seed, huge_budget=huge_budget)
    rng = random.Random(seed ^ 0x5EED)
    outcomes = valid_outcomes(history)
    encoded = [_ENCODER.encode(record) for record in history.records]
    valid_ids = list(dict.fromkeys(record["eventID"] for record in history.records))
    rng.shuffle(valid_ids)
    reusable = iter(valid_ids)
    extra: list[tuple[bytes, str, str, str]] = []  # raw, expect, kind, identity
    seen: set[str] = set()
    for number in range(malformed):
        kind = MALFORMED_KINDS[number % len(MALFORMED_KINDS)]
        for _attempt in range(100):
            reuse = next(reusable) if kind == "duplicate_event_id" else None
            raw = mutator.make(kind, reuse_event_id=reuse)
            identity = parked_identity(raw)
            if identity not in seen:
                break
        else:  # pragma: no cover - fresh eventIDs and markers make a repeat all but impossible
            raise RuntimeError(f"cannot make a distinct {kind} record")
        if kind == "duplicate_event_id":
            assert identity == reuse, (identity, reuse)
        seen.add(identity)
        extra.append((raw, "parked", kind, identity))
    for _ in range(unknown_families):
        raw, expect = mutator.unknown_family()
        extra.append((raw, expect, "unknown_family", parked_identity(raw)))
    # Interleave: each extra record goes after a random number of valid ones.
    slots = sorted(rng.randrange(len(encoded) + 1) for _ in extra)
    rng.shuffle(extra)
    entries: list[Entry] = []
    extra_index = 0
    for index in range(len(encoded) + 1):
        while extra_index < len(extra) and slots[extra_index] == index:
            raw, expect, kind, identity = extra[extra_index]
            entries.append(Entry(f"{origin}:{len(entries) + 1}", raw, expect, kind, identity))
            extra_index += 1
        if index < len(encoded):
            entries.append(
                Entry(
                    f"{origin}:{len(entries) + 1}",
                    encoded[index],
                    outcomes[index],
                    "valid",
                    history.records[index]["eventID"],
                )
            )
    return entries


class Expected(msgspec.Struct, kw_only=True):
    """The summary an ingest of entries must give, and the log it must leave."""

    records: int
    appended: int
    duplicates: int
    unchanged: int
    skipped: int
    parked: int
    skipped_by_kind: dict[str, int]
    log: list[str]  # eventIDs of the appended events, in order
    parked_first: dict[str, Entry]  # parked id → the first entry with it


def expected_for(entries: Sequence[Entry]) -> Expected:
    """What ingesting ``entries`` in order into an empty store must give.

    A malformed record parks the first time its identity is seen and is a duplicate after,
    unless its payload differs from every one parked under that identity: then it parks too,
    under ``<identity>@<payload hash>`` (docs/event-store.md); a valid event record is
    appended the first time its eventID is seen and a duplicate after.
    """
    log: list[str] = []
    logged: set[str] = set()
    parked: dict[str, Entry] = {}
    skipped_by_kind: dict[str, int] = {}
    duplicates = unchanged = skipped = 0
    for entry in entries:
        if entry.malformed:
            first = parked.get(entry.identity)
            if first is None:
                parked[entry.identity] = entry
            elif same_payload(first.raw, entry.raw):
                duplicates += 1
            else:
                conflict_id = f"{entry.identity}@{payload_hash(entry.raw)[:16]}"
                if conflict_id in parked:
                    duplicates += 1
                else:
                    parked[conflict_id] = entry
        elif entry.expect == "unchanged":
            unchanged += 1
        elif entry.expect.startswith("skipped:"):
            skipped += 1
            kind = entry.expect.removeprefix("skipped:")
            skipped_by_kind[kind] = skipped_by_kind.get(kind, 0) + 1
        elif entry.expect == "duplicate" or entry.identity in logged:
            duplicates += 1
        else:
            logged.add(entry.identity)
            log.append(entry.identity)
    return Expected(
        records=len(entries),
        appended=len(log),
        duplicates=duplicates,
        unchanged=unchanged,
        skipped=skipped,
        parked=len(parked),
        skipped_by_kind=dict(sorted(skipped_by_kind.items())),
        log=log,
        parked_first=parked,
    )
