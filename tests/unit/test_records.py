"""Reading inputs into records (every accepted shape, exact bytes, origins) and the envelope."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from receipt_events.events import EventSource
from receipt_events.records import (
    InputRecord,
    RecordFormatError,
    StreamRecord,
    UnreadableInput,
    parse_record,
    read_input,
)
from tests.unit.records_factory import PK, STREAM_ARN, jsonl, make_record, sk_place, to_bytes


def _records(count: int) -> list[dict[str, Any]]:
    return [make_record("REMOVE", sk=f"RECEIPT#{n:05d}") for n in range(1, count + 1)]


# -- read_input: shapes --------------------------------------------------------------------------


def test_lambda_event_splits_into_its_records_with_exact_bytes() -> None:
    # Hand-written spacing inside each record must survive untouched.
    first = b'{"eventID": "a",  "x": [1, 2]}'
    second = b'{\n  "eventID": "b"\n}'
    data = b'{"Records": [' + first + b", " + second + b'], "other": 1}'
    assert read_input(data, "event.json") == [
        InputRecord("event.json:Records[0]", first),
        InputRecord("event.json:Records[1]", second),
    ]


def test_lambda_event_origins_count_from_zero() -> None:
    records = _records(5)
    data = json.dumps({"Records": records}, indent=2).encode()
    read = read_input(data, "event.json")
    assert [r.origin for r in read] == [f"event.json:Records[{i}]" for i in range(5)]
    assert [msgspec.json.decode(r.raw) for r in read] == records
    assert read[3].origin == "event.json:Records[3]"


def test_empty_lambda_event_has_no_records() -> None:
    assert read_input(b'{"Records": []}', "e") == []


def test_lambda_event_whose_records_is_not_a_list_is_unreadable() -> None:
    with pytest.raises(UnreadableInput) as caught:
        read_input(b'{"Records": {"a": 1}}', "event.json")
    assert (caught.value.name, caught.value.line) == ("event.json", 1)
    assert caught.value.problem.startswith('"Records" must be a list of records (')
    assert str(caught.value).startswith('event.json:1: "Records" must be a list of records')


def test_single_compact_record() -> None:
    raw = to_bytes(make_record("REMOVE"))
    assert read_input(raw, "one.json") == [InputRecord("one.json:1", raw)]


def test_single_pretty_printed_record_is_kept_whole() -> None:
    text = json.dumps(make_record("REMOVE"), indent=2).encode()
    assert b"\n" in text
    assert read_input(b"\n" + text + b"\n\n", "one.json") == [InputRecord("one.json:1", text)]


def test_json_array_of_records() -> None:
    records = _records(3)
    data = json.dumps(records).encode()
    read = read_input(data, "a.json")
    assert [r.origin for r in read] == ["a.json:[0]", "a.json:[1]", "a.json:[2]"]
    assert [r.raw for r in read] == [json.dumps(r).encode() for r in records]


def test_json_lines_with_blank_lines_crlf_and_a_bom() -> None:
    a, b, c = (to_bytes(r) for r in _records(3))
    data = b"\xef\xbb\xbf" + a + b"\r\n\r\n" + b + b"\r\n   \r\n" + c + b"\r\n"
    assert read_input(data, "s.jsonl") == [
        InputRecord("s.jsonl:1", a),
        InputRecord("s.jsonl:3", b),
        InputRecord("s.jsonl:5", c),
    ]


def test_json_lines_without_a_final_newline() -> None:
    a, b = (to_bytes(r) for r in _records(2))
    assert read_input(a + b"\n" + b, "s") == [InputRecord("s:1", a), InputRecord("s:2", b)]


def test_json_lines_with_a_broken_line_in_the_middle_gives_per_line_records() -> None:
    a, b, c = (to_bytes(r) for r in _records(3))
    broken = b[: len(b) // 2]
    read = read_input(a + b"\n" + broken + b"\n" + c + b"\n", "s.jsonl")
    assert read == [
        InputRecord("s.jsonl:1", a),
        InputRecord("s.jsonl:2", broken),
        InputRecord("s.jsonl:3", c),
    ]


@pytest.mark.parametrize("cut", [1, 10, 40, -1])
def test_json_lines_with_a_broken_first_line_gives_per_line_records(cut: int) -> None:
    a, b, c = (to_bytes(r) for r in _records(3))
    broken = a[:cut]
    read = read_input(broken + b"\n" + b + b"\n" + c + b"\n", "s.jsonl")
    assert read == [
        InputRecord("s.jsonl:1", broken),
        InputRecord("s.jsonl:2", b),
        InputRecord("s.jsonl:3", c),
    ]


def test_json_lines_with_invalid_utf8_in_a_line_give_per_line_records() -> None:
    a, c = (to_bytes(r) for r in _records(2))
    bad = b'{"eventID": "\xff\xfe"}'
    assert read_input(bad + b"\n" + a + b"\n" + c, "s") == [
        InputRecord("s:1", bad),
        InputRecord("s:2", a),
        InputRecord("s:3", c),
    ]
    assert read_input(a + b"\n" + bad + b"\n" + c, "s")[1] == InputRecord("s:2", bad)


def test_a_single_broken_line_is_one_record() -> None:
    broken = to_bytes(make_record("REMOVE"))[:-5]
    assert read_input(broken, "x") == [InputRecord("x:1", broken)]


@pytest.mark.parametrize("data", [b"", b"   \n\r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n"])
def test_empty_input_has_no_records(data: bytes) -> None:
    assert read_input(data, "x") == []


def test_pretty_printed_document_broken_in_the_middle_is_unreadable_naming_the_line() -> None:
    text = json.dumps({"Records": _records(2)}, indent=2)
    lines = text.split("\n")
    target = next(i for i, line in enumerate(lines) if '"SequenceNumber"' in line)
    lines[target] = lines[target].replace(":", "", 1)  # "SequenceNumber" "1..."
    with pytest.raises(UnreadableInput) as caught:
        read_input("\n".join(lines).encode(), "event.json")
    assert caught.value.name == "event.json"
    assert caught.value.line == target + 1
    assert caught.value.problem.startswith(
        "not a JSON document or JSON Lines: JSON is malformed: expected ':'"
    )
    assert str(caught.value).startswith(f"event.json:{target + 1}: not a JSON document")


def test_truncated_pretty_printed_document_is_unreadable_naming_its_last_line() -> None:
    text = json.dumps({"Records": _records(2)}, indent=2)
    lines = text.split("\n")
    truncated = "\n".join(lines[:20]) + "\n"
    with pytest.raises(UnreadableInput) as caught:
        read_input(truncated.encode(), "event.json")
    assert caught.value.line == 20
    assert caught.value.problem == ("not a JSON document or JSON Lines: Input data was truncated")


def test_pretty_printed_document_with_invalid_utf8_is_unreadable_naming_the_line() -> None:
    text = json.dumps(make_record("REMOVE"), indent=2).encode()
    lines = text.split(b"\n")
    target = next(i for i, line in enumerate(lines) if b'"eventName"' in line)
    lines[target] = lines[target].replace(b"REMOVE", b"REM\xffVE")
    with pytest.raises(UnreadableInput) as caught:
        read_input(b"\n".join(lines), "one.json")
    assert caught.value.line == target + 1
    assert caught.value.problem == "not a JSON document or JSON Lines: not valid UTF-8"


# -- parse_record --------------------------------------------------------------------------------


def test_parse_record_reads_the_envelope() -> None:
    record = make_record(
        "MODIFY",
        sk=sk_place(),
        new_image={"merchant_name": "Cafe"},
        old_image={"merchant_name": "Old"},
        event_id="e-1",
        sequence_number="4321000000000000000001",
    )
    parsed = parse_record(to_bytes(record))
    assert parsed == StreamRecord(
        source=EventSource(
            event_id="e-1",
            event_name="MODIFY",
            sequence_number="4321000000000000000001",
            approximate_creation_date_time=1714521600,
            region="us-east-1",
        ),
        keys={"PK": {"S": PK}, "SK": {"S": sk_place()}},
        new_image=msgspec.json.encode(record["dynamodb"]["NewImage"]),
        old_image=msgspec.json.encode(record["dynamodb"]["OldImage"]),
        stream_view_type="NEW_AND_OLD_IMAGES",
    )


def test_optional_envelope_fields_may_be_absent() -> None:
    record = make_record("REMOVE", event_id="e-2", sequence_number="7")
    for name in ("ApproximateCreationDateTime", "StreamViewType"):
        del record["dynamodb"][name]
    parsed = parse_record(to_bytes(record))
    assert parsed.source.approximate_creation_date_time is None
    assert parsed.stream_view_type is None
    assert parsed.new_image is None
    assert parsed.old_image is None


def test_fractional_creation_time_is_kept() -> None:
    record = make_record("REMOVE")
    record["dynamodb"]["ApproximateCreationDateTime"] = 1714521600.125
    assert parse_record(to_bytes(record)).source.approximate_creation_date_time == 1714521600.125


def test_unknown_extra_fields_are_tolerated() -> None:
    record = make_record("REMOVE", event_id="e-3")
    record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    record["dynamodb"]["SizeBytes"] = 12
    record["dynamodb"]["Surprise"] = [1, {"x": None}]
    assert parse_record(to_bytes(record)).source.event_id == "e-3"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("eventID",), "Object missing required field `eventID`"),
        (("eventName",), "Object missing required field `eventName`"),
        (("dynamodb",), "Object missing required field `dynamodb`"),
        (("dynamodb", "Keys"), "Object missing required field `Keys` - at `$.dynamodb`"),
        (
            ("dynamodb", "SequenceNumber"),
            "Object missing required field `SequenceNumber` - at `$.dynamodb`",
        ),
    ],
)
def test_missing_required_field_is_a_format_error(path: tuple[str, ...], message: str) -> None:
    record = make_record("REMOVE")
    parent = record
    for name in path[:-1]:
        parent = parent[name]
    del parent[path[-1]]
    with pytest.raises(RecordFormatError) as caught:
        parse_record(to_bytes(record))
    assert str(caught.value) == f"not a DynamoDB stream record: {message}"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("eventID",), 17, "Expected `str`, got `int` - at `$.eventID`"),
        (("eventName",), None, "Expected `str`, got `null` - at `$.eventName`"),
        (("awsRegion",), ["us-east-1"], "Expected `str | null`, got `array` - at `$.awsRegion`"),
        (("eventSourceARN",), 1, "Expected `str | null`, got `int` - at `$.eventSourceARN`"),
        (("dynamodb",), "x", "Expected `object`, got `str` - at `$.dynamodb`"),
        (("dynamodb", "Keys"), [], "Expected `object`, got `array` - at `$.dynamodb.Keys`"),
        (
            ("dynamodb", "SequenceNumber"),
            100,
            "Expected `str`, got `int` - at `$.dynamodb.SequenceNumber`",
        ),
        (
            ("dynamodb", "NewImage"),
            "x",
            "dynamodb.NewImage must be an object or null, got a string",
        ),
        (
            ("dynamodb", "OldImage"),
            1,
            "dynamodb.OldImage must be an object or null, got a number",
        ),
        (
            ("dynamodb", "ApproximateCreationDateTime"),
            "2024-05-01",
            "Expected `int | float | null`, got `str` - at "
            "`$.dynamodb.ApproximateCreationDateTime`",
        ),
        (
            ("dynamodb", "StreamViewType"),
            1,
            "Expected `str | null`, got `int` - at `$.dynamodb.StreamViewType`",
        ),
    ],
)
def test_mistyped_field_is_a_format_error(
    path: tuple[str, ...], value: object, message: str
) -> None:
    record = make_record("REMOVE")
    parent = record
    for name in path[:-1]:
        parent = parent[name]
    parent[path[-1]] = value
    with pytest.raises(RecordFormatError) as caught:
        parse_record(to_bytes(record))
    assert str(caught.value) == f"not a DynamoDB stream record: {message}"


@pytest.mark.parametrize("name", ["DELETE", "insert", "", "Modify"])
def test_unknown_event_name_is_a_format_error(name: str) -> None:
    record = make_record("REMOVE")
    record["eventName"] = name
    with pytest.raises(RecordFormatError) as caught:
        parse_record(to_bytes(record))
    assert str(caught.value) == (
        f"not a DynamoDB stream record: Invalid enum value {name!r} - at `$.eventName`"
    )


@pytest.mark.parametrize("sequence", ["", "12a", "-1", "1.5", " 1", "\u0661\u0662"])
def test_non_numeric_sequence_number_is_a_format_error(sequence: str) -> None:
    record = make_record("REMOVE", sequence_number="1")
    record["dynamodb"]["SequenceNumber"] = sequence
    with pytest.raises(RecordFormatError) as caught:
        parse_record(to_bytes(record))
    assert str(caught.value) == f"dynamodb.SequenceNumber {sequence!r} is not a decimal number"


def test_empty_event_id_is_a_format_error() -> None:
    record = make_record("REMOVE")
    record["eventID"] = ""
    with pytest.raises(RecordFormatError, match=r"^eventID is empty$"):
        parse_record(to_bytes(record))


@pytest.mark.parametrize("region", [None, ""])
def test_region_comes_from_the_stream_arn_when_aws_region_is_absent(region: str | None) -> None:
    record = make_record("REMOVE", region=None, arn=STREAM_ARN.replace("us-east-1", "eu-west-2"))
    if region is not None:
        record["awsRegion"] = region
    assert parse_record(to_bytes(record)).source.region == "eu-west-2"


def test_aws_region_wins_over_the_arn() -> None:
    record = make_record("REMOVE", region="ap-south-1")
    assert parse_record(to_bytes(record)).source.region == "ap-south-1"


@pytest.mark.parametrize("arn", [None, "", "arn:aws:dynamodb", "arn:aws:dynamodb::123:table/t"])
def test_no_region_at_all_is_a_format_error(arn: str | None) -> None:
    record = make_record("REMOVE", region=None, arn=arn)
    with pytest.raises(RecordFormatError) as caught:
        parse_record(to_bytes(record))
    assert str(caught.value) == "no awsRegion and no region in eventSourceARN"


def test_invalid_utf8_is_a_format_error_naming_the_byte() -> None:
    raw = to_bytes(make_record("REMOVE", region="us-east-1"))
    offset = raw.index(b"us-east-1") + 2
    bad = raw[:offset] + b"\xff" + raw[offset + 1 :]
    with pytest.raises(RecordFormatError) as caught:
        parse_record(bad)
    assert str(caught.value) == f"not valid UTF-8 at byte {offset}"


def test_invalid_utf8_in_an_unknown_field_is_a_format_error_too() -> None:
    # msgspec's typed decoder skips unknown fields unchecked; the record is still not JSON.
    raw = to_bytes(make_record("REMOVE"))
    offset = raw.index(b'"eventVersion"') + 3
    bad = raw[:offset] + b"\x80" + raw[offset:]
    with pytest.raises(RecordFormatError) as caught:
        parse_record(bad)
    assert str(caught.value) == f"not valid UTF-8 at byte {offset}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"eventID": ', "invalid JSON: Input data was truncated"),
        (b"{eventID}", "invalid JSON: JSON is malformed: object keys must be strings (byte 1)"),
        (b"[]", "not a DynamoDB stream record: Expected `object`, got `array`"),
        (b"null", "not a DynamoDB stream record: Expected `object`, got `null`"),
    ],
)
def test_broken_json_is_a_format_error(raw: bytes, message: str) -> None:
    with pytest.raises(RecordFormatError) as caught:
        parse_record(raw)
    assert str(caught.value) == message


def test_records_read_from_json_lines_parse() -> None:
    records = _records(3)
    read = read_input(jsonl(records), "s.jsonl")
    assert [parse_record(r.raw).source.event_id for r in read] == [r["eventID"] for r in records]
