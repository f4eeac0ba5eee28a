"""The app's receipts table on DynamoDB Local, written as the app writes it.

Each generated stream record of a synthetic history becomes the write that made it
(INSERT/MODIFY → PutItem of the NewImage, REMOVE → DeleteItem of the Keys), so DynamoDB
produces its own stream. Generated redeliveries are not writes and are left out.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from synthetic.history import History


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
        stop = len(history.records) if stop is None else stop
        return self.write_records(history, range(start, stop))

    def write_records(self, history: History, indices: Iterable[int]) -> int:
        """Replay the history's records at ``indices`` (in that order) as the app's writes."""
        made = 0
        for index in indices:
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
