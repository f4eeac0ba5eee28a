"""The simulated table and the NEW_AND_OLD_IMAGES stream records its changes make.

Every writer goes through :class:`Stream`, so each MODIFY and REMOVE carries the item's true
previous image and every record has the same shape, size accounting and ARN as AWS gives.
"""

from __future__ import annotations

import random
from typing import Any, Final

from receipt_events.attributes import Item, encode_item, encode_value
from synthetic.history.config import HistoryConfig
from synthetic.history.ids import event_id
from synthetic.history.jsonl import ENCODER
from synthetic.history.model import RunContent

ACCOUNT_ID: Final = "123456789012"
STREAM_LABEL: Final = "2026-01-01T00:00:00.000"

# One emitted change: (time, order of emission, the stream record, its intent).
Op = tuple[int, int, dict[str, Any], str]


class ItemImage:
    """One item's state: the Python attributes, their typed encoding, their stream size."""

    __slots__ = ("encoded", "item", "size")

    def __init__(self, item: Item, previous: ItemImage | None = None) -> None:
        self.item = item
        if previous is None:
            self.encoded = encode_item(item)
        else:  # a MODIFY: attributes it did not touch keep their encoding (same objects)
            before, encoded = previous.item, previous.encoded
            self.encoded = {
                name: encoded[name]
                if name in before and before[name] is value
                else encode_value(value)
                for name, value in item.items()
            }
        # Stream SizeBytes counts names and values, not the JSON type tags: about 3/5 of it.
        self.size = len(ENCODER.encode(self.encoded)) * 3 // 5


class Stream:
    """The table every simulated writer changes, and the stream records those changes make."""

    def __init__(self, config: HistoryConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.arn = (
            f"arn:aws:dynamodb:{config.region}:{ACCOUNT_ID}:table/{config.table}"
            f"/stream/{STREAM_LABEL}"
        )
        self.table: dict[tuple[str, str], ItemImage] = {}
        self.ops: list[Op] = []
        self.runs: dict[int, RunContent] = {}  # by op order
        self.completions: list[int] = []  # times runs completed: when the compactor locks

    def put(self, t: int, pk: str, sk: str, item: Item, intent: str) -> int:
        """PutItem/UpdateItem: INSERT when the item is new, else MODIFY with its old image."""
        old = self.table.get((pk, sk))
        new = ItemImage(item, old)
        self.table[(pk, sk)] = new
        return self._emit(t, "INSERT" if old is None else "MODIFY", pk, sk, new, old, intent)

    def delete(self, t: int, pk: str, sk: str, intent: str) -> None:
        old = self.table.pop((pk, sk))
        self._emit(t, "REMOVE", pk, sk, None, old, intent)

    def _emit(
        self,
        t: int,
        name: str,
        pk: str,
        sk: str,
        new: ItemImage | None,
        old: ItemImage | None,
        intent: str,
    ) -> int:
        size = len(pk) + len(sk) + 8
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": t,
            "Keys": {"PK": {"S": pk}, "SK": {"S": sk}},
        }
        if new is not None:
            body["NewImage"] = new.encoded
            size += new.size
        if old is not None:
            body["OldImage"] = old.encoded
            size += old.size
        body["SequenceNumber"] = ""  # assigned in stream order, once the timeline is merged
        body["SizeBytes"] = size
        body["StreamViewType"] = "NEW_AND_OLD_IMAGES"
        record = {
            "eventID": event_id(self.rng),
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.config.region,
            "dynamodb": body,
            "eventSourceARN": self.arn,
        }
        order = len(self.ops)
        self.ops.append((t, order, record, intent))
        return order
