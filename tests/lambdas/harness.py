"""Playing AWS around the two Lambda handlers, over HTTP only (DynamoDB Local, moto S3/SQS).

* :class:`ReceiptTable`: a receipts table (``PK``/``SK``, stream NEW_AND_OLD_IMAGES) on
  DynamoDB Local, written as the app writes it: each generated stream record of a synthetic
  history becomes the write that made it (INSERT/MODIFY → PutItem of the NewImage, REMOVE →
  DeleteItem of the Keys), so DynamoDB produces its own stream. Generated redeliveries are not
  writes and are left out.
* :func:`upload_deltas`: each run's two embedding deltas written with the project's delta writer
  and uploaded to S3 where the run item points, in directory layout or as ``delta.tar.gz``.
* :class:`StreamReader`: Lambda's event source mapping: DescribeStream → shards → TRIM_HORIZON
  iterator → GetRecords (raw JSON, taken from an after-call hook, as the ESM passes it on)
  reshaped into the Lambda event; on ``batchItemFailures`` it re-reads from the failed
  SequenceNumber (AT_SEQUENCE_NUMBER), as the ESM does.
* :class:`WakeQueue`: the SQS queue between the two functions, read as the SQS event source
  mapping reads it (receive → Lambda event → delete what the function did not report failed).
* :class:`TcpProxy`: a TCP proxy in front of PostgreSQL that a test shuts and reopens, for a
  real outage of the event store.
* :func:`expected_projection`: what the Chroma collections must hold, computed from the
  table's current items and the runs' delta contents by the rules of SPEC §7, without the
  event log or the projection code.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from synthetic.deltas import Layout, run_records, write_run_deltas
from synthetic.history import History, RunContent

Handler = Callable[[dict[str, Any], Any], Any]

# -- the receipts table -------------------------------------------------------------------------


def create_receipt_table(client: Any, name: str) -> str:
    """A PK/SK table with a NEW_AND_OLD_IMAGES stream; returns the stream ARN."""
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    arn: str = client.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    return arn


def _wire_to_boto(value: Any) -> Any:
    """A typed attribute value as JSON (binary base64) → as the low-level client takes it."""
    (tag, inner), *_ = value.items()
    if tag == "B":
        return {"B": base64.b64decode(inner)}
    if tag == "BS":
        return {"BS": [base64.b64decode(member) for member in inner]}
    if tag == "L":
        return {"L": [_wire_to_boto(member) for member in inner]}
    if tag == "M":
        return {"M": {name: _wire_to_boto(member) for name, member in inner.items()}}
    return {tag: inner}


def _item(image: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _wire_to_boto(value) for name, value in image.items()}


@dataclass
class ReceiptTable:
    """The app's table on DynamoDB Local, written record by record from a synthetic history."""

    client: Any
    name: str
    stream_arn: str
    writes: int = 0
    # (PK, SK) → index (in the history) of the last write that touched the item
    last_write: dict[tuple[str, str], int] = field(default_factory=dict)
    # (PK, SK) → index of the write that created the item (its INSERT)
    inserted: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def create(cls, client: Any, name: str = "receipts") -> ReceiptTable:
        return cls(client, name, create_receipt_table(client, name))

    def write(self, history: History, start: int = 0, stop: int | None = None) -> int:
        """Replay ``history.records[start:stop]`` as the app's writes; returns writes made."""
        made = 0
        stop = len(history.records) if stop is None else stop
        for index in range(start, stop):
            if history.intents[index] == "redelivery":
                continue  # not a write: DynamoDB makes its own stream
            record = history.records[index]
            body = record["dynamodb"]
            key = (body["Keys"]["PK"]["S"], body["Keys"]["SK"]["S"])
            if record["eventName"] == "REMOVE":
                self.client.delete_item(TableName=self.name, Key=_item(body["Keys"]))
            else:
                self.client.put_item(TableName=self.name, Item=_item(body["NewImage"]))
                if record["eventName"] == "INSERT":
                    self.inserted[key] = index
            self.last_write[key] = index
            made += 1
        self.writes += made
        return made

    def items(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every item now in the table, as Python values (strings, Decimals, ...)."""
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for page in self.client.get_paginator("scan").paginate(
            TableName=self.name, ConsistentRead=True
        ):
            for raw in page["Items"]:
                item = {name: deserializer.deserialize(value) for name, value in raw.items()}
                found[(item["PK"], item["SK"])] = item
        return found


def final_keys(history: History) -> set[tuple[str, str]]:
    """The (PK, SK) of every item the table holds once the whole history is written."""
    keys: set[tuple[str, str]] = set()
    for record, intent in zip(history.records, history.intents, strict=True):
        if intent == "redelivery":
            continue
        key = (record["dynamodb"]["Keys"]["PK"]["S"], record["dynamodb"]["Keys"]["SK"]["S"])
        if record["eventName"] == "REMOVE":
            keys.discard(key)
        else:
            keys.add(key)
    return keys


def history_writes(history: History) -> int:
    """How many writes replaying the history makes (every record but the redeliveries)."""
    return sum(intent != "redelivery" for intent in history.intents)


# -- embedding deltas in S3 ------------------------------------------------------------------------


def split_s3(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def write_local_deltas(
    runs: list[RunContent], root: Path, *, dimension: int, layout_of: Callable[[int], Layout]
) -> dict[str, Path]:
    """Each run's deltas under ``root/<run_id>``; returns run_id → that directory."""
    written: dict[str, Path] = {}
    for index, run in enumerate(runs):
        local = msgspec.structs.replace(
            run, lines_delta=f"{run.run_id}/lines", words_delta=f"{run.run_id}/words"
        )
        if not (root / run.run_id).exists():
            write_run_deltas(local, root, dimension=dimension, layout=layout_of(index))
        written[run.run_id] = root / run.run_id
    return written


def upload_deltas(s3: Any, runs: list[RunContent], local: Mapping[str, Path]) -> list[str]:
    """Upload each run's local deltas to where its run item points (``s3://...``)."""
    keys: list[str] = []
    for run in runs:
        for collection, url in (("lines", run.lines_delta), ("words", run.words_delta)):
            bucket, prefix = split_s3(url)
            source = local[run.run_id] / collection
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                key = f"{prefix}/{path.relative_to(source).as_posix()}"
                s3.upload_file(str(path), bucket, key)
                keys.append(key)
    return keys


# -- the DynamoDB stream event source mapping ---------------------------------------------------


@dataclass
class LambdaContext:
    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


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


# -- SQS between the functions ----------------------------------------------------------------


class WakeQueue:
    """A standard SQS queue on moto, read as Lambda's SQS event source mapping reads it."""

    def __init__(self, sqs: Any, name: str, *, region: str) -> None:
        self.sqs = sqs
        self.region = region
        self.url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
        self.arn: str = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def send_wakeup(self, head: int) -> str:
        message_id: str = self.sqs.send_message(
            QueueUrl=self.url, MessageBody=json.dumps({"head": head})
        )["MessageId"]
        return message_id

    def receive_event(
        self, max_messages: int = 10, *, visibility: int | None = None
    ) -> dict[str, Any]:
        """Receive up to ``max_messages`` and shape them as the SQS Lambda event."""
        extra = {"VisibilityTimeout": visibility} if visibility is not None else {}
        messages = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max_messages,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
            **extra,
        ).get("Messages", [])
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": m.get("MessageAttributes", {}),
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
        }

    def receive_all(
        self, batch: int = 10, *, visibility: int | None = None
    ) -> list[dict[str, Any]]:
        """Events of every visible message, ``batch`` at a time."""
        events = []
        while (event := self.receive_event(batch, visibility=visibility))["Records"]:
            events.append(event)
        return events

    def settle(self, event: dict[str, Any], response: Any) -> list[str]:
        """Delete the messages the function handled (all but its batchItemFailures), as the
        ESM does; returns the ids left in the queue. A raised error leaves them all."""
        if isinstance(response, Exception) or not isinstance(response, dict):
            return [r["messageId"] for r in event["Records"]]
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures") or []}
        for record in event["Records"]:
            if record["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=record["receiptHandle"])
        return [r["messageId"] for r in event["Records"] if r["messageId"] in failed]

    def visible(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])


