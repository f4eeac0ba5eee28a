"""Fenced leases in a DynamoDB table: one item per lease name, keyed by ``lock_id``.

For locks shared between machines (Lambdas, projectors). Every change is one conditional
``UpdateItem`` (see :func:`create_lease_table` for the table):

- acquire: ``attribute_not_exists(lock_id) OR attribute_not_exists(owner) OR expires_at < :now``
  sets a fresh owner and ``expires_at`` and adds 1 to ``token``;
- heartbeat: ``owner = :owner AND token = :token AND expires_at > :now`` moves ``expires_at``,
  so an old holder's heartbeat can never take the lock back from a new owner (the old
  system's heartbeat re-put the whole item with no owner check);
- release: ``owner = :owner AND token = :token`` removes the owner and sets ``expires_at`` to
  now. The item is never deleted, so the token survives and tokens strictly increase across
  all acquires ever. **Do not enable DynamoDB TTL on a lease table**: deleting an item would
  restart its token at 1.

Times are DynamoDB numbers written from exact decimal strings (``{"N": "1732806000.25"}``), so
expiry is compared as numbers (the old system compared ISO strings). :meth:`DynamoDBLease.check`
reads with ``ConsistentRead``.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from typing import Any

from receipt_chroma.lease.errors import LeaseBusy, LeaseTableMissing
from receipt_chroma.lease.interface import Clock
from receipt_chroma.lease.state import LEASE_KEY, HeldLease, _State
from receipt_chroma.lease.values import _check_name, _check_ttl, _number, new_owner_id


def _n(value: float) -> dict[str, str]:
    return {"N": _number(value)}


def create_lease_table(client: Any, table: str) -> bool:
    """Create the lease table (on-demand, hash key ``lock_id`` S) if missing; wait until ACTIVE.

    Returns whether this call created it. An existing table with another key schema raises
    ``ValueError``. Do not enable TTL on it.
    """
    created = False
    try:
        description = client.describe_table(TableName=table)["Table"]
    except client.exceptions.ResourceNotFoundException:
        # ResourceInUse: created concurrently by someone else
        with contextlib.suppress(client.exceptions.ResourceInUseException):
            client.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": LEASE_KEY, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": LEASE_KEY, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
            created = True
    else:
        key_schema = description.get("KeySchema")
        if key_schema != [{"AttributeName": LEASE_KEY, "KeyType": "HASH"}]:
            raise ValueError(
                f"table {table!r} exists but is not a lease table: its key schema is "
                f"{key_schema!r}, expected a hash key {LEASE_KEY!r} and no range key"
            )
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    return created


def _state_from_item(item: dict[str, Any] | None) -> _State | None:
    if not item:
        return None
    owner = item.get("owner", {}).get("S")
    token = int(item["token"]["N"]) if "token" in item else 0
    expires_at = float(item["expires_at"]["N"]) if "expires_at" in item else 0.0
    return _State(owner, token, expires_at)


class DynamoDBLeases:
    """Fenced leases in a DynamoDB table (see :func:`create_lease_table`).

    ``client`` is a low-level boto3 ``dynamodb`` client; by default one is made with
    ``boto3.client("dynamodb")`` (endpoint, region and credentials from the environment).
    """

    def __init__(self, table: str, *, client: Any = None, clock: Clock = time.time) -> None:
        if client is None:
            client = importlib.import_module("boto3").client("dynamodb")
        self.table = table
        self.client = client
        self.clock = clock

    def _key(self, name: str) -> dict[str, dict[str, str]]:
        return {LEASE_KEY: {"S": name}}

    def read(self, name: str) -> dict[str, Any] | None:
        """The lock's raw item (consistent read), or None: for checks and diagnostics."""
        try:
            response = self.client.get_item(
                TableName=self.table, Key=self._key(_check_name(name)), ConsistentRead=True
            )
        except self.client.exceptions.ResourceNotFoundException:
            raise LeaseTableMissing(self.table) from None
        item: dict[str, Any] | None = response.get("Item")
        return item

    def acquire(self, name: str, *, ttl: float) -> DynamoDBLease:
        name, ttl = _check_name(name), _check_ttl(ttl)
        owner = new_owner_id()
        now = self.clock()
        expires_at = now + ttl
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=self._key(name),
                UpdateExpression=(
                    "SET #owner = :owner, #expires = :expires, #acquired = :now, "
                    "#heartbeat = :now REMOVE #released ADD #token :one"
                ),
                ConditionExpression=(
                    "attribute_not_exists(#id) OR attribute_not_exists(#owner) OR #expires < :now"
                ),
                ExpressionAttributeNames={
                    "#id": LEASE_KEY,
                    "#owner": "owner",
                    "#expires": "expires_at",
                    "#acquired": "acquired_at",
                    "#heartbeat": "heartbeat_at",
                    "#released": "released_at",
                    "#token": "token",
                },
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":expires": _n(expires_at),
                    ":now": _n(now),
                    ":one": {"N": "1"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ResourceNotFoundException:
            raise LeaseTableMissing(self.table) from None
        except self.client.exceptions.ConditionalCheckFailedException as error:
            item = error.response.get("Item") or self.read(name)
            state = _state_from_item(item)
            raise LeaseBusy(
                name,
                holder=state.owner if state else None,
                token=state.token if state else None,
                expires_at=state.expires_at if state else None,
                now=now,
            ) from None
        token = int(response["Attributes"]["token"]["N"])
        return DynamoDBLease(self, name, owner=owner, token=token, expires_at=expires_at, ttl=ttl)


class DynamoDBLease(HeldLease["DynamoDBLeases"]):
    """A lease held in DynamoDB; made by :meth:`DynamoDBLeases.acquire`."""

    def _where(self) -> str:
        return f"table={self.leases.table!r}"

    _state_of = staticmethod(_state_from_item)

    def heartbeat(self) -> None:
        leases = self.leases
        now = leases.clock()
        expires_at = now + self.ttl
        try:
            leases.client.update_item(
                TableName=leases.table,
                Key=leases._key(self.name),
                UpdateExpression="SET #expires = :expires, #heartbeat = :now",
                ConditionExpression="#owner = :owner AND #token = :token AND #expires > :now",
                ExpressionAttributeNames={
                    "#owner": "owner",
                    "#token": "token",
                    "#expires": "expires_at",
                    "#heartbeat": "heartbeat_at",
                },
                ExpressionAttributeValues={
                    ":owner": {"S": self.owner},
                    ":token": _n(self.token),
                    ":expires": _n(expires_at),
                    ":now": _n(now),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except leases.client.exceptions.ConditionalCheckFailedException as error:
            raise self._lost(error.response.get("Item"), now) from None
        self.expires_at = expires_at

    def release(self) -> None:
        leases = self.leases
        now = leases.clock()
        # a failed condition: already released, or lost; nothing of ours to let go
        with contextlib.suppress(leases.client.exceptions.ConditionalCheckFailedException):
            leases.client.update_item(
                TableName=leases.table,
                Key=leases._key(self.name),
                UpdateExpression="SET #expires = :now, #released = :now REMOVE #owner",
                ConditionExpression="#owner = :owner AND #token = :token",
                ExpressionAttributeNames={
                    "#owner": "owner",
                    "#token": "token",
                    "#expires": "expires_at",
                    "#released": "released_at",
                },
                ExpressionAttributeValues={
                    ":owner": {"S": self.owner},
                    ":token": _n(self.token),
                    ":now": _n(now),
                },
            )
        self._released = True
