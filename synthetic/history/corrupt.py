"""Damaged JSON Lines, in the ways real inputs break, for the parking path.

Separate from the generator: it works on any export (or none), and ingest must park every
line it damages while still reading the rest.
"""

from __future__ import annotations

import random
from typing import Any, Final

import msgspec

from receipt_events.keys import CompactionRunKey, LabelKey, PlaceKey, parse_key
from synthetic.history.ids import event_id
from synthetic.history.jsonl import ENCODER
from synthetic.history.stream import ACCOUNT_ID, STREAM_LABEL

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
    """One malformed line of ``kind``: a damaged copy of a real record, or an empty object."""
    if kind == "empty_object":
        return b"{" + b" " * (number // len(CORRUPTIONS)) + b"}"
    pool = decoded_bases if kind == "non_numeric_n" and decoded_bases else bases
    record: dict[str, Any] = msgspec.json.decode(ENCODER.encode(rng.choice(pool)))
    record["eventID"] = event_id(rng)
    body = record["dynamodb"]
    if kind == "truncated_json":
        data = ENCODER.encode(record)
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
    data = ENCODER.encode(record)
    if kind == "bad_utf8":
        at = data.find(b'"S":"')
        at = at + 5 if at >= 0 else data.find(b'"eventID":"') + 11
        return data[:at] + rng.choice((b"\xff", b"\xc3\x28", b"\x80")) + data[at:]
    return data
