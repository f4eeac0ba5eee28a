"""Skip by key first: a record whose key and eventName can never produce an event is skipped
without its images being decoded (and, for a record Lambda decoded, without decoding it again
from its bytes); every record is classified exactly as before, from bytes or decoded alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import receipt_events.changes as changes_module
import receipt_events.ingest as ingest_module
from receipt_events.attributes import AttributeValueError
from receipt_events.changes import ChangeError, Skipped, detect
from receipt_events.events import WordLabelSet
from receipt_events.ingest import Outcome, classify, ingest, park_record
from receipt_events.keys import KeyFormatError
from receipt_events.records import (
    InputRecord,
    LambdaRecord,
    RecordFormatError,
    parse_record,
    records_from_lambda_event,
)
from receipt_events.store import EventStore, ParkedRecord, open_store
from synthetic.history import config_for_records, generate_history
from tests.support.json_values import any_json
from tests.unit.records_factory import (
    PK,
    make_record,
    sk_label,
    sk_line,
    sk_place,
    sk_receipt,
    sk_run,
    sk_word,
)

ORIGIN = "test:1"
LABEL = {"validation_status": "VALID", "label_proposed_by": "model"}

# Records of kinds that never produce an event, whatever their images hold.
SKIPPED: list[tuple[dict[str, Any], str]] = [
    (make_record("INSERT", sk=sk_word(), new_image={"text": "7.50"}), "RECEIPT_WORD"),
    (make_record("MODIFY", sk=sk_line(), new_image={"text": "a"}), "RECEIPT_LINE"),
    (make_record("INSERT", sk=sk_word() + "#LETTER#00001", new_image={}), "RECEIPT_LETTER"),
    (make_record("INSERT", sk=sk_receipt(), new_image={}), "RECEIPT"),
    (make_record("REMOVE", sk=sk_run(), old_image={}), "COMPACTION_RUN"),
    (make_record("MODIFY", pk="LOCK#chroma", sk="LOCK", new_image={}), "LOCK"),
    (make_record("INSERT", sk="IMAGE", new_image={}), "IMAGE"),
]
# Objects that do not decode as typed attribute values.
UNDECODABLE_IMAGES: list[tuple[str, Any]] = [
    ("NewImage", {"text": {"N": "seven"}}),
    ("NewImage", {"text": {"S": "a", "N": "1"}, "deep": {"L": [{"M": {"x": {"NULL": False}}}]}}),
    ("OldImage", {"text": {"X": 1}}),
    ("OldImage", {"tags": {"SS": []}}),
]
# Not an image at all: the envelope says an image is an object or null, whatever the key.
NOT_OBJECT_IMAGES: list[tuple[str, Any, str]] = [
    ("NewImage", "not an image", "a string"),
    ("NewImage", [1, 2], "a list"),
    ("OldImage", 17, "a number"),
    ("OldImage", False, "a boolean"),
]


def _before(record: InputRecord) -> Outcome:
    """What ingest made of a record before it classified by key: parse all of it, then detect."""
    try:
        return detect(parse_record(record.raw))
    except (RecordFormatError, AttributeValueError, KeyFormatError, ChangeError) as error:
        return park_record(record, str(error))


def _both(decoded: dict[str, Any]) -> tuple[Outcome, Outcome]:
    """The outcome of one record as Lambda hands it (decoded) and as read from a file (bytes)."""
    return classify(LambdaRecord(ORIGIN, decoded)), classify(InputRecord(ORIGIN, _raw(decoded)))


def _raw(decoded: dict[str, Any]) -> bytes:
    """The record's bytes as the Lambda path encodes them (a note in place of non-JSON)."""
    return LambdaRecord(ORIGIN, decoded).raw


def _with_image(record: dict[str, Any], name: str, image: Any) -> dict[str, Any]:
    changed = copy.deepcopy(record)
    changed["dynamodb"][name] = image
    return changed


@pytest.fixture
def store() -> Iterator[EventStore]:
    with open_store("memory://") as opened:
        yield opened


