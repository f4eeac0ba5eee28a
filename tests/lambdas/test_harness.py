"""The simulated AWS plays AWS faithfully (``tests/support/receipt_table.py`` and
``stream_reader.py``): one stream record per write, in write order, with the images written,
shaped as Lambda delivers them, and re-readable from any sequence number."""

from __future__ import annotations

from typing import Any

import msgspec

from receipt_events.attributes import decode_item
from tests.support.lambda_pipeline import STREAM_BATCH, Pipeline
from tests.support.receipt_table import history_writes


def _decoded(image: dict[str, Any] | None) -> Any:
    return (
        None
        if image is None
        else decode_item(msgspec.json.decode(msgspec.json.encode(image)), "image")
    )


def test_dynamodb_local_streams_one_record_per_write_in_order(pipeline: Pipeline) -> None:
    history = pipeline.history
    written = pipeline.write()
    assert written == history_writes(history) == pipeline.table.writes
    wanted = [r for r, i in zip(history.records, history.intents, strict=True) if i != "redelivery"]

    records = pipeline.stream_records()

    assert len(records) == len(wanted)
    for got, want in zip(records, wanted, strict=True):
        assert got["eventName"] == want["eventName"]
        assert got["dynamodb"]["Keys"] == want["dynamodb"]["Keys"]
        for image in ("NewImage", "OldImage"):
            assert _decoded(got["dynamodb"].get(image)) == _decoded(want["dynamodb"].get(image))
        assert got["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert numbers == sorted(set(numbers))  # strictly increasing in one shard
    assert len({r["eventID"] for r in records}) == len(records)


def test_reader_shapes_events_as_lambda_does_and_rereads_from_a_sequence_number(
    pipeline: Pipeline,
) -> None:
    pipeline.write()
    reader = pipeline.reader
    first = reader.next_event()
    assert first is not None
    assert len(first["Records"]) == STREAM_BATCH
    for record in first["Records"]:
        assert record["eventSourceARN"] == pipeline.table.stream_arn
        assert record["awsRegion"] == pipeline.aws.region
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
        assert record["eventSource"] == "aws:dynamodb"
    middle = first["Records"][10]["dynamodb"]["SequenceNumber"]
    reader.retry_from(middle)  # as the ESM does after a batch item failure
    again = reader.next_event()
    assert again is not None
    assert [r["eventID"] for r in again["Records"][:15]] == [
        r["eventID"] for r in first["Records"][10:]
    ]
    reader.ack()
    rest = [r for event in reader.events() for r in event["Records"]]
    everything = pipeline.stream_records()
    assert [r["eventID"] for r in again["Records"] + rest] == [
        r["eventID"] for r in everything[10:]
    ]
    assert reader.next_event() is None  # read up: an empty GetRecords
