"""The handlers' contract at its edges: poison records, events that are not wake-ups, and
what they print (JSON log lines, one CloudWatch EMF line per invocation)."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

import lambdas.projector
import lambdas.stream_processor
from synthetic.history import EVENT_INTENTS, generate_history
from tests.lambdas.checks import log_ids
from tests.support.lambda_context import LambdaContext
from tests.support.lambda_pipeline import Pipeline, history_config
from tests.support.log_lines import emf_lines, json_lines

STREAM_METRICS = {
    "Records",
    "Appended",
    "Duplicates",
    "Parked",
    "Skipped",
    "Unchanged",
    "WakeupFailures",
    "Duration",
}
PROJECTOR_METRICS = {"Applied", "Publishes", "Lag", "ReusedCache", "Duration"}


def _label_insert(record: dict[str, Any]) -> bool:
    return record["eventName"] == "INSERT" and "#LABEL#" in record["dynamodb"]["Keys"]["SK"]["S"]


def test_a_poison_record_is_parked_not_reported_and_the_rest_appended(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], other_store: Any
) -> None:
    pipeline.write()
    for event in pipeline.reader.events():  # a batch with a record that makes an event
        if any(_label_insert(record) for record in event["Records"]):
            break
    else:
        pytest.fail("no label INSERT in the stream")
    poisoned = copy.deepcopy(event)
    index = next(i for i, record in enumerate(poisoned["Records"]) if _label_insert(record))
    bad = poisoned["Records"][index]
    bad["dynamodb"]["NewImage"]["validation_status"] = {"Q": "VALID"}  # no such type tag
    handler = lambdas.stream_processor.handler
    capsys.readouterr()

    response = handler(poisoned, LambdaContext("stream_processor"))

    assert response == {"batchItemFailures": []}  # never blocks the shard
    [metrics] = emf_lines(json_lines(capsys.readouterr().out))
    assert metrics["Parked"] == 1
    store = pipeline.store()
    [parked] = store.parked_records()
    assert (parked.event_id, parked.sequence_number) == (
        bad["eventID"],
        bad["dynamodb"]["SequenceNumber"],
    )
    assert "validation_status" in parked.error
    assert "'Q'" in parked.error
    others = [r for i, r in enumerate(event["Records"]) if i != index]
    reference = other_store(others)
    assert log_ids(store) == log_ids(reference)
    assert metrics["Appended"] == len(log_ids(reference)) > 0
    assert bad["eventID"] not in log_ids(store)

    # the same poisoned batch again (a retry): nothing new, parked once
    assert handler(copy.deepcopy(poisoned), LambdaContext("stream_processor")) == response
    [again] = emf_lines(json_lines(capsys.readouterr().out))
    assert (again["Appended"], again["Parked"]) == (0, 0)
    assert again["Duplicates"] == metrics["Appended"] + 1
    assert len(store.parked_records()) == 1


SQS_RECORD = {
    "messageId": "m-1",
    "receiptHandle": "h",
    "body": '{"head": 3}',
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:wake",
    "awsRegion": "eu-west-1",
}
STREAM_RECORD = {
    "eventID": "e-1",
    "eventName": "INSERT",
    "eventSource": "aws:dynamodb",
    "awsRegion": "eu-west-1",
    "dynamodb": {"Keys": {"PK": {"S": "IMAGE#x"}, "SK": {"S": "IMAGE"}}, "SequenceNumber": "1"},
}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"Records": [STREAM_RECORD]}, "Records that are not SQS messages"),
        ({"Records": [SQS_RECORD, STREAM_RECORD]}, "Records that are not SQS messages"),
        ({"hello": "world"}, "not a projector wake-up"),
        ({"to": -1}, "not a projector wake-up"),
        ({"to": "5"}, "not a projector wake-up"),
        ({"to": True}, "not a projector wake-up"),
        ({"Records": []}, "not a projector wake-up"),
        ([SQS_RECORD], "not a projector wake-up"),
    ],
    ids=["stream", "mixed", "unknown", "negative-to", "string-to", "bool-to", "empty", "list"],
)
def test_the_projector_refuses_what_is_not_a_wake_up(
    event: Any, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no configuration at all: the event is refused before anything else is looked at
    for name in ("RECEIPT_EVENTS_SNAPSHOTS", "RECEIPT_EVENTS_LEASE_TABLE", "RECEIPT_EVENTS_STORE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=message):
        lambdas.projector.handler(event, LambdaContext("projector"))


@pytest.mark.parametrize("event", [{"hello": 1}, {"Records": "no"}, [STREAM_RECORD]])
def test_the_stream_processor_refuses_what_is_not_a_stream_event(event: Any) -> None:
    with pytest.raises(ValueError, match=r'expected an object \{"Records": \[\.\.\.\]\}'):
        lambdas.stream_processor.handler(event, LambdaContext("stream_processor"))


def _check_emf(document: dict[str, Any], function: str, names: set[str]) -> None:
    """A valid EMF document: one directive, the Function dimension, every metric a number."""
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "ReceiptEvents"
    assert directive["Dimensions"] == [["Function"]]
    assert document["Function"] == function
    assert {metric["Name"] for metric in directive["Metrics"]} == names
    for metric in directive["Metrics"]:
        value = document[metric["Name"]]
        assert isinstance(value, int | float), metric
        assert not isinstance(value, bool), metric
        assert value >= 0
        expected_unit = "Milliseconds" if metric["Name"] == "Duration" else "Count"
        assert metric["Unit"] == expected_unit
    assert abs(document["_aws"]["Timestamp"] / 1000 - time.time()) < 600


def _check_logs(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    logs = [line for line in lines if "_aws" not in line]
    for line in logs:
        assert line["level"] in {"INFO", "ERROR"}
        assert isinstance(line["message"], str)
        assert line["message"]
        assert isinstance(line["timestamp"], float | int)
        assert line["request_id"]
    return logs


def test_handlers_print_json_logs_and_one_emf_line_per_invocation(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.write()
    capsys.readouterr()
    deliveries = pipeline.deliver()
    lines = json_lines(capsys.readouterr().out)  # every printed line is one JSON object

    metrics = emf_lines(lines)
    assert len(metrics) == len(deliveries)
    for document in metrics:
        _check_emf(document, "stream_processor", STREAM_METRICS)
    logs = _check_logs(lines)
    assert [line["message"] for line in logs] == ["batch ingested"] * len(deliveries)
    head = pipeline.store().head()
    assert sum(d["Records"] for d in metrics) == len(pipeline.stream_records())
    assert sum(d["Appended"] for d in metrics) == head
    assert [line["head"] for line in logs][-1] == head

    for event in pipeline.queue.receive_all():
        assert pipeline.project(event) == {"batchItemFailures": []}
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    response = pipeline.project(scheduled)
    assert response["status"] == "ok"
    assert response["published"] is False
    assert response["lag"] == 0
    lines = json_lines(capsys.readouterr().out)

    metrics = emf_lines(lines)
    assert len(metrics) >= 2
    for document in metrics:
        _check_emf(document, "projector", PROJECTOR_METRICS)
    logs = _check_logs(lines)
    assert {line["message"] for line in logs} == {"projector run done"}
    assert len(logs) == len(metrics)
    assert [line["trigger"] for line in logs][-1] == "schedule"
    assert sum(d["Applied"] for d in metrics) == head
    assert sum(d["Publishes"] for d in metrics) >= 1
    assert metrics[-1]["Lag"] == 0
    assert metrics[-1]["ReusedCache"] == 1


def test_a_wake_up_that_cannot_be_sent_does_not_fail_the_batch(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = pipeline.queue.url.rsplit("/", 1)[0] + "/no-such-queue"
    pipeline.env(RECEIPT_EVENTS_WAKE_QUEUE=missing)  # SQS answers: no such queue
    pipeline.write()
    capsys.readouterr()

    deliveries = pipeline.deliver()

    assert all(d.response == {"batchItemFailures": []} for d in deliveries)
    lines = json_lines(capsys.readouterr().out)
    logs = [line for line in lines if "_aws" not in line]
    failed = [line for line in logs if line["wake_error"] is not None]
    assert failed
    assert all(line["appended"] > 0 for line in failed)
    assert all(
        "NonExistentQueue" in line["wake_error"] or "QueueDoesNotExist" in line["wake_error"]
        for line in failed
    )
    assert sum(m["WakeupFailures"] for m in emf_lines(lines)) == len(failed)
    assert pipeline.store().head() == sum(line["appended"] for line in logs)  # all stored


def test_the_stream_processor_does_not_fall_back_to_a_local_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RECEIPT_EVENTS_STORE", raising=False)
    monkeypatch.delenv("RECEIPT_EVENTS_WAKE_QUEUE", raising=False)
    monkeypatch.chdir(tmp_path)  # a writable working directory, as under `sam local`
    history = generate_history(history_config())
    event = {"Records": history.records[:100]}
    assert any(intent in EVENT_INTENTS for intent in history.intents[:100])

    try:
        response = lambdas.stream_processor.handler(event, LambdaContext("stream_processor"))
    except Exception:
        response = None  # refusing the batch outright is fine too

    assert response != {"batchItemFailures": []}
    assert not (tmp_path / ".receipt-events").exists()