@pytest.fixture
def decoded_items(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What change detection decodes as typed attributes: ``NewImage``, ``OldImage``..."""
    seen: list[str] = []
    real: Callable[..., Any] = changes_module.decode_item

    def spy(image: Any, path: str) -> Any:
        seen.append(path)
        return real(image, path)

    monkeypatch.setattr(changes_module, "decode_item", spy)
    return seen


@pytest.fixture
def bytes_parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The records ingest decodes from bytes."""
    seen: list[bytes] = []
    real: Callable[[bytes], Any] = ingest_module.parse_record

    def spy(raw: bytes) -> Any:
        seen.append(raw)
        return real(raw)

    monkeypatch.setattr(ingest_module, "parse_record", spy)
    return seen


# -- skipped by key ------------------------------------------------------------------------------


@pytest.mark.parametrize(("image_name", "image"), UNDECODABLE_IMAGES)
@pytest.mark.parametrize(("record", "kind"), SKIPPED)
def test_a_skipped_kind_is_skipped_whatever_its_images_hold(
    record: dict[str, Any], kind: str, image_name: str, image: Any, decoded_items: list[str]
) -> None:
    bad = _with_image(record, image_name, image)
    assert _both(bad) == (Skipped(kind), Skipped(kind))
    assert decoded_items == []


@pytest.mark.parametrize(("record", "kind"), SKIPPED)
def test_the_images_of_a_skipped_record_are_never_decoded(
    record: dict[str, Any], kind: str, decoded_items: list[str]
) -> None:
    assert _both(record) == (Skipped(kind), Skipped(kind))
    assert decoded_items == []


# A run's SK sends every record of it to the full parse (its MODIFYs may be touches).
@pytest.mark.parametrize(("record", "kind"), [s for s in SKIPPED if s[1] != "COMPACTION_RUN"])
def test_a_decoded_skipped_record_is_not_decoded_again(
    record: dict[str, Any], kind: str, bytes_parsed: list[bytes]
) -> None:
    assert classify(LambdaRecord(ORIGIN, record)) == Skipped(kind)
    assert bytes_parsed == []
    assert classify(InputRecord(ORIGIN, _raw(record))) == Skipped(kind)
    assert len(bytes_parsed) == 1  # the spy sees what it should


@pytest.mark.parametrize(("image_name", "image", "kind"), NOT_OBJECT_IMAGES)
@pytest.mark.parametrize(("record", "_kind"), SKIPPED[:3])
def test_an_image_that_is_not_an_object_is_parked_whatever_the_key(
    record: dict[str, Any], _kind: str, image_name: str, image: Any, kind: str
) -> None:
    bad = _with_image(record, image_name, image)
    decoded, from_bytes = _both(bad)
    assert decoded == from_bytes == _before(InputRecord(ORIGIN, _raw(bad)))
    assert isinstance(decoded, ParkedRecord)
    assert decoded.error == (
        f"not a DynamoDB stream record: dynamodb.{image_name} must be an object or null, got {kind}"
    )


def test_a_decoded_skipped_record_that_json_cannot_carry_is_parked() -> None:
    """A lone surrogate (which ``json.loads`` lets through) anywhere in a record: parked with
    a description, as before, even under a key that is skipped."""
    record = make_record("INSERT", sk=sk_word(), new_image={"text": "x"})
    record["dynamodb"]["NewImage"]["text"] = {"S": "\ud800"}
    outcome = classify(LambdaRecord(ORIGIN, record))
    assert outcome == _before(InputRecord(ORIGIN, _raw(record)))
    assert isinstance(outcome, ParkedRecord)
    assert outcome.payload.startswith(b"not JSON-encodable (")


def test_ingest_counts_skipped_records_with_bad_images_by_kind(store: EventStore) -> None:
    word = _with_image(SKIPPED[0][0], *UNDECODABLE_IMAGES[0])
    letter = _with_image(SKIPPED[2][0], *UNDECODABLE_IMAGES[2])
    label = make_record("INSERT", sk=sk_label(), new_image=LABEL)
    decoded = ingest(store, records_from_lambda_event({"Records": [word, letter, label]}))
    lines = b"\n".join(msgspec.json.encode(r) for r in (word, letter, label))
    with open_store("memory://") as again:
        from_bytes = ingest(again, [InputRecord(f"f:{i}", r) for i, r in enumerate(lines.split())])
    for summary in (decoded, from_bytes):
        assert (summary.skipped, summary.parked, summary.appended) == (2, 0, 1)
        assert summary.skipped_by_kind == {"RECEIPT_WORD": 1, "RECEIPT_LETTER": 1}


# -- records that can produce an event -----------------------------------------------------------


def test_an_event_kind_still_decodes_its_images(decoded_items: list[str]) -> None:
    record = make_record("INSERT", sk=sk_label("TOTAL"), new_image=LABEL, event_id="label-1")
    decoded, from_bytes = _both(record)
    assert decoded_items == ["NewImage", "NewImage"]  # once decoded, once from bytes
    assert decoded == from_bytes == _before(InputRecord(ORIGIN, _raw(record)))
    assert isinstance(decoded, WordLabelSet)
    assert (decoded.label, decoded.validation_status, decoded.label_proposed_by) == (
        "TOTAL",
        "VALID",
        "model",
    )


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            _with_image(make_record("INSERT", sk=sk_place(), new_image={}), "NewImage", "x"),
            "not a DynamoDB stream record: "
            "dynamodb.NewImage must be an object or null, got a string",
        ),
        (
            _with_image(make_record("REMOVE", sk=sk_word()), "OldImage", [1]),
            "not a DynamoDB stream record: dynamodb.OldImage must be an object or null, got a list",
        ),
        (
            _with_image(make_record("INSERT", sk=sk_label(), new_image={}), "NewImage", {"a": 1}),
            'NewImage.a: expected a typed attribute value like {"S": "..."}, got a number',
        ),
        (  # a run MODIFY may be a backfill's touch: its NewImage is read
            _with_image(make_record("MODIFY", sk=sk_run(), new_image={}), "NewImage", 3),
            "not a DynamoDB stream record: "
            "dynamodb.NewImage must be an object or null, got a number",
        ),
    ],
)
def test_a_bad_image_of_an_event_kind_is_parked_as_before(
    record: dict[str, Any], message: str
) -> None:
    decoded, from_bytes = _both(record)
    assert decoded == from_bytes == _before(InputRecord(ORIGIN, _raw(record)))
    assert isinstance(decoded, ParkedRecord)
    assert decoded.error == message


