"""The event store goes down for a batch (a real outage: the TCP path to PostgreSQL is cut and
refused): the batch is reported from its lowest SequenceNumber, the ESM redelivers from there,
and in the end every event is stored exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import lambdas.stream_processor
from tests.lambdas.checks import assert_stored_once, log_ids
from tests.support.lambda_context import LambdaContext
from tests.support.lambda_pipeline import Pipeline
from tests.support.log_lines import emf_lines, json_lines
from tests.support.postgres import POSTGRES_HOST, POSTGRES_PORT
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy((POSTGRES_HOST, POSTGRES_PORT))
    proxy.open()
    yield proxy
    proxy.close()


def _through(url: str, proxy: TcpProxy) -> str:
    direct = f"{POSTGRES_HOST}:{POSTGRES_PORT}"
    assert direct in url
    return url.replace(direct, f"127.0.0.1:{proxy.port}") + "&connect_timeout=1"


def test_store_down_for_one_batch_is_retried_from_its_lowest_sequence_number(
    pipeline: Pipeline,
    proxy: TcpProxy,
    capsys: pytest.CaptureFixture[str],
    other_store: Any,
) -> None:
    pipeline.env(RECEIPT_EVENTS_STORE=_through(pipeline.store_url, proxy))
    pipeline.write()
    reader = pipeline.reader
    handler = lambdas.stream_processor.handler
    direct = pipeline.store()  # the test's own view, not through the proxy

    # batches go in while the store is up, until one has appended events (a warm store)
    while True:
        event = reader.next_event()
        assert event is not None, "the stream ran out before any event was appended"
        assert handler(event, LambdaContext("stream_processor")) == {"batchItemFailures": []}
        reader.ack()
        if direct.head():
            break
    assert proxy.accepted >= 1
    before = log_ids(direct)
    capsys.readouterr()

    # the outage: open connections are cut, new ones refused
    failing = reader.next_event()
    assert failing is not None
    proxy.shut()
    lowest = min((r["dynamodb"]["SequenceNumber"] for r in failing["Records"]), key=int)
    response = handler(failing, LambdaContext("stream_processor"))

    assert response == {"batchItemFailures": [{"itemIdentifier": lowest}]}
    lines = json_lines(capsys.readouterr().out)
    [error] = [line for line in lines if line.get("level") == "ERROR"]
    assert error["message"] == "event store failed"
    assert error["retry_from"] == lowest
    [metrics] = emf_lines(lines)
    assert metrics["StoreFailures"] == 1
    assert metrics["RecordsNotStored"] == len(failing["Records"])
    assert log_ids(direct) == before  # nothing of the failed batch got in

    # the ESM retries from the reported record while the store is still down: the cold
    # container cannot even open the store, and says so the same way
    reader.retry_from(lowest)
    retried = reader.next_event()
    assert retried is not None
    assert retried["Records"][0]["dynamodb"]["SequenceNumber"] == lowest
    assert handler(retried, LambdaContext("stream_processor")) == response
    assert log_ids(direct) == before

    # the store is back: redelivery from that sequence number succeeds, and so does the rest
    proxy.reopen()
    reader.retry_from(lowest)
    deliveries = pipeline.deliver()
    assert deliveries[0].sequence_numbers[0] == lowest
    assert all(d.response == {"batchItemFailures": []} for d in deliveries)

    assert_stored_once(direct, other_store(pipeline.stream_records()))
