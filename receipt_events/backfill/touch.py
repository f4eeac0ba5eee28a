"""The exact mode (``backfill --touch``): touch each item the log lacks, instead of appending it.

A touch sets one attribute of ours (:data:`receipt_events.changes.TOUCH_ATTRIBUTE`) with a
condition that the item still exists, so the item's own stream record carries its current
state, in its own order with every other write of it: no barrier, no timing assumption. It
costs one write per item and wakes every other consumer of the stream.
"""

from __future__ import annotations

from typing import Any

from receipt_events.changes import TOUCH_ATTRIBUTE
from receipt_events.events import ReceiptEvent


class Toucher:
    def __init__(self, client: Any, table: str, stamp: str) -> None:
        self._client = client
        self._table = table
        self._stamp = stamp

    def touch(self, event: ReceiptEvent) -> bool:
        """Touch the event's item; False when the item is gone (its REMOVE is in the stream)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"PK": {"S": event.pk}, "SK": {"S": event.sk}},
                UpdateExpression="SET #touch = :stamp",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#touch": TOUCH_ATTRIBUTE},
                ExpressionAttributeValues={":stamp": {"S": self._stamp}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True