def test_a_bad_image_is_named_before_a_bad_key() -> None:
    record = make_record("INSERT", sk="RECEIPT#00001#LINE#abc", new_image={})
    record["dynamodb"]["NewImage"] = "x"
    decoded, from_bytes = _both(record)
    assert decoded == from_bytes == _before(InputRecord(ORIGIN, _raw(record)))
    assert isinstance(decoded, ParkedRecord)
    assert "NewImage must be an object or null" in decoded.error


# -- the decoded path agrees with the bytes path -------------------------------------------------


def _envelope_variants() -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    def put(*path: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def change(record: dict[str, Any]) -> None:
            parent = record
            for name in path[:-1]:
                parent = parent[name]
            parent[path[-1]] = value

        return change

    def drop(*path: str) -> Callable[[dict[str, Any]], None]:
        def change(record: dict[str, Any]) -> None:
            parent = record
            for name in path[:-1]:
                parent = parent[name]
            del parent[path[-1]]

        return change

    def no_region(record: dict[str, Any]) -> None:
        del record["awsRegion"], record["eventSourceARN"]

    return [
        ("no eventID", drop("eventID")),
        ("empty eventID", put("eventID", value="")),
        ("NUL in eventID", put("eventID", value="a\x00b")),
        ("lone surrogate in eventID", put("eventID", value="a\ud800")),
        ("huge eventID", put("eventID", value="e" * 300)),
        ("numeric eventID", put("eventID", value=7)),
        ("unknown eventName", put("eventName", value="DELETE")),
        ("no region", no_region),
        ("region from the ARN only", drop("awsRegion")),
        ("dynamodb not an object", put("dynamodb", value=[1])),
        ("no Keys", drop("dynamodb", "Keys")),
        ("Keys a list", put("dynamodb", "Keys", value=[])),
        ("a third key", put("dynamodb", "Keys", "extra", value={"S": "x"})),
        ("numeric SK", put("dynamodb", "Keys", "SK", value={"N": "1"})),
        ("malformed SK", put("dynamodb", "Keys", "SK", value={"S": "RECEIPT#x#LINE#00001"})),
        ("SequenceNumber not digits", put("dynamodb", "SequenceNumber", value="12a")),
        ("SequenceNumber a number", put("dynamodb", "SequenceNumber", value=12)),
        ("SequenceNumber too long", put("dynamodb", "SequenceNumber", value="9" * 200)),
        ("boolean creation time", put("dynamodb", "ApproximateCreationDateTime", value=True)),
        ("NaN creation time", put("dynamodb", "ApproximateCreationDateTime", value=float("nan"))),
        ("huge creation time", put("dynamodb", "ApproximateCreationDateTime", value=2**70)),
        ("null creation time", put("dynamodb", "ApproximateCreationDateTime", value=None)),
        ("numeric StreamViewType", put("dynamodb", "StreamViewType", value=1)),
        ("no SequenceNumber", drop("dynamodb", "SequenceNumber")),
    ]


@pytest.mark.parametrize(("name", "change"), _envelope_variants())
@pytest.mark.parametrize(
    "template",
    [SKIPPED[0][0], SKIPPED[5][0], make_record("INSERT", sk=sk_label(), new_image=LABEL)],
    ids=["word", "lock", "label"],
)
def test_an_unusual_envelope_gets_the_same_verdict_decoded_or_as_bytes(
    template: dict[str, Any], name: str, change: Callable[[dict[str, Any]], None]
) -> None:
    record = copy.deepcopy(template)
    change(record)
    decoded, from_bytes = _both(record)
    assert decoded == from_bytes, name
    assert from_bytes == _before(InputRecord(ORIGIN, _raw(record))), name


def test_the_synthetic_history_classifies_as_before_decoded_or_as_bytes() -> None:
    records = generate_history(config_for_records(600, seed=5)).records
    skipped = 0
    for index, record in enumerate(records):
        origin = f"h:{index}"
        raw = msgspec.json.encode(record)
        before = _before(InputRecord(origin, raw))
        assert classify(LambdaRecord(origin, record)) == before, record
        assert classify(InputRecord(origin, raw)) == before, record
        skipped += isinstance(before, Skipped)
    assert 0 < skipped < len(records)


_text = st.text(st.characters(codec="utf-8"), max_size=8)
_values = any_json(_text, max_size=3, max_leaves=6)
_FIELDS = [
    ("eventID",),
    ("eventName",),
    ("awsRegion",),
    ("eventSourceARN",),
    ("dynamodb",),
    ("dynamodb", "Keys"),
    ("dynamodb", "Keys", "PK"),
    ("dynamodb", "Keys", "SK"),
    ("dynamodb", "SequenceNumber"),
    ("dynamodb", "ApproximateCreationDateTime"),
    ("dynamodb", "StreamViewType"),
    ("dynamodb", "NewImage"),
]
_TEMPLATES = [
    *(record for record, _ in SKIPPED),
    make_record("INSERT", sk=sk_label(), new_image=LABEL),
    make_record("REMOVE", sk=sk_word(), old_image={"text": "x"}),
    make_record("INSERT", pk=PK, sk=sk_place(), new_image={"merchant_name": "Cafe"}),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_TEMPLATES),
    st.lists(st.tuples(st.sampled_from(_FIELDS), _values), max_size=3),
)
def test_any_envelope_gets_the_same_verdict_decoded_or_as_bytes(
    template: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]
) -> None:
    record = copy.deepcopy(template)
    for path, value in changes:
        parent: Any = record
        for name in path[:-1]:
            if not isinstance(parent, dict) or not isinstance(parent.get(name), dict):
                break
            parent = parent[name]
        else:
            if isinstance(parent, dict):
                parent[path[-1]] = value
    decoded, from_bytes = _both(record)
    assert decoded == from_bytes