# -- a PostgreSQL outage ----------------------------------------------------------------------


class ProxiedConnection:
    """One client connection through a :class:`TcpProxy` and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; :meth:`shut` drops every connection and stops
    listening (clients get "connection refused"), :meth:`reopen` listens on the same port.

    Subclasses watch the bytes: :meth:`_relay` may refuse to pass some on, which cuts the
    connection (:meth:`_cut`); :meth:`_connection` makes the per-connection state they keep."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._connections: list[ProxiedConnection] = []
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._listener is not None

    def open(self) -> int:
        assert self._listener is None, "already open"
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self.port

    reopen = open

    def _connection(self, client: socket.socket, upstream: socket.socket) -> ProxiedConnection:
        return ProxiedConnection(client, upstream)

    def _relay(self, connection: ProxiedConnection, data: bytes, to_server: bool) -> bool:
        """Whether to pass ``data`` on; False cuts the connection instead."""
        return True

    def _cut(self, connection: ProxiedConnection) -> None:
        self._drop(connection)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # shut
            if self._listener is not listener:  # shut meanwhile: refuse
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            connection = self._connection(client, upstream)
            with self._lock:
                if self._listener is not listener:  # shut meanwhile
                    self._close(connection)
                    return
                self._connections.append(connection)
                self.accepted += 1
            for to_server in (True, False):
                threading.Thread(
                    target=self._pump, args=(connection, to_server), daemon=True
                ).start()

    def _pump(self, connection: ProxiedConnection, to_server: bool) -> None:
        source, sink = (
            (connection.client, connection.upstream)
            if to_server
            else (connection.upstream, connection.client)
        )
        try:
            while data := source.recv(65536):
                if not self._relay(connection, data, to_server):
                    self._cut(connection)
                    return
                sink.sendall(data)
        except OSError:
            pass
        self._drop(connection)

    def _drop(self, connection: ProxiedConnection) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)
        self._close(connection)

    @staticmethod
    def _close(connection: ProxiedConnection) -> None:
        for sock in (connection.client, connection.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def shut(self) -> None:
        """The outage: stop listening and cut every open connection."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            listener.close()
        for connection in connections:
            self._close(connection)

    def close(self) -> None:
        self.shut()


