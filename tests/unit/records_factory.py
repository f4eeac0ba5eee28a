"""Builders for DynamoDB stream records in the shapes AWS delivers them, for the unit tests.

Images are written as Python values and encoded with :func:`encode_item`, so a test states the
item it means (``{"merchant_name": "Cafe"}``) rather than hand-writing typed attribute JSON.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from receipt_events.attributes import Value, encode_item
from receipt_events.records import InputRecord

IMAGE_ID = "3f2b8c1e-9d4a-4b6e-8f1a-2c3d4e5f6a7b"
PK = f"IMAGE#{IMAGE_ID}"
REGION = "us-east-1"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/receipts/stream/2024-05-01T00:00:00.000"
CREATED = 1714521600

_counter = itertools.count(1)


def next_event_id() -> str:
    return f"evt-{next(_counter):08d}"


def next_sequence_number() -> str:
    return f"{100000000000000000000 + next(_counter)}"


def sk_receipt(receipt_id: int = 1) -> str:
    return f"RECEIPT#{receipt_id:05d}"


def sk_line(receipt_id: int = 1, line_id: int = 3) -> str:
    return f"{sk_receipt(receipt_id)}#LINE#{line_id:05d}"


def sk_word(receipt_id: int = 1, line_id: int = 3, word_id: int = 2) -> str:
    return f"{sk_line(receipt_id, line_id)}#WORD#{word_id:05d}"


def sk_label(label: str = "TOTAL", receipt_id: int = 1, line_id: int = 3, word_id: int = 2) -> str:
    return f"{sk_word(receipt_id, line_id, word_id)}#LABEL#{label}"


def sk_place(receipt_id: int = 1) -> str:
    return f"{sk_receipt(receipt_id)}#PLACE"


def sk_metadata(receipt_id: int = 1) -> str:
    return f"{sk_receipt(receipt_id)}#METADATA"


def sk_run(run_id: str = "run-0001", receipt_id: int = 1) -> str:
    return f"{sk_receipt(receipt_id)}#COMPACTION_RUN#{run_id}"


def make_record(
    event_name: str,
    pk: str = PK,
    sk: str = "RECEIPT#00001",
    new_image: dict[str, Value] | None = None,
    old_image: dict[str, Value] | None = None,
    *,
    event_id: str | None = None,
    sequence_number: str | None = None,
    region: str | None = REGION,
    arn: str | None = STREAM_ARN,
    raw_new_image: dict[str, Any] | None = None,
    raw_old_image: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A stream record as a JSON-ready dict; images include the key attributes, as AWS sends.

    ``raw_new_image`` / ``raw_old_image`` are typed attribute JSON used as given (for malformed
    images); otherwise ``new_image`` / ``old_image`` are Python values encoded here.
    """
    keys = {"PK": pk, "SK": sk}
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": CREATED,
        "Keys": encode_item(keys),
        "SequenceNumber": sequence_number or next_sequence_number(),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if raw_new_image is not None:
        body["NewImage"] = raw_new_image
    elif new_image is not None:
        body["NewImage"] = encode_item({**keys, **new_image})
    if raw_old_image is not None:
        body["OldImage"] = raw_old_image
    elif old_image is not None:
        body["OldImage"] = encode_item({**keys, **old_image})
    record: dict[str, Any] = {
        "eventID": event_id or next_event_id(),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "dynamodb": body,
    }
    if region is not None:
        record["awsRegion"] = region
    if arn is not None:
        record["eventSourceARN"] = arn
    return record


def to_bytes(record: Any) -> bytes:
    return msgspec.json.encode(record)


def to_input(record: Any, origin: str = "test:1") -> InputRecord:
    return InputRecord(origin, record if isinstance(record, bytes) else to_bytes(record))


def jsonl(records: list[Any]) -> bytes:
    return b"".join(to_bytes(record) + b"\n" for record in records)
