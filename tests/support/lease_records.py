"""A lease's stored record, read (and tampered with) directly on either backend.

Tests check what a lease backend stored without going through the code under test: the item
in the DynamoDB lease table (``lock_id`` key, consistent read), or the JSON file FileLeases
keeps under ``<root>/.locks/``. Both read as the same :class:`LeaseRecord`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from receipt_chroma.lease import FileLeases

THIEF = "thief:0:stolen"  # the owner :meth:`LeaseRecords.steal` writes
FAR_FUTURE = 4_000_000_000.0  # the expiry it writes: long after any test


@dataclass(frozen=True)
class LeaseRecord:
    """A lease's stored record: owner (None once released), fencing token, expiry (epoch s)."""

    owner: str | None
    token: int
    expires_at: float


class LeaseRecords(Protocol):
    """Where one backend keeps its lease records."""

    def raw(self, name: str) -> dict[str, Any] | None:
        """The record exactly as stored, or None if there is none."""
        ...

    def record(self, name: str) -> LeaseRecord | None:
        """The record decoded (its numbers checked to be stored as numbers), or None."""
        ...

    def steal(self, name: str) -> str:
        """Make :data:`THIEF` the holder behind the owner's back (next token); returns it."""
        ...


class DynamoDBLeaseRecords:
    """Lease items in a DynamoDB table, read with a client of the test's own."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def raw(self, name: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.client.get_item(
            TableName=self.table, Key={"lock_id": {"S": name}}, ConsistentRead=True
        ).get("Item")
        return item

    def record(self, name: str) -> LeaseRecord | None:
        item = self.raw(name)
        if item is None:
            return None
        for attribute in ("token", "expires_at"):
            assert set(item[attribute]) == {"N"}, f"{attribute} is not a number: {item}"
        return LeaseRecord(
            owner=item["owner"]["S"] if "owner" in item else None,
            token=int(item["token"]["N"]),
            expires_at=float(item["expires_at"]["N"]),
        )

    def steal(self, name: str) -> str:
        self.client.update_item(
            TableName=self.table,
            Key={"lock_id": {"S": name}},
            UpdateExpression="SET #o = :thief, expires_at = :far ADD #t :one",
            ExpressionAttributeNames={"#o": "owner", "#t": "token"},
            ExpressionAttributeValues={
                ":thief": {"S": THIEF},
                ":far": {"N": str(FAR_FUTURE)},
                ":one": {"N": "1"},
            },
        )
        return THIEF


class FileLeaseRecords:
    """Lease states in the JSON files FileLeases keeps under ``<root>/.locks/``."""

    def __init__(self, root: Path) -> None:
        self.leases = FileLeases(root)  # for its file naming and its guard only

    def raw(self, name: str) -> dict[str, Any] | None:
        path = self.leases.state_path(name)
        if not path.exists():
            return None
        state: dict[str, Any] = json.loads(path.read_text())
        return state

    def record(self, name: str) -> LeaseRecord | None:
        state = self.raw(name)
        if state is None:
            return None
        assert isinstance(state["token"], int), state
        assert isinstance(state["expires_at"], int | float), state
        return LeaseRecord(
            owner=state.get("owner"),
            token=state["token"],
            expires_at=float(state["expires_at"]),
        )

    def steal(self, name: str) -> str:
        leases = self.leases
        with leases._guard(name):
            state = leases._read(name) or {"lock_id": name, "token": 0}
            leases._write(
                name,
                {**state, "owner": THIEF, "expires_at": FAR_FUTURE, "token": state["token"] + 1},
            )
        return THIEF