# -- what the projection must hold (SPEC §7), from the table and the deltas ---------------------

PLACE_KEYS = (
    "merchant_name",
    "canonical_merchant_name",
    "merchant_category",
    "address",
    "phone_number",
    "place_id",
)
LABEL_KEYS = (
    "valid_labels",
    "invalid_labels",
    "label_status",
    "label_proposed_by",
    "label_validated_at",
)


@dataclass(frozen=True)
class Expected:
    document: str
    metadata: dict[str, Any]
    embedding: bytes
    run_id: str


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def place_fields(item: Mapping[str, Any]) -> dict[str, str | None]:
    fields = {name: _text(item.get(name)) for name in PLACE_KEYS}
    if str(item["SK"]).endswith("#PLACE") and "formatted_address" in item:
        fields["address"] = _text(item["formatted_address"])
    return fields


def _instant(timestamp: Any) -> datetime:
    if not isinstance(timestamp, str) or not timestamp:
        return datetime.min.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(timestamp)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


LabelItem = tuple[str, dict[str, Any], int]  # label name, its item, index of its last write


def label_metadata(labels: list[LabelItem]) -> dict[str, Any]:
    """SPEC §7's label keys from a word's label items."""
    if not labels:
        return {}

    def newest(chosen: list[LabelItem]) -> dict[str, Any]:
        return max(chosen, key=lambda label: (_instant(label[1].get("timestamp_added")), label[2]))[
            1
        ]

    def status(item: Mapping[str, Any]) -> str:
        return _text(item.get("validation_status")) or "NONE"

    valid = [label for label in labels if status(label[1]) == "VALID"]
    invalid = [label for label in labels if status(label[1]) == "INVALID"]
    pending = [label for label in labels if status(label[1]) == "PENDING"]
    metadata: dict[str, Any] = {}
    if valid:
        metadata["valid_labels"] = sorted({name for name, _, _ in valid})
        metadata["label_status"] = "validated"
    elif pending:
        metadata["label_status"] = "auto_suggested"
    else:
        metadata["label_status"] = "unvalidated"
    if invalid:
        metadata["invalid_labels"] = sorted({name for name, _, _ in invalid})
    if pending and (proposer := _text(newest(pending).get("label_proposed_by"))) is not None:
        metadata["label_proposed_by"] = proposer
    if valid and (validated := _text(newest(valid).get("timestamp_added"))) is not None:
        metadata["label_validated_at"] = validated
    return metadata


