"""Input shapes (a Lambda event, one record, JSON Lines) and the stream-record envelope.

Reading splits an input into :class:`InputRecord`s, each keeping its exact bytes and where it
came from (``events.jsonl:17``, ``event.json:Records[3]``), so a record that turns out to be
bad can be parked whole and named. Only an input that cannot be split into records at all (a
multi-line JSON document broken in the middle) is :class:`UnreadableInput`.

A Lambda event's records arrive already decoded: a :class:`LambdaRecord` keeps one as it came,
and one whose key can never produce an event is classified from that
(:func:`envelope_of_decoded`), never decoded again from its bytes.
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import Any, TypeAlias, TypeGuard

import msgspec

from receipt_events.events import EventSource, StreamEventName

_BOM = b"\xef\xbb\xbf"
# AWS eventIDs are 32 hex digits. The store indexes them (the dedup key) as text, and
# PostgreSQL refuses an index entry over ~2.7 kB and any NUL in text: such an eventID would
# fail every append of its batch.
MAX_EVENT_ID_LENGTH = 256
# DynamoDB SequenceNumbers have at most 40 digits; redrive and batch failure reports compare
# them as integers, and int() refuses more than 4300 digits.
MAX_SEQUENCE_NUMBER_DIGITS = 128
_BYTE_POSITION = re.compile(r"\(byte (\d+)\)")


class UnreadableInput(ValueError):
    """An input that cannot be split into records; names the input and the line."""

    def __init__(self, name: str, line: int, problem: str) -> None:
        super().__init__(f"{name}:{line}: {problem}")
        self.name = name
        self.line = line
        self.problem = problem


class InputRecord(msgspec.Struct, frozen=True):
    """One record as read from an input: its bytes, untouched, and where it came from."""

    origin: str
    raw: bytes


class _RecordsDocument(msgspec.Struct):
    Records: list[msgspec.Raw]


def read_input(data: bytes, name: str) -> list[InputRecord]:
    """Split an input into records: a Lambda event, one record, a JSON array, or JSON Lines."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if not data.strip():
        return []
    try:
        document = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        return _read_json_lines(data, name, error)
    if isinstance(document, dict) and "Records" in document:
        try:
            records = msgspec.json.decode(data, type=_RecordsDocument).Records
        except msgspec.ValidationError as error:
            raise UnreadableInput(
                name, 1, f'"Records" must be a list of records ({error})'
            ) from None
        return [
            InputRecord(f"{name}:Records[{index}]", bytes(raw)) for index, raw in enumerate(records)
        ]
    if isinstance(document, list):
        elements = msgspec.json.decode(data, type=list[msgspec.Raw])
        return [InputRecord(f"{name}:[{index}]", bytes(raw)) for index, raw in enumerate(elements)]
    return [InputRecord(f"{name}:1", data.strip())]


def _read_json_lines(data: bytes, name: str, error: Exception) -> list[InputRecord]:
    """JSON Lines, unless the whole input is one multi-line document broken past its first line."""
    first_line_end = _first_line_end(data)
    failed_at = _error_offset(error, data)
    if "trailing characters" in str(error):
        # One complete value, then more: JSON Lines if that value was the first line alone.
        failed_at = first_line_end if _is_json(data[:first_line_end]) else failed_at
    if failed_at > first_line_end and not _is_json(_next_line(data, first_line_end)):
        # Not JSON Lines with a broken first line (its next line would be a whole value).
        line = data.count(b"\n", 0, min(failed_at, len(data.rstrip()))) + 1
        problem = "not valid UTF-8" if _is_utf8_error(error) else str(error)
        raise UnreadableInput(name, line, f"not a JSON document or JSON Lines: {problem}")
    records = []
    for number, text in enumerate(data.split(b"\n"), start=1):
        if text[:1].isspace() or text[-1:].isspace():  # rare: only then pay for a copy
            text = text.strip()
        if text:
            records.append(InputRecord(f"{name}:{number}", text))
    return records


def _is_json(line: bytes) -> bool:
    try:
        msgspec.json.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    return True


def _first_line_end(data: bytes) -> int:
    """Offset of the newline ending the first non-blank line (or the end of the data)."""
    start = len(data) - len(data.lstrip())
    end = data.find(b"\n", start)
    return len(data) if end < 0 else end


def _next_line(data: bytes, start: int) -> bytes:
    """The next non-blank line after offset ``start``."""
    rest = data[start:].lstrip()
    end = rest.find(b"\n")
    return rest if end < 0 else rest[:end]


def _is_utf8_error(error: Exception) -> bool:
    return isinstance(error, UnicodeDecodeError) or "UTF-8" in str(error)


def _error_offset(error: Exception, data: bytes) -> int:
    if _is_utf8_error(error):
        # msgspec < 0.23 raises UnicodeDecodeError counting from the start of the string it was
        # decoding, 0.23 a DecodeError with no position at all: find the byte itself.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exact:
            return int(exact.start)
    match = _BYTE_POSITION.search(str(error))
    # Truncated input carries no position: it broke where its content ends.
    return int(match.group(1)) if match else len(data.rstrip())


