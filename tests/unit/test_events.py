"""The domain events: topics, the JSON schema, msgspec round trips, store identities."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from eventsourcing.utils import get_topic, resolve_topic

from receipt_events.events import (
    EVENT_TYPES,
    RECEIPT_EVENT_TYPES,
    TOPICS,
    V1_TOPICS,
    BackfillSource,
    DomainEvent,
    EmbeddingsAdopted,
    EmbeddingsPublished,
    Event,
    EventSource,
    LineRemoved,
    PlaceChanged,
    PlaceRemoved,
    ReceiptRemoved,
    WordLabelRemoved,
    WordLabelSet,
    WordRemoved,
    backfill_originator_id,
    event_to_dict,
    json_schema,
    stream_originator_id,
    upcast,
)
from receipt_events.keys import LineKey, ReceiptKey, WordKey
from receipt_events.store.mapper import MsgspecMapper

SOURCE = EventSource(
    event_id="c81e728d9d4c2f636f067f89cc14862c",
    event_name="MODIFY",
    sequence_number="111100000000000000000001",
    approximate_creation_date_time=1714521600,
    region="us-west-2",
)
IMAGE = "3f2b8c1e-9d4a-4b6e-8f1a-2c3d4e5f6a7b"
COMMON: dict[str, Any] = {"source": SOURCE, "image_id": IMAGE, "receipt_id": 1}

SAMPLES: list[DomainEvent] = [
    PlaceChanged(
        **COMMON,
        entity="RECEIPT_PLACE",
        merchant_name="Cafe",
        canonical_merchant_name="Cafe",
        merchant_category=None,
        address="1 Main St",
        phone_number="555",
        place_id="p1",
    ),
    PlaceRemoved(**COMMON, entity="RECEIPT_METADATA"),
    WordLabelSet(
        **COMMON,
        line_id=3,
        word_id=2,
        label="TOTAL",
        validation_status="VALID",
        label_proposed_by="llm",
        reasoning="r",
        label_consolidated_from=None,
        timestamp_added="2024-05-01T00:00:00",
    ),
    WordLabelRemoved(**COMMON, line_id=3, word_id=2, label="A#B"),
    EmbeddingsPublished(**COMMON, run_id="run-1", lines_delta="s3://b/l", words_delta="/tmp/w"),
    ReceiptRemoved(**COMMON),
    LineRemoved(**COMMON, line_id=3),
    WordRemoved(**COMMON, line_id=3, word_id=2),
]
NAMES = [
    "PlaceChanged",
    "PlaceRemoved",
    "WordLabelSet",
    "WordLabelRemoved",
    "EmbeddingsPublished",
    "ReceiptRemoved",
    "LineRemoved",
    "WordRemoved",
]


def test_samples_cover_every_receipt_event_type() -> None:
    assert [type(e) for e in SAMPLES] == list(RECEIPT_EVENT_TYPES)
    assert [cls.__name__ for cls in RECEIPT_EVENT_TYPES] == NAMES
    assert list(EVENT_TYPES) == [*RECEIPT_EVENT_TYPES, EmbeddingsAdopted]


@pytest.mark.parametrize("cls", RECEIPT_EVENT_TYPES, ids=NAMES)
def test_topic_names_the_class_and_version_and_is_registered(cls: type[DomainEvent]) -> None:
    topic = f"receipt_events.{cls.__name__}.v2"
    assert cls.topic() == topic
    assert TOPICS[topic] is cls
    assert resolve_topic(topic) is cls


def test_topics_hold_exactly_the_event_types() -> None:
    assert sorted(TOPICS) == sorted(
        [*(f"receipt_events.{name}.v2" for name in NAMES), "receipt_events.EmbeddingsAdopted.v1"]
    )
    assert sorted(V1_TOPICS) == sorted(f"receipt_events.{name}.v1" for name in NAMES)


def test_module_topic_of_a_class_is_distinct_from_its_store_topic() -> None:
    # The store topic is the stable name; moving the class must not change stored data.
    assert get_topic(PlaceChanged) == "receipt_events.events:PlaceChanged"
    assert PlaceChanged.topic() != get_topic(PlaceChanged)


def test_json_schema_discriminates_on_type_with_one_definition_per_event() -> None:
    schema = json_schema()
    mapping = {name: f"#/$defs/{name}" for name in [*NAMES, "EmbeddingsAdopted"]}
    assert schema["discriminator"] == {"propertyName": "type", "mapping": mapping}
    assert schema["anyOf"] == [{"$ref": ref} for ref in mapping.values()]
    assert set(schema["$defs"]) == {*NAMES, "EmbeddingsAdopted", "EventSource", "BackfillSource"}
    for name in NAMES:
        definition = schema["$defs"][name]
        assert definition["properties"]["type"] == {"enum": [name]}
        assert definition["properties"]["source"] == {
            "anyOf": [{"$ref": "#/$defs/EventSource"}, {"$ref": "#/$defs/BackfillSource"}],
            "discriminator": {
                "propertyName": "origin",
                "mapping": {
                    "stream": "#/$defs/EventSource",
                    "backfill": "#/$defs/BackfillSource",
                },
            },
        }
        assert {"type", "source", "image_id", "receipt_id"} <= set(definition["required"])


def test_json_schema_lists_validation_statuses_and_source_fields() -> None:
    defs = json_schema()["$defs"]
    assert defs["WordLabelSet"]["properties"]["validation_status"] == {
        "enum": ["INVALID", "NEEDS_REVIEW", "NONE", "PENDING", "VALID"],
        "default": "NONE",
    }
    assert set(defs["EventSource"]["required"]) == {
        "origin",
        "event_id",
        "event_name",
        "sequence_number",
        "region",
    }
    assert defs["EventSource"]["properties"]["event_name"] == {
        "enum": ["INSERT", "MODIFY", "REMOVE"]
    }


@pytest.mark.parametrize("event", SAMPLES, ids=NAMES)
def test_json_round_trip_through_the_class(event: DomainEvent) -> None:
    data = msgspec.json.encode(event)
    assert msgspec.json.decode(data, type=type(event)) == event


@pytest.mark.parametrize("event", SAMPLES, ids=NAMES)
def test_json_round_trip_through_the_tagged_union(event: DomainEvent) -> None:
    data = msgspec.json.encode(event)
    decoded = msgspec.json.decode(data, type=Event)
    assert type(decoded) is type(event)
    assert decoded == event


@pytest.mark.parametrize("event", SAMPLES, ids=NAMES)
def test_builtins_round_trip_and_the_tag_comes_first(event: DomainEvent) -> None:
    data = event_to_dict(event)  # type: ignore[arg-type]
    assert next(iter(data)) == "type"
    assert data["type"] == type(event).__name__
    assert data["schema_version"] == 2
    assert data["source"] == {
        "origin": "stream",
        "event_id": "c81e728d9d4c2f636f067f89cc14862c",
        "event_name": "MODIFY",
        "sequence_number": "111100000000000000000001",
        "approximate_creation_date_time": 1714521600,
        "region": "us-west-2",
    }
    assert msgspec.convert(data, type=Event) == event


def test_event_json_is_exact() -> None:
    event = LineRemoved(**COMMON, line_id=3)
    assert msgspec.json.decode(msgspec.json.encode(event)) == {
        "type": "LineRemoved",
        "schema_version": 2,
        "source": {
            "origin": "stream",
            "event_id": "c81e728d9d4c2f636f067f89cc14862c",
            "event_name": "MODIFY",
            "sequence_number": "111100000000000000000001",
            "approximate_creation_date_time": 1714521600,
            "region": "us-west-2",
        },
        "image_id": IMAGE,
        "receipt_id": 1,
        "line_id": 3,
    }


def test_union_rejects_an_unknown_tag_and_unknown_source_fields() -> None:
    data = event_to_dict(ReceiptRemoved(**COMMON))
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'ReceiptDeleted'"):
        msgspec.convert({**data, "type": "ReceiptDeleted"}, type=Event)
    with pytest.raises(msgspec.ValidationError, match="unknown field `extra`"):
        msgspec.convert({**data, "source": {**data["source"], "extra": 1}}, type=Event)


@pytest.mark.parametrize("event", SAMPLES, ids=NAMES)
def test_originator_id_is_the_stream_event_id(event: DomainEvent) -> None:
    assert event.originator_id == "ddb:c81e728d9d4c2f636f067f89cc14862c"
    assert event.originator_version == 1
    assert stream_originator_id("abc") == "ddb:abc"


@pytest.mark.parametrize(
    ("event", "sk"),
    [
        (SAMPLES[0], "RECEIPT#00001#PLACE"),
        (SAMPLES[1], "RECEIPT#00001#METADATA"),
        (SAMPLES[2], "RECEIPT#00001#LINE#00003#WORD#00002#LABEL#TOTAL"),
        (SAMPLES[3], "RECEIPT#00001#LINE#00003#WORD#00002#LABEL#A#B"),
        (SAMPLES[4], "RECEIPT#00001#COMPACTION_RUN#run-1"),
        (SAMPLES[5], "RECEIPT#00001"),
        (SAMPLES[6], "RECEIPT#00001#LINE#00003"),
        (SAMPLES[7], "RECEIPT#00001#LINE#00003#WORD#00002"),
    ],
    ids=NAMES,
)
def test_each_event_names_its_item(event: DomainEvent, sk: str) -> None:
    assert event.pk == f"IMAGE#{IMAGE}"
    assert event.sk == sk
    assert event.receipt == ReceiptKey(IMAGE, 1)


def test_derived_keys_of_events() -> None:
    assert SAMPLES[2].word == WordKey(IMAGE, 1, 3, 2)  # type: ignore[attr-defined]
    assert SAMPLES[3].word == WordKey(IMAGE, 1, 3, 2)  # type: ignore[attr-defined]
    assert SAMPLES[6].line == LineKey(IMAGE, 1, 3)  # type: ignore[attr-defined]
    assert SAMPLES[7].word == WordKey(IMAGE, 1, 3, 2)  # type: ignore[attr-defined]
    assert SAMPLES[0].fields() == {  # type: ignore[attr-defined]
        "merchant_name": "Cafe",
        "canonical_merchant_name": "Cafe",
        "merchant_category": None,
        "address": "1 Main St",
        "phone_number": "555",
        "place_id": "p1",
    }


def test_events_are_immutable() -> None:
    with pytest.raises(AttributeError):
        SAMPLES[5].receipt_id = 2  # type: ignore[misc]


BACKFILL = BackfillSource(via="scan", table="receipts", read_at=1714521600.25)


@pytest.mark.parametrize("event", SAMPLES, ids=NAMES)
def test_a_backfilled_event_is_identified_by_its_item(event: DomainEvent) -> None:
    backfilled = msgspec.structs.replace(event, source=BACKFILL)
    assert backfilled.originator_id == f"fill:{event.pk}|{event.sk}"
    assert backfilled.originator_id == backfill_originator_id(event.pk, event.sk)
    assert not backfilled.streamed
    assert event.streamed
    again = msgspec.json.decode(msgspec.json.encode(backfilled), type=Event)
    assert again == backfilled
    assert event_to_dict(backfilled)["source"] == {  # type: ignore[arg-type]
        "origin": "backfill",
        "via": "scan",
        "table": "receipts",
        "read_at": 1714521600.25,
        "export_id": None,
    }


def _as_version_1(event: DomainEvent) -> bytes:
    """The JSON version 1 wrote for an event: no source tag, schema_version 1."""
    data = event_to_dict(event)  # type: ignore[arg-type]
    data["schema_version"] = 1
    del data["source"]["origin"]
    return msgspec.json.encode(data)


@pytest.mark.parametrize("event", SAMPLES, ids=NAMES)
def test_a_version_1_event_is_upcast_when_read(event: DomainEvent) -> None:
    from eventsourcing.persistence import StoredEvent

    old = _as_version_1(event)
    topic = f"receipt_events.{type(event).__name__}.v1"
    assert msgspec.json.decode(upcast(topic, old)) == event_to_dict(event)  # type: ignore[arg-type]
    stored = StoredEvent(event.originator_id, 1, topic, old)
    assert MsgspecMapper().to_domain_event(stored) == event
    assert upcast(type(event).topic(), b"unchanged") == b"unchanged"


def test_an_upcast_refuses_a_version_1_topic_with_other_json() -> None:
    with pytest.raises(ValueError, match="does not start as version 1 events do"):
        upcast("receipt_events.LineRemoved.v1", b'{"type":"LineRemoved","schema_version":2}')


def test_the_embeddings_baseline_is_identified_by_its_content() -> None:
    adopted = EmbeddingsAdopted(
        source=BackfillSource(via="snapshot", table="receipts", read_at=1.5),
        snapshot="s3://old/chromadb",
        lines_delta="baseline/ab/lines",
        words_delta=None,
        digest="sha256:ab",
    )
    assert adopted.originator_id == "fill:RECEIPT_EVENTS#BASELINE|sha256:ab"
    assert EmbeddingsAdopted.topic() == "receipt_events.EmbeddingsAdopted.v1"
    assert TOPICS[EmbeddingsAdopted.topic()] is EmbeddingsAdopted
    assert not adopted.streamed
    data = msgspec.json.encode(adopted)
    assert msgspec.json.decode(data, type=Event) == adopted
    assert event_to_dict(adopted)["type"] == "EmbeddingsAdopted"