def expected_projection(
    table: ReceiptTable, runs: list[RunContent], *, dimension: int
) -> dict[str, dict[str, Expected]]:
    """Every record each collection must hold, given the table's items now.

    A record is there if its line/word item is in the table and some run of its (still
    present) receipt embedded it; its document, embedding and delta metadata come from the
    latest such run, its place keys from the receipt's place item (the one written last), its
    label keys from the word's label items.
    """
    items = table.items()
    runs_in_table = {
        str(item["run_id"]): key for key, item in items.items() if "#COMPACTION_RUN#" in key[1]
    }
    places: dict[tuple[str, int], tuple[int, dict[str, str | None]]] = {}
    labels: dict[tuple[str, int, int, int], list[LabelItem]] = {}
    for (pk, sk), item in items.items():
        if not pk.startswith("IMAGE#") or not sk.startswith("RECEIPT#"):
            continue
        parts = sk.split("#")
        receipt = (pk.removeprefix("IMAGE#"), int(parts[1]))
        if sk.endswith(("#PLACE", "#METADATA")) and len(parts) == 3:
            order = table.last_write[(pk, sk)]
            if receipt not in places or places[receipt][0] < order:
                places[receipt] = (order, place_fields(item))
        elif "#LABEL#" in sk and len(parts) == 8:
            word = (*receipt, int(parts[3]), int(parts[5]))
            labels.setdefault(word, []).append((parts[7], item, table.last_write[(pk, sk)]))
    expected: dict[str, dict[str, Expected]] = {"lines": {}, "words": {}}
    ordered = sorted(
        (run for run in runs if run.run_id in runs_in_table),
        key=lambda run: table.inserted[runs_in_table[run.run_id]],
    )
    for run in ordered:  # later runs overwrite earlier ones
        receipt = (run.image_id, run.receipt_id)
        place = places.get(receipt, (0, {}))[1]
        for collection, records in run_records(run, dimension).items():
            for record in records:
                key = ("IMAGE#" + run.image_id, record.id.split("#", 2)[2])
                if key not in items:
                    continue  # removed since
                metadata = {
                    k: v
                    for k, v in record.metadata.items()
                    if k not in PLACE_KEYS and k not in LABEL_KEYS
                }
                metadata.update({k: v for k, v in place.items() if v is not None})
                if collection == "words":
                    parts = key[1].split("#")  # RECEIPT#r#LINE#l#WORD#w
                    word = (*receipt, int(parts[3]), int(parts[5]))
                    metadata.update(label_metadata(labels.get(word, [])))
                expected[collection][record.id] = Expected(
                    record.document or "", metadata, record.embedding, run.run_id
                )
    return expected


# -- reading what the handlers print ------------------------------------------------------------


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line printed, each of which must be one JSON object."""
    lines = []
    for line in text.splitlines():
        if not line.strip():
            continue
        document = json.loads(line)  # raises on a line that is not JSON
        assert isinstance(document, dict), line
        lines.append(document)
    return lines


def emf_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "_aws" in line]
