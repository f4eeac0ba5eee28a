"""The DynamoDB store's table: created once (CLI or SAM template), checked on open.

Key schema ``pk`` (string, hash) and ``sk`` (number, range), on-demand billing, no index
(reads by position must be strongly consistent: :mod:`receipt_events.store.dynamodb_items`).
"""

from __future__ import annotations

import contextlib
from typing import Any

KEY_SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
ATTRIBUTES = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "N"},
]


class NotAStoreTable(ValueError):
    """A table of that name exists with another key schema."""


def create_store_table(client: Any, table: str) -> bool:
    """Create the event store table if missing (on-demand) and wait until it is ACTIVE.

    Returns whether this call created it; an existing table with the right key schema is
    left as it is (so the command is idempotent), one with another raises
    :class:`NotAStoreTable`.
    """
    created = False
    try:
        description = client.describe_table(TableName=table)["Table"]
    except client.exceptions.ResourceNotFoundException:
        with contextlib.suppress(client.exceptions.ResourceInUseException):  # made meanwhile
            client.create_table(
                TableName=table,
                AttributeDefinitions=ATTRIBUTES,
                KeySchema=KEY_SCHEMA,
                BillingMode="PAY_PER_REQUEST",
            )
            created = True
    else:
        if description.get("KeySchema") != KEY_SCHEMA:
            raise NotAStoreTable(
                f"table {table!r} exists but is not an event store table: its key schema is "
                f"{description.get('KeySchema')!r}, expected {KEY_SCHEMA!r}; pick another name"
            )
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    return created
