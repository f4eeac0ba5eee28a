"""End to end over HTTP: the app's writes → DynamoDB Local stream → stream processor → event
log (PostgreSQL, or a DynamoDB store table) → SQS wake-ups → projector → S3 snapshot → pulled,
verified, and checked record by record against what the table says."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

import lambdas.stream_processor
from projections.restore import restore
from projections.verify import verify
from receipt_chroma.deltas import DeltaSources
from receipt_chroma.snapshots import open_snapshot_store
from receipt_events.events import EmbeddingsPublished
from synthetic.history import History
from tests.lambdas.checks import (
    assert_matches_table,
    assert_stored_once,
    dump_snapshot,
    log_ids,
    metadata_of,
)
from tests.support.expected_projection import Expected, place_fields
from tests.support.lambda_context import LambdaContext
from tests.support.lambda_pipeline import STORES, Pipeline
from tests.support.log_lines import emf_lines, json_lines

_deserializer = TypeDeserializer()


def _image(typed: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in typed.items()}


def _keys(record: dict[str, Any]) -> tuple[str, str]:
    keys = record["dynamodb"]["Keys"]
    return keys["PK"]["S"], keys["SK"]["S"]


def _word_id(pk: str, label_sk: str) -> str:
    return f"{pk}#{'#'.join(label_sk.split('#')[:6])}"


def _chosen_records(
    history: History, items: dict[tuple[str, str], dict[str, Any]], expected: dict[str, Any]
) -> dict[str, Any]:
    """The records this test checks by name, found from the history and the table."""
    words: dict[str, Expected] = expected["words"]
    lines: dict[str, Expected] = expected["lines"]
    chosen: dict[str, Any] = {}
    # a word with a VALID label
    for (pk, sk), item in sorted(items.items()):
        valid = "#LABEL#" in sk and item.get("validation_status") == "VALID"
        if valid and _word_id(pk, sk) in words:
            chosen["valid"] = (_word_id(pk, sk), sk.rsplit("#", 1)[1], item)
            break
    # a word whose label went VALID → INVALID (and is INVALID now)
    for record in history.records:
        pk, sk = _keys(record)
        if record["eventName"] != "MODIFY" or "#LABEL#" not in sk:
            continue
        old, new = record["dynamodb"]["OldImage"], record["dynamodb"]["NewImage"]
        if old["validation_status"]["S"] == "VALID" and new["validation_status"]["S"] == "INVALID":
            now = items.get((pk, sk))
            if now and now["validation_status"] == "INVALID" and _word_id(pk, sk) in words:
                chosen["invalidated"] = (_word_id(pk, sk), sk.rsplit("#", 1)[1])
                break
    # a line of a receipt whose place changed (a relevant field, still changed at the end)
    inserted: dict[tuple[str, str], dict[str, Any]] = {}
    for record, intent in zip(history.records, history.intents, strict=True):
        if intent == "place_insert":
            inserted.setdefault(_keys(record), _image(record["dynamodb"]["NewImage"]))
        if intent != "place_modify" or _keys(record) not in items or "place" in chosen:
            continue
        key = _keys(record)
        before, after = place_fields(inserted[key]), place_fields(items[key])
        changed = sorted(name for name in after if after[name] != before[name])
        receipt = f"{key[0]}#{key[1].rsplit('#', 1)[0]}#LINE#"
        receipt_lines = sorted(line for line in lines if line.startswith(receipt))
        if changed and receipt_lines:
            field = changed[0]
            chosen["place"] = (receipt_lines[0], field, before[field], after[field])
    # the records a removed receipt had
    for record, intent in zip(history.records, history.intents, strict=True):
        if intent == "receipt_remove":
            pk, sk = _keys(record)
            image_id, receipt_id = pk.removeprefix("IMAGE#"), int(sk.split("#")[1])
            runs = [r for r in history.runs if (r.image_id, r.receipt_id) == (image_id, receipt_id)]
            if runs:
                prefix = f"{pk}#{sk}#"
                chosen["removed"] = (prefix, runs)
                break
    return chosen


@pytest.mark.parametrize("pipeline", STORES, indirect=True)
def test_pipeline_end_to_end_over_http(
    pipeline: Pipeline, tmp_path: Path, other_store: Any
) -> None:
    pipeline.env(RECEIPT_EVENTS_PUBLISH_EVERY_EVENTS="25")  # several publishes in one run
    pipeline.write()

    deliveries = pipeline.deliver()

    assert deliveries
    assert all(d.response == {"batchItemFailures": []} for d in deliveries)
    store = pipeline.store()
    head = store.head()
    assert head > 0
    # one wake-up per batch that appended, carrying the head after that batch
    positions = {
        recorded.event.source.event_id: recorded.position for recorded in store.iter_events()
    }
    expected_heads = sorted(
        max(positions[r["eventID"]] for r in d.event["Records"] if r["eventID"] in positions)
        for d in deliveries
        if any(r["eventID"] in positions for r in d.event["Records"])
    )
    wakeups = pipeline.queue.receive_all(10)
    heads = sorted(json.loads(r["body"])["head"] for event in wakeups for r in event["Records"])
    assert heads == expected_heads
    assert heads[-1] == head

    for event in wakeups:
        assert pipeline.project(event) == {"batchItemFailures": []}
    assert pipeline.queue.visible() == 0  # every wake-up handled and deleted

    snapshots = open_snapshot_store(pipeline.snapshots_url)
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.position == head
    manifests = snapshots.manifests()
    assert len(manifests) >= 3  # every 25 events, then the end
    assert [m.position for m in manifests] == sorted({m.position for m in manifests})
    for parent, child in itertools.pairwise(manifests):
        assert child.parent == parent.key
    pulled = tmp_path / "pulled"
    restored = restore(snapshots, pulled)
    assert restored.position == head
    assert restored.digest == pointer.digest
    result = verify(store, pulled, DeltaSources(pipeline.deltas_url))
    assert result.ok, result.differences
    assert result.position == head

    records = dump_snapshot(pulled)
    expected = assert_matches_table(records, pipeline)
    chosen = _chosen_records(pipeline.history, pipeline.table.items(), expected)
    assert set(chosen) == {"valid", "invalidated", "place", "removed"}, "history lacks a case"

    word, label, item = chosen["valid"]
    meta = metadata_of(records, "words", word)
    assert label in meta["valid_labels"]
    assert meta["label_status"] == "validated"
    assert meta["label_validated_at"] >= item["timestamp_added"]

    word, label = chosen["invalidated"]
    meta = metadata_of(records, "words", word)
    assert label in meta["invalid_labels"]
    assert label not in meta.get("valid_labels", [])

    line, field, before, after = chosen["place"]
    meta = metadata_of(records, "lines", line)
    assert before != after
    assert meta.get(field) == after

    prefix, runs = chosen["removed"]
    assert any(run.lines or run.words for run in runs)
    assert not [r.id for found in records.values() for r in found if r.id.startswith(prefix)]

    # the runs' deltas were read from S3 in both layouts, where the run items pointed
    published = [r.event for r in store.iter_events() if isinstance(r.event, EmbeddingsPublished)]
    assert published
    assert all(
        e.lines_delta.startswith(f"s3://{pipeline.bucket}/deltas/")
        and e.words_delta.startswith(f"s3://{pipeline.bucket}/deltas/")
        for e in published
    )
    keys = [
        item["Key"]
        for page in pipeline.aws.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=pipeline.bucket, Prefix="deltas/")
        for item in page.get("Contents", [])
    ]
    assert any(key.endswith("/delta.tar.gz") for key in keys)
    assert any(key.endswith("/chroma.sqlite3") for key in keys)

    # the log: every event once, as a clean ingest of the whole stream gives
    ids = log_ids(store)
    assert len(ids) == len(set(ids))
    assert_stored_once(store, other_store(pipeline.stream_records()))


def test_the_same_batch_delivered_twice_appends_nothing_new(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], other_store: Any
) -> None:
    pipeline.write()
    store = pipeline.store()
    handler = lambdas.stream_processor.handler
    # the first batch that holds events (the first ones are images and OCR: all skipped)
    for event in pipeline.reader.events():
        capsys.readouterr()
        assert handler(event, LambdaContext("stream_processor")) == {"batchItemFailures": []}
        [metrics] = emf_lines(json_lines(capsys.readouterr().out))
        if metrics["Appended"]:
            break
    else:
        pytest.fail("no batch of the stream appended anything")
    head, ids = store.head(), log_ids(store)
    appended = metrics["Appended"]
    assert pipeline.queue.visible() == 1

    response = handler(copy.deepcopy(event), LambdaContext("stream_processor"))

    assert response == {"batchItemFailures": []}
    [again] = emf_lines(json_lines(capsys.readouterr().out))
    assert (again["Appended"], again["Duplicates"]) == (0, appended)
    assert store.head() == head
    assert log_ids(store) == ids
    assert pipeline.queue.visible() == 1  # nothing new, no wake-up

    # an overlapping redelivery (the ESM retrying from the middle of the batch), then the rest
    pipeline.reader.retry_from(
        event["Records"][len(event["Records"]) // 2]["dynamodb"]["SequenceNumber"]
    )
    assert all(d.response == {"batchItemFailures": []} for d in pipeline.deliver())
    assert_stored_once(store, other_store(pipeline.stream_records()))
