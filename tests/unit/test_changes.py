"""Change detection: each entity and stream event name to its exact event, skip or "unchanged"."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from receipt_events.attributes import AttributeValueError
from receipt_events.changes import ChangeError, Detected, Skipped, Unchanged, detect, entity_of
from receipt_events.events import (
    EmbeddingsPublished,
    EventSource,
    LineRemoved,
    PlaceChanged,
    PlaceRemoved,
    ReceiptRemoved,
    WordLabelRemoved,
    WordLabelSet,
    WordRemoved,
)
from receipt_events.keys import KeyFormatError, LabelKey, OtherEntity
from receipt_events.records import parse_record
from tests.unit.records_factory import (
    CREATED,
    IMAGE_ID,
    PK,
    REGION,
    make_record,
    sk_label,
    sk_line,
    sk_metadata,
    sk_place,
    sk_receipt,
    sk_run,
    sk_word,
    to_bytes,
)

PLACE = {
    "merchant_name": "Sprouts Farmers Market",
    "canonical_merchant_name": "Sprouts",
    "merchant_category": "Grocery",
    "phone_number": "(805) 555-0100",
    "place_id": "ChIJ-place",
    "matched_fields": frozenset({"name", "phone"}),  # irrelevant to the projection
    "validated_by": "INFERENCE",
}
LABEL = {
    "validation_status": "PENDING",
    "label_proposed_by": "llm",
    "reasoning": "the largest amount at the bottom",
    "label_consolidated_from": "GRAND_TOTAL",
    "timestamp_added": "2024-05-01T00:00:00+00:00",
}


def _detect(record: dict[str, Any]) -> Detected:
    return detect(parse_record(to_bytes(record)))


def _source(record: dict[str, Any]) -> EventSource:
    return EventSource(
        event_id=record["eventID"],
        event_name=record["eventName"],
        sequence_number=record["dynamodb"]["SequenceNumber"],
        approximate_creation_date_time=CREATED,
        region=REGION,
    )


# -- places --------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY"])
def test_receipt_place_write_maps_formatted_address_to_address(event_name: str) -> None:
    image = {**PLACE, "formatted_address": "123 Main St, Ventura, CA"}
    record = make_record(event_name, sk=sk_place(), new_image=image, old_image={"x": 1})
    assert _detect(record) == PlaceChanged(
        source=_source(record),
        image_id=IMAGE_ID,
        receipt_id=1,
        entity="RECEIPT_PLACE",
        merchant_name="Sprouts Farmers Market",
        canonical_merchant_name="Sprouts",
        merchant_category="Grocery",
        address="123 Main St, Ventura, CA",
        phone_number="(805) 555-0100",
        place_id="ChIJ-place",
    )


def test_receipt_place_formatted_address_wins_over_address() -> None:
    image = {"address": "old style", "formatted_address": "new style"}
    event = _detect(make_record("INSERT", sk=sk_place(), new_image=image))
    assert isinstance(event, PlaceChanged)
    assert event.address == "new style"


def test_receipt_metadata_keeps_address_and_ignores_formatted_address() -> None:
    image = {**PLACE, "address": "1 Ocean Ave", "formatted_address": "ignored"}
    record = make_record("INSERT", sk=sk_metadata(4), new_image=image)
    assert _detect(record) == PlaceChanged(
        source=_source(record),
        image_id=IMAGE_ID,
        receipt_id=4,
        entity="RECEIPT_METADATA",
        merchant_name="Sprouts Farmers Market",
        canonical_merchant_name="Sprouts",
        merchant_category="Grocery",
        address="1 Ocean Ave",
        phone_number="(805) 555-0100",
        place_id="ChIJ-place",
    )


def test_null_empty_and_missing_place_fields_read_as_none() -> None:
    image = {"merchant_name": None, "canonical_merchant_name": "", "place_id": "p"}
    record = make_record("INSERT", sk=sk_metadata(), new_image=image)
    assert _detect(record) == PlaceChanged(
        source=_source(record),
        image_id=IMAGE_ID,
        receipt_id=1,
        entity="RECEIPT_METADATA",
        place_id="p",
    )


@pytest.mark.parametrize("sk", [sk_place(), sk_metadata()])
def test_place_modify_of_irrelevant_fields_is_unchanged(sk: str) -> None:
    kind = "RECEIPT_PLACE" if sk.endswith("PLACE") else "RECEIPT_METADATA"
    old = {**PLACE, "validated_by": "INFERENCE", "timestamp": "2024-01-01"}
    new = {**PLACE, "validated_by": "PHONE_LOOKUP", "timestamp": "2024-02-02", "extra": 1}
    assert _detect(make_record("MODIFY", sk=sk, new_image=new, old_image=old)) == Unchanged(kind)


def test_place_modify_where_null_becomes_empty_string_is_unchanged() -> None:
    old = {**PLACE, "merchant_category": None}
    new = {**PLACE, "merchant_category": ""}
    record = make_record("MODIFY", sk=sk_metadata(), new_image=new, old_image=old)
    assert _detect(record) == Unchanged("RECEIPT_METADATA")


def test_place_modify_of_formatted_address_is_a_change() -> None:
    old = {**PLACE, "formatted_address": "1 A St"}
    new = {**PLACE, "formatted_address": "2 B St"}
    event = _detect(make_record("MODIFY", sk=sk_place(), new_image=new, old_image=old))
    assert isinstance(event, PlaceChanged)
    assert event.address == "2 B St"
    assert event.merchant_name == "Sprouts Farmers Market"  # the full state, not a diff


@pytest.mark.parametrize(
    "field", ["merchant_name", "phone_number", "place_id", "merchant_category"]
)
def test_place_modify_of_a_relevant_field_is_a_change_with_full_state(field: str) -> None:
    new = {**PLACE, field: "changed"}
    record = make_record("MODIFY", sk=sk_metadata(), new_image=new, old_image=PLACE)
    event = _detect(record)
    assert isinstance(event, PlaceChanged)
    expected = {name: PLACE.get(name) for name in event.fields()}
    expected[field] = "changed"
    assert event.fields() == expected


def test_place_modify_without_old_image_is_a_change() -> None:
    record = make_record("MODIFY", sk=sk_place(), new_image=PLACE)
    assert isinstance(_detect(record), PlaceChanged)


def test_place_modify_whose_old_image_does_not_decode_is_a_change() -> None:
    record = make_record(
        "MODIFY",
        sk=sk_place(),
        new_image=PLACE,
        raw_old_image={"merchant_name": {"N": "not a number"}},
    )
    event = _detect(record)
    assert isinstance(event, PlaceChanged)
    assert event.merchant_name == "Sprouts Farmers Market"


def test_place_modify_whose_old_image_has_a_mistyped_field_is_a_change() -> None:
    old = {**PLACE, "merchant_name": Decimal(5)}
    record = make_record("MODIFY", sk=sk_place(), new_image=PLACE, old_image=old)
    assert isinstance(_detect(record), PlaceChanged)


@pytest.mark.parametrize(
    ("sk", "kind"), [(sk_place(2), "RECEIPT_PLACE"), (sk_metadata(2), "RECEIPT_METADATA")]
)
def test_place_remove(sk: str, kind: str) -> None:
    record = make_record("REMOVE", sk=sk, old_image=PLACE)
    assert _detect(record) == PlaceRemoved(
        source=_source(record), image_id=IMAGE_ID, receipt_id=2, entity=kind
    )


# -- word labels ---------------------------------------------------------------------------------


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY"])
def test_label_write_carries_its_full_state(event_name: str) -> None:
    record = make_record(event_name, sk=sk_label("TOTAL", 1, 3, 2), new_image=LABEL)
    assert _detect(record) == WordLabelSet(
        source=_source(record),
        image_id=IMAGE_ID,
        receipt_id=1,
        line_id=3,
        word_id=2,
        label="TOTAL",
        validation_status="PENDING",
        label_proposed_by="llm",
        reasoning="the largest amount at the bottom",
        label_consolidated_from="GRAND_TOTAL",
        timestamp_added="2024-05-01T00:00:00+00:00",
    )


@pytest.mark.parametrize("status", [None, ""])
def test_label_without_a_status_defaults_to_none(status: str | None) -> None:
    image: dict[str, Any] = {"timestamp_added": "t"}
    if status is not None:
        image["validation_status"] = status
    record = make_record("INSERT", sk=sk_label("MERCHANT_NAME#2"), new_image=image)
    assert _detect(record) == WordLabelSet(
        source=_source(record),
        image_id=IMAGE_ID,
        receipt_id=1,
        line_id=3,
        word_id=2,
        label="MERCHANT_NAME#2",
        validation_status="NONE",
        timestamp_added="t",
    )


def test_label_with_null_status_defaults_to_none() -> None:
    record = make_record("INSERT", sk=sk_label(), new_image={"validation_status": None})
    event = _detect(record)
    assert isinstance(event, WordLabelSet)
    assert event.validation_status == "NONE"


@pytest.mark.parametrize("status", ["NONE", "PENDING", "VALID", "INVALID", "NEEDS_REVIEW"])
def test_every_validation_status_is_read(status: str) -> None:
    record = make_record("MODIFY", sk=sk_label(), new_image={"validation_status": status})
    event = _detect(record)
    assert isinstance(event, WordLabelSet)
    assert event.validation_status == status


def test_label_modify_of_irrelevant_fields_is_unchanged() -> None:
    old = {**LABEL, "updated_at": "1"}
    new = {**LABEL, "updated_at": "2", "confidence": Decimal("0.9")}
    record = make_record("MODIFY", sk=sk_label(), new_image=new, old_image=old)
    assert _detect(record) == Unchanged("RECEIPT_WORD_LABEL")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("validation_status", "VALID"),
        ("label_proposed_by", "human"),
        ("reasoning", None),
        ("label_consolidated_from", "X"),
        ("timestamp_added", "2025-01-01"),
    ],
)
def test_label_modify_of_a_relevant_field_is_a_change(field: str, value: str | None) -> None:
    new = {**LABEL, field: value}
    record = make_record("MODIFY", sk=sk_label(), new_image=new, old_image=LABEL)
    event = _detect(record)
    assert isinstance(event, WordLabelSet)
    assert getattr(event, field) == value
    assert event.label_proposed_by == new["label_proposed_by"]


def test_label_modify_whose_old_image_does_not_decode_is_a_change() -> None:
    record = make_record(
        "MODIFY", sk=sk_label(), new_image=LABEL, raw_old_image={"reasoning": {"X": 1}}
    )
    assert isinstance(_detect(record), WordLabelSet)


def test_label_modify_whose_old_status_is_unknown_is_a_change() -> None:
    old = {**LABEL, "validation_status": "LEGACY"}
    record = make_record("MODIFY", sk=sk_label(), new_image=LABEL, old_image=old)
    event = _detect(record)
    assert isinstance(event, WordLabelSet)
    assert event.validation_status == "PENDING"


def test_label_remove() -> None:
    record = make_record("REMOVE", sk=sk_label("A#B", 2, 4, 6), old_image=LABEL)
    assert _detect(record) == WordLabelRemoved(
        source=_source(record),
        image_id=IMAGE_ID,
        receipt_id=2,
        line_id=4,
        word_id=6,
        label="A#B",
    )


# -- compaction runs -----------------------------------------------------------------------------

RUN = {
    "run_id": "run-0001",
    "lines_delta_prefix": "s3://bucket/deltas/lines/run-0001",
    "words_delta_prefix": "/tmp/deltas/words/run-0001",
    "status": "PENDING",
}


def test_run_insert_publishes_embeddings() -> None:
    record = make_record("INSERT", sk=sk_run("run-0001", 3), new_image=RUN)
    assert _detect(record) == EmbeddingsPublished(
        source=_source(record),
        image_id=IMAGE_ID,
        receipt_id=3,
        run_id="run-0001",
        lines_delta="s3://bucket/deltas/lines/run-0001",
        words_delta="/tmp/deltas/words/run-0001",
    )


@pytest.mark.parametrize("event_name", ["MODIFY", "REMOVE"])
def test_run_modify_and_remove_are_skipped(event_name: str) -> None:
    record = make_record(event_name, sk=sk_run(), new_image={**RUN, "status": "COMPLETED"})
    assert _detect(record) == Skipped("COMPACTION_RUN")


@pytest.mark.parametrize("field", ["lines_delta_prefix", "words_delta_prefix"])
@pytest.mark.parametrize("value", ["missing", None, ""])
def test_run_insert_without_a_delta_prefix_is_an_error(field: str, value: str | None) -> None:
    image = dict(RUN)
    if value == "missing":
        del image[field]
    else:
        image[field] = value
    record = make_record("INSERT", sk=sk_run("run-0001"), new_image=image)
    with pytest.raises(ChangeError) as caught:
        _detect(record)
    assert str(caught.value) == f"compaction run run-0001: NewImage.{field} is missing or empty"


def test_run_insert_with_a_mistyped_prefix_is_an_error() -> None:
    record = make_record("INSERT", sk=sk_run(), new_image={**RUN, "lines_delta_prefix": ["x"]})
    with pytest.raises(ChangeError) as caught:
        _detect(record)
    assert str(caught.value) == "NewImage.lines_delta_prefix: expected a string or NULL, got L"


# -- receipts, lines, words ----------------------------------------------------------------------


def test_receipt_line_word_removes() -> None:
    receipt = make_record("REMOVE", sk=sk_receipt(7))
    line = make_record("REMOVE", sk=sk_line(7, 8))
    word = make_record("REMOVE", sk=sk_word(7, 8, 9))
    assert _detect(receipt) == ReceiptRemoved(
        source=_source(receipt), image_id=IMAGE_ID, receipt_id=7
    )
    assert _detect(line) == LineRemoved(
        source=_source(line), image_id=IMAGE_ID, receipt_id=7, line_id=8
    )
    assert _detect(word) == WordRemoved(
        source=_source(word), image_id=IMAGE_ID, receipt_id=7, line_id=8, word_id=9
    )


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY"])
@pytest.mark.parametrize(
    ("sk", "kind"),
    [(sk_receipt(), "RECEIPT"), (sk_line(), "RECEIPT_LINE"), (sk_word(), "RECEIPT_WORD")],
)
def test_receipt_line_word_writes_are_skipped_by_kind(event_name: str, sk: str, kind: str) -> None:
    # Even a NewImage that would not decode: the record can never produce an event.
    record = make_record(event_name, sk=sk, raw_new_image={"bad": {"N": "x"}})
    assert _detect(record) == Skipped(kind)


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY", "REMOVE"])
@pytest.mark.parametrize(
    ("pk", "sk", "kind"),
    [
        (PK, "IMAGE", "IMAGE"),
        (PK, sk_word() + "#LETTER#00001", "RECEIPT_LETTER"),
        ("LOCK#chroma", "LOCK", "LOCK"),
        ("JOB#1", "JOB", "JOB"),
    ],
)
def test_other_entities_are_skipped_by_kind(event_name: str, pk: str, sk: str, kind: str) -> None:
    assert _detect(make_record(event_name, pk=pk, sk=sk, new_image={"x": 1})) == Skipped(kind)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_name", "sk", "kind"),
    [
        *[
            (name, sk, kind)
            for name in ("INSERT", "MODIFY")
            for sk, kind in [
                (sk_place(), "RECEIPT_PLACE"),
                (sk_metadata(), "RECEIPT_METADATA"),
                (sk_label(), "RECEIPT_WORD_LABEL"),
            ]
        ],
        ("INSERT", sk_run(), "COMPACTION_RUN"),  # run MODIFYs are skipped before any image
    ],
)
def test_write_without_new_image_is_an_error(event_name: str, sk: str, kind: str) -> None:
    record = make_record(event_name, sk=sk, old_image={"merchant_name": "x"})
    with pytest.raises(ChangeError) as caught:
        _detect(record)
    assert str(caught.value) == (
        f"{event_name} of {kind} has no NewImage "
        "(the stream must use NEW_AND_OLD_IMAGES or NEW_IMAGE)"
    )


_UNDECODABLE = [
    (sk_place(), {"merchant_name": {"N": "1_0"}}, "NewImage.merchant_name"),
    (sk_place(), {"merchant_name": {"S": "ok"}, "hours": {"L": [{"Q": 1}]}}, "NewImage.hours[0]"),
    (sk_metadata(), {"address": {"S": "a", "N": "1"}}, "NewImage.address"),
    (sk_label(), {"validation_status": {"S": "VALID"}, "x": {"NULL": False}}, "NewImage.x"),
]


@pytest.mark.parametrize(
    ("event_name", "sk", "image", "path"),
    [
        *[(name, *case) for name in ("INSERT", "MODIFY") for case in _UNDECODABLE],
        ("INSERT", sk_run(), {"lines_delta_prefix": {"SS": []}}, "NewImage.lines_delta_prefix"),
    ],
)
def test_new_image_that_does_not_decode_is_an_error_not_an_event(
    event_name: str, sk: str, image: dict[str, Any], path: str
) -> None:
    record = make_record(event_name, sk=sk, raw_new_image=image, old_image={"merchant_name": "x"})
    with pytest.raises(AttributeValueError) as caught:
        _detect(record)
    assert caught.value.path == path


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (Decimal(1), "N"),
        (True, "BOOL"),
        (b"x", "B"),
        (["a"], "L"),
        ({"a": "b"}, "M"),
        (frozenset({"a"}), "a set"),
    ],
)
def test_relevant_field_of_the_wrong_type_is_an_error(value: Any, type_name: str) -> None:
    record = make_record("INSERT", sk=sk_place(), new_image={**PLACE, "phone_number": value})
    with pytest.raises(ChangeError) as caught:
        _detect(record)
    assert str(caught.value) == f"NewImage.phone_number: expected a string or NULL, got {type_name}"


def test_formatted_address_of_the_wrong_type_is_an_error() -> None:
    record = make_record("INSERT", sk=sk_place(), new_image={"formatted_address": Decimal(1)})
    with pytest.raises(ChangeError, match=r"^NewImage\.formatted_address: expected a string"):
        _detect(record)


def test_label_field_of_the_wrong_type_is_an_error() -> None:
    record = make_record("MODIFY", sk=sk_label(), new_image={**LABEL, "reasoning": Decimal(3)})
    with pytest.raises(ChangeError) as caught:
        _detect(record)
    assert str(caught.value) == "NewImage.reasoning: expected a string or NULL, got N"


@pytest.mark.parametrize("status", ["MAYBE", "valid", " VALID"])
def test_unknown_validation_status_is_an_error(status: str) -> None:
    record = make_record("INSERT", sk=sk_label(), new_image={"validation_status": status})
    with pytest.raises(ChangeError) as caught:
        _detect(record)
    assert str(caught.value) == (
        f"NewImage.validation_status: {status!r} is not one of "
        "NONE, PENDING, VALID, INVALID, NEEDS_REVIEW"
    )


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"PK": {"S": PK}},
        {"SK": {"S": "RECEIPT#00001"}},
        {"PK": {"N": "1"}, "SK": {"S": "RECEIPT#00001"}},
        {"PK": {"S": PK}, "SK": {"NULL": True}},
    ],
)
def test_keys_without_string_pk_and_sk_are_an_error(keys: dict[str, Any]) -> None:
    record = make_record("REMOVE")
    record["dynamodb"]["Keys"] = keys
    with pytest.raises(ChangeError, match=r"^Keys must hold string PK and SK attributes$"):
        _detect(record)


def test_keys_that_do_not_decode_are_an_error() -> None:
    record = make_record("REMOVE")
    record["dynamodb"]["Keys"] = {"PK": {"S": PK}, "SK": {"SS": []}}
    with pytest.raises(AttributeValueError) as caught:
        _detect(record)
    assert caught.value.path == "Keys.SK"


def test_malformed_key_is_an_error() -> None:
    with pytest.raises(KeyFormatError, match=r"^SK 'RECEIPT#00001#LINE#x': line id 'x'"):
        _detect(make_record("REMOVE", sk="RECEIPT#00001#LINE#x"))


def test_entity_of_reads_the_keys() -> None:
    record = parse_record(to_bytes(make_record("REMOVE", sk=sk_label("TOTAL", 1, 2, 3))))
    assert entity_of(record) == LabelKey(IMAGE_ID, 1, 2, 3, "TOTAL")
    other = parse_record(to_bytes(make_record("REMOVE", pk="LOCK#x", sk="LOCK")))
    assert entity_of(other) == OtherEntity("LOCK")


# -- backfill --touch: a MODIFY that changes only the touch stamp carries the item's state ----


def test_a_touched_label_is_an_event_though_no_relevant_field_changed() -> None:
    old = {**LABEL, "receipt_events_touch": "scan:t:1#1"}
    new = {**LABEL, "receipt_events_touch": "scan:t:1#2"}
    record = make_record("MODIFY", sk=sk_label(), new_image=new, old_image=old)
    event = _detect(record)
    assert isinstance(event, WordLabelSet)
    assert event.validation_status == LABEL["validation_status"]
    untouched = make_record("MODIFY", sk=sk_label(), new_image=new, old_image=new)
    assert _detect(untouched) == Unchanged("RECEIPT_WORD_LABEL")  # the same stamp: no touch


def test_a_touched_compaction_run_is_published_and_a_status_modify_is_still_skipped() -> None:
    run = {
        "run_id": "run-0001",
        "lines_delta_prefix": "s3://b/l",
        "words_delta_prefix": "s3://b/w",
        "lines_state": "COMPLETED",
    }
    touched = make_record(
        "MODIFY", sk=sk_run(), new_image={**run, "receipt_events_touch": "x"}, old_image=run
    )
    event = _detect(touched)
    assert isinstance(event, EmbeddingsPublished)
    assert event.lines_delta == "s3://b/l"
    status = make_record(
        "MODIFY", sk=sk_run(), new_image={**run, "lines_state": "FAILED"}, old_image=run
    )
    assert _detect(status) == Skipped("COMPACTION_RUN")