class _WireDynamodb(msgspec.Struct):
    keys: dict[str, Any] = msgspec.field(name="Keys")
    sequence_number: str = msgspec.field(name="SequenceNumber")
    # Images stay raw JSON until a record's entity needs them: most records are skipped
    # (words, lines, letters) and never need their images built as Python objects.
    new_image: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name="NewImage")
    old_image: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name="OldImage")
    approximate_creation_date_time: int | float | None = msgspec.field(
        default=None, name="ApproximateCreationDateTime"
    )
    stream_view_type: str | None = msgspec.field(default=None, name="StreamViewType")


class _WireRecord(msgspec.Struct):
    event_id: str = msgspec.field(name="eventID")
    event_name: StreamEventName = msgspec.field(name="eventName")
    dynamodb: _WireDynamodb
    aws_region: str | None = msgspec.field(default=None, name="awsRegion")
    event_source_arn: str | None = msgspec.field(default=None, name="eventSourceARN")


class Envelope(msgspec.Struct, frozen=True):
    """A record's source and ``Keys``, validated: all that classifying it by key needs."""

    source: EventSource
    keys: dict[str, Any]


class StreamRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A DynamoDB stream record's envelope, validated; images are still typed attribute maps."""

    source: EventSource
    keys: dict[str, Any]
    new_image: bytes | None  # the image's raw JSON; None when absent or null
    old_image: bytes | None
    stream_view_type: str | None


class RecordFormatError(ValueError):
    """A record that is not a valid DynamoDB stream record."""


_wire_decoder = msgspec.json.Decoder(_WireRecord)


def parse_record(raw: bytes) -> StreamRecord:
    """Decode and validate one record's envelope; raises :class:`RecordFormatError`.

    One pass over the bytes, the images kept as raw JSON: a record its key skips
    (:func:`receipt_events.changes.detect`) never has them decoded.
    """
    if not raw.isascii():  # ASCII is valid UTF-8: only other bytes pay for the check
        try:
            raw.decode("utf-8")  # the typed decoder skips unknown fields without checking them
        except UnicodeDecodeError as error:
            raise RecordFormatError(f"not valid UTF-8 at byte {error.start}") from None
    try:
        wire = _wire_decoder.decode(raw)
    except msgspec.ValidationError as error:
        raise RecordFormatError(f"not a DynamoDB stream record: {error}") from None
    except msgspec.DecodeError as error:
        raise RecordFormatError(f"invalid JSON: {error}") from None
    body = wire.dynamodb
    source = _source(
        wire.event_id,
        wire.event_name,
        body.sequence_number,
        body.approximate_creation_date_time,
        wire.aws_region or _region_from_arn(wire.event_source_arn),
    )
    return StreamRecord(
        source=source,
        keys=body.keys,
        new_image=_image(body.new_image, "NewImage"),
        old_image=_image(body.old_image, "OldImage"),
        stream_view_type=body.stream_view_type,
    )


def _source(
    event_id: str,
    event_name: StreamEventName,
    sequence_number: str,
    created: int | float | None,
    region: str | None,
) -> EventSource:
    """Check the envelope's values (whichever path decoded them) and name the record's source."""
    if not event_id:
        raise RecordFormatError("eventID is empty")
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise RecordFormatError(
            f"eventID is {len(event_id)} characters long (at most {MAX_EVENT_ID_LENGTH})"
        )
    if "\x00" in event_id:
        raise RecordFormatError("eventID contains a NUL character")
    if not sequence_number.isascii() or not sequence_number.isdigit():
        raise RecordFormatError(
            f"dynamodb.SequenceNumber {sequence_number[:40]!r} is not a decimal number"
        )
    if len(sequence_number) > MAX_SEQUENCE_NUMBER_DIGITS:
        raise RecordFormatError(
            f"dynamodb.SequenceNumber has {len(sequence_number)} digits "
            f"(at most {MAX_SEQUENCE_NUMBER_DIGITS})"
        )
    if not region:
        raise RecordFormatError("no awsRegion and no region in eventSourceARN")
    return EventSource(
        event_id=event_id,
        event_name=event_name,
        sequence_number=sequence_number,
        approximate_creation_date_time=created,
        region=region,
    )


_JSON_KINDS = {
    ord('"'): "a string",
    ord("["): "a list",
    ord("t"): "a boolean",
    ord("f"): "a boolean",
}


def _image(raw: msgspec.Raw, name: str) -> bytes | None:
    """An image's raw JSON (None when absent or null); it must be a JSON object."""
    data = bytes(raw)
    if data in (b"", b"null"):
        return None
    if data[0] != ord("{"):
        kind = _JSON_KINDS.get(data[0], "a number")
        raise RecordFormatError(
            f"not a DynamoDB stream record: dynamodb.{name} must be an object or null, got {kind}"
        )
    return data


