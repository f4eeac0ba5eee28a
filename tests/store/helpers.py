"""Small builders for store tests: domain events, parked records and raw stream records.

Events are built directly from :mod:`receipt_events.events` (no parsing involved), each with
its own :class:`EventSource`; the stream ``eventID`` is the store's dedup key, so two events
with the same ``event_id`` are "the same stream record" as far as the store is concerned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from receipt_events.events import (
    EmbeddingsPublished,
    Event,
    EventSource,
    LineRemoved,
    PlaceChanged,
    PlaceRemoved,
    ReceiptRemoved,
    StreamEventName,
    WordLabelRemoved,
    WordLabelSet,
    WordRemoved,
)
from receipt_events.store import EventStore, ParkedRecord, Recorded

IMAGE_ID = "3f2b1c9e-8d4a-4e6f-9b1a-2c3d4e5f6a7b"
OTHER_IMAGE_ID = "a1b2c3d4-0000-4000-8000-00000000beef"
# DynamoDB sequence numbers have 21-40 digits: far beyond 64 bits.
SEQUENCE_BASE = 10**38


def source(
    event_id: str,
    *,
    sequence: int = 0,
    event_name: StreamEventName = "INSERT",
    created: int | float | None = 1_717_000_000,
    region: str = "eu-west-1",
) -> EventSource:
    return EventSource(
        event_id=event_id,
        event_name=event_name,
        sequence_number=str(SEQUENCE_BASE + sequence),
        approximate_creation_date_time=created,
        region=region,
    )


def label_set(
    event_id: str,
    *,
    sequence: int = 0,
    image_id: str = IMAGE_ID,
    receipt_id: int = 1,
    line_id: int = 1,
    word_id: int = 1,
    label: str = "TOTAL",
    status: Any = "VALID",
    event_name: StreamEventName = "INSERT",
    reasoning: str | None = None,
) -> WordLabelSet:
    return WordLabelSet(
        source=source(event_id, sequence=sequence, event_name=event_name),
        image_id=image_id,
        receipt_id=receipt_id,
        line_id=line_id,
        word_id=word_id,
        label=label,
        validation_status=status,
        reasoning=reasoning,
    )


def one_of_each(prefix: str, *, sequence: int = 0) -> list[Event]:
    """One event of every type, with awkward values: unicode, NULLs, floats, long strings."""
    common: dict[str, Any] = {"image_id": IMAGE_ID, "receipt_id": 7}

    def src(suffix: str, offset: int, name: StreamEventName = "INSERT") -> EventSource:
        return source(f"{prefix}-{suffix}", sequence=sequence + offset, event_name=name)

    return [
        PlaceChanged(
            source=src("place", 0, "MODIFY"),
            entity="RECEIPT_PLACE",
            merchant_name="Café Ünïcødé \u2603 \U0001f9fe",
            canonical_merchant_name=None,
            merchant_category="restaurant",
            address='1 "Quoted" St\nLine two\ttabbed \\ backslash',
            phone_number="+44 20 7946 0000",
            place_id="ChIJ" + "x" * 200,
            **common,
        ),
        PlaceRemoved(source=src("place-rm", 1, "REMOVE"), entity="RECEIPT_METADATA", **common),
        WordLabelSet(
            source=src("label", 2),
            line_id=3,
            word_id=2,
            label="GRAND_TOTAL",
            validation_status="NEEDS_REVIEW",
            label_proposed_by="model:v2",
            reasoning="".join(chr(c) for c in range(0x20, 0x7F)),
            label_consolidated_from="TOTAL",
            timestamp_added="2024-05-29T12:34:56.789012+00:00",
            **common,
        ),
        WordLabelRemoved(
            source=src("label-rm", 3, "REMOVE"), line_id=3, word_id=2, label="TOTAL", **common
        ),
        EmbeddingsPublished(
            source=EventSource(
                event_id=f"{prefix}-run",
                event_name="INSERT",
                sequence_number=str(SEQUENCE_BASE + sequence + 4),
                approximate_creation_date_time=1_717_000_000.125,
                region="us-east-1",
            ),
            run_id="5e0c7a2e-1111-4222-8333-444455556666",
            lines_delta="s3://bucket/deltas/lines/run/",
            words_delta="s3://bucket/deltas/words/run/",
            **common,
        ),
        ReceiptRemoved(
            source=EventSource(
                event_id=f"{prefix}-receipt-rm",
                event_name="REMOVE",
                sequence_number="1" * 40,
                approximate_creation_date_time=None,
                region="ap-southeast-2",
            ),
            **common,
        ),
        LineRemoved(source=src("line-rm", 6, "REMOVE"), line_id=99_999, **common),
        WordRemoved(source=src("word-rm", 7, "REMOVE"), line_id=1, word_id=0, **common),
    ]


def numbered(prefix: str, count: int, *, start: int = 0) -> list[Event]:
    """``count`` distinct events (a mix of types), ``prefix-<i>`` for i in [start, start+count)."""
    kinds = (
        lambda i, s: label_set(f"{prefix}-{i}", sequence=i, word_id=i % 50, status="PENDING"),
        lambda i, s: WordRemoved(source=s, image_id=IMAGE_ID, receipt_id=2, line_id=i, word_id=1),
        lambda i, s: PlaceChanged(
            source=s, image_id=OTHER_IMAGE_ID, receipt_id=i, entity="RECEIPT_PLACE", place_id=str(i)
        ),
    )
    return [
        kinds[i % len(kinds)](i, source(f"{prefix}-{i}", sequence=i))
        for i in range(start, start + count)
    ]


def event_id(event: Event) -> str:
    """The stream ``eventID`` of an event these builders made (all streamed)."""
    assert isinstance(event.source, EventSource), event.source
    return event.source.event_id


def event_ids(events: Sequence[Event]) -> list[str]:
    return [event_id(event) for event in events]


def read_all(store: EventStore) -> list[Recorded]:
    """The whole log, read in one go (checked against paging elsewhere)."""
    return store.read(after=0, limit=1_000_000)


def logged_events(store: EventStore) -> list[Event]:
    return [recorded.event for recorded in read_all(store)]


def parked(
    parked_id: str, *, error: str = "bad record", origin: str = "test.jsonl:1"
) -> ParkedRecord:
    payload = json.dumps({"eventID": parked_id, "broken": True}).encode()
    return ParkedRecord(
        parked_id=parked_id,
        origin=origin,
        error=error,
        payload=payload,
        event_id=parked_id,
        sequence_number=str(SEQUENCE_BASE),
    )


# -- raw DynamoDB stream records, for the ingest path ------------------------------------------


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def stream_record(
    event_id: str,
    event_name: StreamEventName,
    keys: tuple[str, str],
    *,
    sequence: int,
    new_image: dict[str, Any] | None = None,
    old_image: dict[str, Any] | None = None,
) -> dict[str, Any]:
    pk, sk = keys
    body: dict[str, Any] = {
        "Keys": {"PK": _s(pk), "SK": _s(sk)},
        "SequenceNumber": str(SEQUENCE_BASE + sequence),
        "ApproximateCreationDateTime": 1_717_000_000,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new_image is not None:
        body["NewImage"] = {"PK": _s(pk), "SK": _s(sk), **new_image}
    if old_image is not None:
        body["OldImage"] = {"PK": _s(pk), "SK": _s(sk), **old_image}
    return {
        "eventID": event_id,
        "eventName": event_name,
        "awsRegion": "eu-west-1",
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/receipts/stream/x",
        "dynamodb": body,
    }


def label_sk(receipt: int, line: int, word: int, label: str) -> str:
    return f"RECEIPT#{receipt:05d}#LINE#{line:05d}#WORD#{word:05d}#LABEL#{label}"


def stream_input() -> bytes:
    """A JSON Lines input: events of several kinds, a skipped record and two unparseable ones."""
    pk = f"IMAGE#{IMAGE_ID}"
    records: list[dict[str, Any] | str] = [
        stream_record(
            "in-1",
            "INSERT",
            (pk, label_sk(1, 1, 1, "TOTAL")),
            sequence=1,
            new_image={"validation_status": _s("PENDING")},
        ),
        stream_record(
            "in-2",
            "MODIFY",
            (pk, label_sk(1, 1, 1, "TOTAL")),
            sequence=2,
            new_image={"validation_status": _s("VALID")},
            old_image={"validation_status": _s("PENDING")},
        ),
        stream_record("in-3", "INSERT", (pk, "RECEIPT#00001#LINE#00001"), sequence=3),  # skipped
        stream_record("in-4", "REMOVE", (pk, "RECEIPT#00001#LINE#00001#WORD#00002"), sequence=4),
        stream_record(
            "in-5",
            "INSERT",
            (pk, "RECEIPT#00001#PLACE"),
            sequence=5,
            new_image={"merchant_name": _s("Corner Shop"), "formatted_address": _s("1 High St")},
        ),
        '{"eventID": "in-6", "eventName": "INSERT"}',  # no dynamodb body: parked
        "not json at all {",  # parked under the sha256 of its bytes
        stream_record("in-8", "REMOVE", (pk, "RECEIPT#00002"), sequence=8),
    ]
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return ("\n".join(lines) + "\n").encode()
