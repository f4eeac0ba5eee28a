"""The DynamoDB store's items: where the counter, events, their parts and dedup keys live.

One table (``pk`` string, ``sk`` number) holds three namespaces, ``log``, ``parked`` and
``progress``, each with its own positions:

* ``<ns>#head`` / 0: the counter, ``last`` = the namespace's last position;
* ``<ns>#pos#<position // BUCKET_SIZE>`` / position: an event (``oid``, ``ver``, ``topic``,
  ``hash``, the first part of ``state``, ``parts`` when it has more than one);
* ``<ns>#part#<position>`` / 1.. : the rest of a state over :data:`PART_BYTES`;
* ``<ns>#id#<originator_id>`` / version: the dedup key, with ``position`` and ``hash``.

Events are read by position with strongly consistent queries on one bucket at a time (no
index: a GSI is eventually consistent, so a reader could see n+1 before n). A state larger
than an item (400 KB) is split into parts written in the same transaction, so nothing is
refused for its size below :data:`MAX_STORED_BYTES`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent

BUCKET_SIZE = 1000  # positions per partition key: a page of reads spans at most two
PART_BYTES = 300_000  # state bytes per item, well under DynamoDB's 400 KB item limit
MAX_ACTIONS = 100  # TransactWriteItems: at most 100 actions ...
MAX_TRANSACTION_BYTES = 3_500_000  # ... and 4 MB; keep room for keys and attribute names
MAX_STORED_BYTES = MAX_TRANSACTION_BYTES - 100_000  # one stored event must fit one transaction
ITEM_OVERHEAD = 200  # key and attribute names, numbers: a generous estimate per item

Item = dict[str, Any]  # a low-level (typed) DynamoDB item


class TooLarge(ValueError):
    """A stored event larger than one transaction can carry."""


def counter_key(namespace: str) -> Item:
    return {"pk": {"S": f"{namespace}#head"}, "sk": {"N": "0"}}


def bucket_key(namespace: str, position: int) -> str:
    return f"{namespace}#pos#{position // BUCKET_SIZE}"


def dedup_key(namespace: str, originator_id: str, version: int) -> Item:
    return {"pk": {"S": f"{namespace}#id#{originator_id}"}, "sk": {"N": str(version)}}


def parts_key(namespace: str, position: int) -> str:
    return f"{namespace}#part#{position}"


@dataclass(frozen=True)
class Pending:
    """An event waiting to be written: its index in the caller's batch, content and hash."""

    index: int
    stored: StoredEvent
    content_hash: str

    @property
    def parts(self) -> list[bytes]:
        state = self.stored.state
        return [state[i : i + PART_BYTES] for i in range(0, len(state), PART_BYTES)] or [b""]

    @property
    def actions(self) -> int:
        return 1 + len(self.parts)  # the dedup item, the event item, its extra parts

    @property
    def size(self) -> int:
        return len(self.stored.state) + self.actions * ITEM_OVERHEAD + 2 * len(self.key_text)

    @property
    def key_text(self) -> str:
        return str(self.stored.originator_id)


def transactions(pending: Sequence[Pending]) -> Iterator[list[Pending]]:
    """Split events, in order, into chunks that each fit one transaction with the counter."""
    chunk: list[Pending] = []
    actions = 1  # the counter
    size = 0
    for entry in pending:
        if entry.size > MAX_STORED_BYTES:
            raise TooLarge(
                f"{entry.key_text} is {len(entry.stored.state)} bytes stored, over the "
                f"{MAX_STORED_BYTES} one DynamoDB transaction can carry"
            )
        if chunk and (
            actions + entry.actions > MAX_ACTIONS or size + entry.size > MAX_TRANSACTION_BYTES
        ):
            yield chunk
            chunk, actions, size = [], 1, 0
        chunk.append(entry)
        actions += entry.actions
        size += entry.size
    if chunk:
        yield chunk


def write_actions(namespace: str, table: str, entry: Pending, position: int) -> list[Item]:
    """The transaction's puts for one event at ``position``: dedup key first, then the event."""
    stored = entry.stored
    parts = entry.parts
    dedup = {
        **dedup_key(namespace, entry.key_text, stored.originator_version),
        "position": {"N": str(position)},
        "hash": {"S": entry.content_hash},
    }
    event: Item = {
        "pk": {"S": bucket_key(namespace, position)},
        "sk": {"N": str(position)},
        "oid": {"S": entry.key_text},
        "ver": {"N": str(stored.originator_version)},
        "topic": {"S": stored.topic},
        "hash": {"S": entry.content_hash},
        "state": {"B": parts[0]},
    }
    if len(parts) > 1:
        event["parts"] = {"N": str(len(parts))}
    actions: list[Item] = [
        {
            "Put": {
                "TableName": table,
                "Item": dedup,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {"Put": {"TableName": table, "Item": event}},
    ]
    actions.extend(
        {
            "Put": {
                "TableName": table,
                "Item": {
                    "pk": {"S": parts_key(namespace, position)},
                    "sk": {"N": str(number)},
                    "state": {"B": part},
                },
            }
        }
        for number, part in enumerate(parts[1:], start=1)
    )
    return actions


def counter_action(namespace: str, table: str, head: int, new_head: int) -> Item:
    """Advance the counter from ``head`` to ``new_head``, only if it is still at ``head``."""
    condition = "#last = :old" if head else "attribute_not_exists(#last) OR #last = :old"
    return {
        "Update": {
            "TableName": table,
            "Key": counter_key(namespace),
            "UpdateExpression": "SET #last = :new",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#last": "last"},
            "ExpressionAttributeValues": {
                ":old": {"N": str(head)},
                ":new": {"N": str(new_head)},
            },
        }
    }