def _region_from_arn(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


class LambdaRecord:
    """A record as the Lambda runtime handed it (decoded JSON), and where it came from.

    Its bytes (what it parses from and is parked with) are encoded when first asked for, and
    only a record that may produce an event is decoded from them: one its key skips is read as
    it came (:func:`envelope_of_decoded`).
    """

    __slots__ = ("_raw", "decoded", "origin")

    def __init__(self, origin: str, decoded: object) -> None:
        self.origin = origin
        self.decoded = decoded
        self._raw: bytes | None = None

    def __repr__(self) -> str:
        return f"LambdaRecord({self.origin!r})"

    @property
    def raw(self) -> bytes:
        """The record re-encoded as JSON (once): it parses, and if bad is parked, exactly like
        the same record read from a file."""
        if self._raw is None:
            self._raw = _encode_record(self.decoded)
        return self._raw

    def is_json(self) -> bool:
        """Whether the record encodes as JSON at all (a lone surrogate, say, does not)."""
        return not self.raw.startswith(_NOT_JSON)


SourceRecord: TypeAlias = InputRecord | LambdaRecord


def records_from_lambda_event(event: object) -> list[LambdaRecord]:
    """The records of a Lambda DynamoDB-stream event (``{"Records": [...]}``, already decoded)."""
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise UnreadableInput("lambda event", 1, 'expected an object {"Records": [...]}')
    records = []
    for index, record in enumerate(event["Records"]):
        event_id = record.get("eventID") if isinstance(record, dict) else None
        printable = isinstance(event_id, str) and event_id and event_id.isprintable()
        label = event_id if printable else f"Records[{index}]"  # no NUL or lone surrogate
        records.append(LambdaRecord(f"lambda:{label}", record))
    return records


_EVENT_NAMES: dict[str, StreamEventName] = {
    "INSERT": "INSERT",
    "MODIFY": "MODIFY",
    "REMOVE": "REMOVE",
}


def envelope_of_decoded(record: object) -> Envelope | None:
    """A decoded record's envelope, read without encoding it, if it is plainly valid.

    Checks what :func:`parse_record` would check of the same record once encoded, on the
    fields it reads (of the images, only that each is an object or null). None when anything
    is unusual: the caller then takes the bytes path, which gives the verdict and its exact
    error message. Whether the whole record encodes as JSON is :meth:`LambdaRecord.is_json`.
    """
    if type(record) is not dict:
        return None
    body = record.get("dynamodb")
    if type(body) is not dict:
        return None
    keys, name, event_id = body.get("Keys"), record.get("eventName"), record.get("eventID")
    sequence, created = body.get("SequenceNumber"), body.get("ApproximateCreationDateTime")
    if type(name) is not str or type(event_id) is not str or type(sequence) is not str:
        return None
    event_name = _EVENT_NAMES.get(name)
    if event_name is None or not _plain_keys(keys) or not _plain_number(created):
        return None
    if not _plain_image(body.get("NewImage")) or not _plain_image(body.get("OldImage")):
        return None
    region, arn = record.get("awsRegion"), record.get("eventSourceARN")
    pk, sk = keys["PK"]["S"], keys["SK"]["S"]
    if not _texts(event_id, pk, sk, region, arn, body.get("StreamViewType")):
        return None
    try:
        source = _source(event_id, event_name, sequence, created, region or _region_from_arn(arn))
    except RecordFormatError:
        return None
    return Envelope(source, keys)


def _plain_keys(keys: object) -> TypeGuard[dict[str, Any]]:
    """Whether ``keys`` is ``{"PK": {"S": str}, "SK": {"S": str}}`` and nothing else."""
    if type(keys) is not dict or len(keys) != 2:
        return False
    pk, sk = keys.get("PK"), keys.get("SK")
    if type(pk) is not dict or type(sk) is not dict or len(pk) != 1 or len(sk) != 1:
        return False
    return type(pk.get("S")) is str and type(sk.get("S")) is str


def _plain_image(image: object) -> bool:
    """Whether an image is an object or null (or absent), as :func:`parse_record` requires."""
    return image is None or type(image) is dict


def _texts(*values: object) -> bool:
    """Whether each value is None or a string that encodes to JSON (no lone surrogate)."""
    for value in values:
        if value is None:
            continue
        if type(value) is not str:
            return False
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def _plain_number(value: object) -> bool:
    """None, an int, or a finite float: what encodes and decodes back as the same value."""
    if value is None or type(value) is int:
        return True
    return type(value) is float and math.isfinite(value)


_NOT_JSON = b"not JSON-encodable ("
_encoder = msgspec.json.Encoder()


def _encode_record(record: object) -> bytes:
    try:
        return _encoder.encode(record)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError) as error:
        # not JSON data (a non-JSON type, a lone surrogate, nesting past the encoder's limit):
        # park its repr rather than fail the whole batch
        try:
            shown = repr(record)
        except RecursionError:
            shown = reprlib.repr(record)
        return _NOT_JSON + f"{error}): {shown}".encode(errors="replace")
