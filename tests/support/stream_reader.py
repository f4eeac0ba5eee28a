"""Lambda's DynamoDB-stream event source mapping (ESM), over the wire.

DescribeStream → shards → TRIM_HORIZON iterator → GetRecords (the raw JSON, taken from an
after-call hook, as the ESM passes it on) reshaped into the Lambda event; on
``batchItemFailures`` it re-reads from the failed SequenceNumber (AT_SEQUENCE_NUMBER), as the
ESM does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.lambda_context import Handler, LambdaContext


@dataclass
class Delivery:
    """One handler call by the event source mapping: the event and what the handler said."""

    event: dict[str, Any]
    response: Any

    @property
    def sequence_numbers(self) -> list[str]:
        return [r["dynamodb"]["SequenceNumber"] for r in self.event["Records"]]

    @property
    def failures(self) -> list[str]:
        if not isinstance(self.response, dict):
            return []
        return [f["itemIdentifier"] for f in self.response.get("batchItemFailures") or []]


class StreamReader:
    """GetRecords on the wire, shard by shard, reshaped into Lambda DynamoDB-stream events.

    Keeps its place in each shard between calls (like the ESM's checkpoint), so after more
    writes a later :meth:`next_event` or :meth:`deliver` carries on where it stopped.
    """

    def __init__(self, streams: Any, stream_arn: str, *, region: str, limit: int = 100) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.region = region
        self.limit = limit
        self._raw: list[bytes] = []
        self._iterators: dict[str, str] = {}  # shard → iterator of the next unread batch
        self._closed: set[str] = set()  # shards read to their end
        self._pending: tuple[str, str] | None = None  # (shard, next iterator) of the last read
        streams.meta.events.register("after-call.dynamodbstreams.GetRecords", self._keep_raw)

    def _keep_raw(self, http_response: Any, **_: Any) -> None:
        self._raw.append(http_response.content)

    def shards(self) -> list[str]:
        """Every shard of the stream, parents before children."""
        shards: list[dict[str, Any]] = []
        start: dict[str, str] = {}
        while True:
            description = self.streams.describe_stream(StreamArn=self.stream_arn, **start)[
                "StreamDescription"
            ]
            shards += description["Shards"]
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            start = {"ExclusiveStartShardId": last}
        known = {shard["ShardId"] for shard in shards}
        ordered: list[str] = []
        pending = list(shards)
        while pending:
            ready = [
                s
                for s in pending
                if s.get("ParentShardId") not in known or s["ParentShardId"] in ordered
            ]
            assert ready, f"shard lineage has a cycle: {pending}"
            for shard in ready:
                ordered.append(shard["ShardId"])
                pending.remove(shard)
        return ordered

    def _iterator(self, shard: str, kind: str, sequence: str | None = None) -> str:
        extra = {"SequenceNumber": sequence} if sequence is not None else {}
        iterator: str = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard, ShardIteratorType=kind, **extra
        )["ShardIterator"]
        return iterator

    def read(self, iterator: str, limit: int | None = None) -> tuple[dict[str, Any], str | None]:
        """One GetRecords: the Lambda event of its records and the next iterator."""
        self._raw.clear()
        response = self.streams.get_records(ShardIterator=iterator, Limit=limit or self.limit)
        (body,) = self._raw
        records = json.loads(body)["Records"]
        for record in records:  # what the event source mapping adds on the way to Lambda
            record["eventSourceARN"] = self.stream_arn
            record["awsRegion"] = self.region
            stamp = record["dynamodb"].get("ApproximateCreationDateTime")
            if stamp is not None:
                record["dynamodb"]["ApproximateCreationDateTime"] = int(stamp)
        return {"Records": records}, response.get("NextShardIterator")

    def next_event(self) -> dict[str, Any] | None:
        """The next batch (not yet acknowledged), or None when every shard is read up."""
        for shard in self.shards():
            if shard in self._closed:
                continue
            iterator = self._iterators.get(shard) or self._iterator(shard, "TRIM_HORIZON")
            self._iterators[shard] = iterator
            event, following = self.read(iterator)
            if event["Records"]:
                self._pending = (shard, following or "")
                return event
            if following:
                self._iterators[shard] = following  # caught up: keep the place
            else:
                self._closed.add(shard)  # a closed shard, read to its end
        self._pending = None
        return None

    def ack(self) -> None:
        """The last batch was handled: move past it."""
        assert self._pending is not None, "no batch to acknowledge"
        shard, following = self._pending
        if following:
            self._iterators[shard] = following
        else:
            self._closed.add(shard)
        self._pending = None

    def retry_from(self, sequence_number: str) -> None:
        """Re-read the current shard from a record of the last batch (AT_SEQUENCE_NUMBER)."""
        assert self._pending is not None, "no batch to retry"
        shard, _ = self._pending
        self._iterators[shard] = self._iterator(shard, "AT_SEQUENCE_NUMBER", sequence_number)
        self._pending = None

    def events(self) -> Iterator[dict[str, Any]]:
        """Every remaining batch, each acknowledged when the next is asked for."""
        while (event := self.next_event()) is not None:
            yield event
            self.ack()

    def deliver(
        self,
        handler: Handler,
        *,
        function_name: str = "stream_processor",
        max_attempts: int = 3,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> list[Delivery]:
        """Hand every remaining batch to ``handler`` as the ESM does, retrying failures.

        A reported failure makes the next batch start at that SequenceNumber (it must be one
        of the batch's, as Lambda requires; otherwise the whole batch is retried); a handler
        that raises gets the whole batch again. More than ``max_attempts`` failed deliveries
        of one batch in a row is an error (the real ESM would bisect or send it away).
        """
        deliveries: list[Delivery] = []
        failed_in_a_row = 0
        while (event := self.next_event()) is not None:
            try:
                response = handler(event, LambdaContext(function_name))
            except Exception as error:
                response = error
            delivery = Delivery(event, response)
            deliveries.append(delivery)
            if on_delivery is not None:
                on_delivery(delivery)
            if isinstance(response, Exception) or delivery.failures:
                failed_in_a_row += 1
                if failed_in_a_row >= max_attempts:
                    raise RuntimeError(
                        f"batch failed {failed_in_a_row} times in a row; last: {response!r}"
                    )
                numbers = delivery.sequence_numbers
                failures = [n for n in delivery.failures if n in numbers]
                if failures and not isinstance(response, Exception):
                    self.retry_from(min(failures, key=int))
                else:
                    self.retry_from(numbers[0])
                continue
            failed_in_a_row = 0
            self.ack()
        return deliveries
