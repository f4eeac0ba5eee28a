"""DynamoDB backend (serverless): positions from a counter advanced inside each transaction.

Each appended chunk is one ``TransactWriteItems``: the namespace's counter moves from the head
it was read at to head + n (condition: still at that head), and each event puts its dedup item
(condition: not there yet) and its event item at its position. So positions are gapless and
handed out in commit order, and the database enforces dedup across processes. A cancelled
transaction says why, action by action: the counter moved (someone appended: read the head
again and retry; with ``expected_head``, :class:`HeadMoved`), a dedup item exists (that event
is a duplicate: drop it, retry the rest), or a conflict/throttle (back off, retry). A batch
larger than one transaction is written in chunks, in order; a failure between chunks leaves the
first ones stored, which a redelivery finds as duplicates.

Readers query one position bucket at a time with ``ConsistentRead``. A query may see part of
a transaction that is committing, so a read never returns past a missing position: it waits
for the gap to fill (positions are gapless, so a gap below a committed position is always
about to be readable). Layout: :mod:`receipt_events.store.dynamodb_items`.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import Notification, OperationalError, StoredEvent

from receipt_events import faults
from receipt_events.errors import MissingResource
from receipt_events.store.dynamodb_items import (
    BUCKET_SIZE,
    Item,
    Pending,
    bucket_key,
    counter_action,
    counter_key,
    dedup_key,
    parts_key,
    transactions,
    write_actions,
)
from receipt_events.store.recorders import DedupKey, HeadMoved, Logged, Recorders
from receipt_events.store.url import DynamoDBTarget

NAMESPACES = ("log", "parked", "progress")
MAX_ATTEMPTS = 12  # per chunk, for conflicts and throttling (the counter moving is not counted)
BACKOFF_SECONDS = 0.025
BACKOFF_CAP_SECONDS = 1.0
GAP_WAIT_SECONDS = 10.0  # how long a reader waits for a committed position to become readable
BATCH_GET = 100  # BatchGetItem's limit
_RETRY_CODES = {
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
}


def create_fix(table: str) -> str:
    return (
        f"run `receipt-events store create-table --store dynamodb://{table}` "
        f"(or deploy deploy/template.yaml with EventStoreUrl=dynamodb://{table})"
    )


class DynamoDBRecorder:
    """One namespace (log, parked or progress) of the store's table."""

    def __init__(
        self,
        client: Any,
        table: str,
        namespace: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.namespace = namespace
        self._sleep = sleep
        self._rng = rng or random.Random()

    # -- writing -----------------------------------------------------------------------------

    def insert_new(
        self,
        stored_events: Sequence[StoredEvent],
        hashes: Sequence[str],
        *,
        expected_head: int | None = None,
    ) -> list[int | None]:
        positions: list[int | None] = [None] * len(stored_events)
        pending = [
            Pending(index, stored, content_hash)
            for index, (stored, content_hash) in enumerate(zip(stored_events, hashes, strict=True))
        ]
        chunks = list(transactions(pending))  # a batch with an entry too large stores nothing
        expected = expected_head
        for chunk in chunks:
            head = self._write_chunk(chunk, positions, expected)
            if expected_head is not None:
                # A decision taken at ``expected_head`` holds for the whole batch: each later
                # chunk lands only right after the one before (else HeadMoved, with the
                # earlier chunks stored, for the caller to decide again from).
                expected = head
        return positions

    def _write_chunk(
        self, chunk: list[Pending], positions: list[int | None], expected_head: int | None
    ) -> int:
        """Write one chunk; return the head after it."""
        attempt = 0
        head = self._head()
        while chunk:
            if expected_head is not None and head != expected_head:
                raise HeadMoved(expected_head, head)
            actions = [counter_action(self.namespace, self.table, head, head + len(chunk))]
            dedup_at: list[int] = []  # the action index of each event's dedup put
            for offset, entry in enumerate(chunk):
                dedup_at.append(len(actions))
                actions.extend(write_actions(self.namespace, self.table, entry, head + 1 + offset))
            faults.point("append.before_commit")
            reasons = self._transact(actions, self._token(head, chunk, attempt))
            if reasons is None:
                for offset, entry in enumerate(chunk):
                    positions[entry.index] = head + 1 + offset
                return head + len(chunk)
            codes = [reason.get("Code", "None") for reason in reasons]
            duplicates = {
                offset
                for offset, index in enumerate(dedup_at)
                if codes[index] == "ConditionalCheckFailed"
            }
            unexpected = {code for code in codes if code not in {"None", "ConditionalCheckFailed"}}
            if duplicates:
                chunk = [entry for offset, entry in enumerate(chunk) if offset not in duplicates]
            if unexpected - _RETRY_CODES:
                raise OperationalError(
                    f"dynamodb://{self.table}: append cancelled: {_describe(reasons)}"
                )
            if unexpected:  # a conflict with another transaction, or throttling
                attempt += 1
                if attempt >= MAX_ATTEMPTS:
                    raise OperationalError(
                        f"dynamodb://{self.table}: append gave up after {attempt} attempts: "
                        f"{_describe(reasons)}"
                    )
                self._back_off(attempt)
            head = self._head()  # the counter may have moved, or duplicates were dropped
        return head

    def _transact(self, actions: list[Item], token: str) -> list[dict[str, Any]] | None:
        """Run the transaction; None when it committed, else its cancellation reasons."""
        try:
            self.client.transact_write_items(TransactItems=actions, ClientRequestToken=token)
        except self.client.exceptions.TransactionCanceledException as error:
            reasons: list[dict[str, Any]] = error.response.get("CancellationReasons") or []
            if len(reasons) != len(actions):
                raise OperationalError(
                    f"dynamodb://{self.table}: append cancelled without reasons: {error}"
                ) from error
            return reasons
        except self.client.exceptions.TransactionInProgressException as error:
            raise OperationalError(f"dynamodb://{self.table}: {error}") from error
        except Exception as error:
            raise self._failure(error) from error
        return None

    def _token(self, head: int, chunk: list[Pending], attempt: int) -> str:
        """Idempotency for botocore's own retries of this exact request (ours differ).

        A nonce per call: two writers sending the same chunk at the same head must not share
        a token, or DynamoDB would answer the second as a replay of the first (both told
        they stored the events). Not part of anything the digest sees.
        """
        digest = hashlib.sha256(
            f"{self.table}|{self.namespace}|{head}|{attempt}|{uuid.uuid4().hex}".encode()
        )
        for entry in chunk:  # the same token with other parameters would be refused
            version = entry.stored.originator_version
            digest.update(f"|{entry.key_text}#{version}#{entry.content_hash}".encode())
        return digest.hexdigest()[:36]

    def _back_off(self, attempt: int) -> None:
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1))
        self._sleep(self._rng.uniform(0, ceiling))

    # -- reading -----------------------------------------------------------------------------

    def _head(self) -> int:
        try:
            response = self.client.get_item(
                TableName=self.table, Key=counter_key(self.namespace), ConsistentRead=True
            )
        except Exception as error:
            raise self._failure(error) from error
        item = response.get("Item")
        return int(item["last"]["N"]) if item and "last" in item else 0

    def max_notification_id(self) -> int | None:
        return self._head() or None

    def logged(self, keys: Sequence[DedupKey]) -> dict[DedupKey, Logged]:
        found: dict[DedupKey, Logged] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_GET):
            wanted = [
                dedup_key(self.namespace, originator_id, version)
                for originator_id, version in unique[start : start + BATCH_GET]
            ]
            for item in self._batch_get(wanted):
                originator_id = item["pk"]["S"].split("#id#", 1)[1]
                key = (originator_id, int(item["sk"]["N"]))
                found[key] = Logged(int(item["position"]["N"]), item["hash"]["S"])
        return found

    def _batch_get(self, keys: list[Item]) -> list[Item]:
        items: list[Item] = []
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        attempt = 0
        while request:
            try:
                response = self.client.batch_get_item(RequestItems=request)
            except Exception as error:
                raise self._failure(error) from error
            items.extend(response.get("Responses", {}).get(self.table, []))
            request = response.get("UnprocessedKeys") or {}
            if request:
                attempt += 1
                self._back_off(attempt)
        return items

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        first = (start or 0) + (0 if inclusive_of_start and start else 1)
        deadline = time.monotonic() + GAP_WAIT_SECONDS
        while True:
            notifications, gap = self._read_from(first, limit, stop)
            if gap is None:
                break
            if time.monotonic() > deadline:
                raise OperationalError(
                    f"dynamodb://{self.table}: position {gap} of {self.namespace} is committed "
                    f"but was not readable for {GAP_WAIT_SECONDS:.0f} s"
                )
            self._sleep(0.01)
        if topics:
            notifications = [n for n in notifications if n.topic in topics]
        return notifications

    def _read_from(
        self, first: int, limit: int, stop: int | None
    ) -> tuple[list[Notification], int | None]:
        """Events from ``first`` on, contiguous; and the first missing position that must
        exist (a later one was seen, or the counter is past it), else None."""
        notifications: list[Notification] = []
        position = first
        while len(notifications) < limit and (stop is None or position <= stop):
            last_in_bucket = (position // BUCKET_SIZE + 1) * BUCKET_SIZE - 1
            upper = last_in_bucket if stop is None else min(stop, last_in_bucket)
            items = self._query(position, upper, limit - len(notifications))
            for item in items:
                at = int(item["sk"]["N"])
                if at != position:
                    return notifications, position  # a later position is readable: wait
                notifications.append(self._notification(item))
                position += 1
            if position <= upper and len(notifications) < limit:
                # The bucket ran out before ``upper``: the log ends here, unless the counter
                # says a position here is committed (and so about to be readable).
                return notifications, position if self._head() >= position else None
        return notifications, None

    def _query(self, low: int, high: int, limit: int) -> list[Item]:
        items: list[Item] = []
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": bucket_key(self.namespace, low)},
                ":low": {"N": str(low)},
                ":high": {"N": str(high)},
            },
            "ConsistentRead": True,
        }
        while len(items) < limit:
            try:
                response = self.client.query(**arguments, Limit=limit - len(items))
            except Exception as error:
                raise self._failure(error) from error
            items.extend(response.get("Items", []))
            after = response.get("LastEvaluatedKey")
            if not after:
                break
            arguments["ExclusiveStartKey"] = after
        return items

    def _notification(self, item: Item) -> Notification:
        state: bytes = item["state"]["B"]
        position = int(item["sk"]["N"])
        parts = int(item["parts"]["N"]) if "parts" in item else 1
        if parts > 1:
            state += b"".join(self._rest_of(position, parts))
        return Notification(
            id=position,
            originator_id=item["oid"]["S"],
            originator_version=int(item["ver"]["N"]),
            topic=item["topic"]["S"],
            state=state,
        )

    def _rest_of(self, position: int, parts: int) -> list[bytes]:
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": parts_key(self.namespace, position)}},
            "ConsistentRead": True,
        }
        found: list[Item] = []
        while True:  # a query page stops at 1 MB: a state of a few MB takes several
            try:
                response = self.client.query(**arguments)
            except Exception as error:
                raise self._failure(error) from error
            found.extend(response.get("Items", []))
            after = response.get("LastEvaluatedKey")
            if not after:
                break
            arguments["ExclusiveStartKey"] = after
        if len(found) != parts - 1:
            raise OperationalError(
                f"dynamodb://{self.table}: event {position} of {self.namespace} has "
                f"{len(found) + 1} of its {parts} parts"
            )
        found.sort(key=lambda item: int(item["sk"]["N"]))
        return [item["state"]["B"] for item in found]

    # -- errors ------------------------------------------------------------------------------

    def _failure(self, error: Exception) -> Exception:
        """A store error naming the table: a missing table names the command that makes it."""
        if isinstance(error, self.client.exceptions.ResourceNotFoundException):
            return MissingResource(f"the event store table {self.table!r}", create_fix(self.table))
        if isinstance(error, OperationalError | MissingResource):
            return error
        return OperationalError(f"dynamodb://{self.table}: {type(error).__name__}: {error}")


def _describe(reasons: list[dict[str, Any]]) -> str:
    codes = [f"{reason.get('Code')}: {reason.get('Message', '')}".strip(": ") for reason in reasons]
    return "; ".join(code for code in dict.fromkeys(codes) if not code.startswith("None"))


def dynamodb_client(target: DynamoDBTarget) -> Any:
    """A DynamoDB client from the standard AWS variables (region, endpoint, credentials)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": target.max_attempts},
        connect_timeout=target.connect_timeout,
        read_timeout=target.read_timeout,
    )
    return boto3.client("dynamodb", config=config)


def open_dynamodb(target: DynamoDBTarget, client: Any | None = None) -> tuple[Any, Recorders]:
    """The three namespaces of ``target``'s table; a missing table is :class:`MissingResource`."""
    client = client or dynamodb_client(target)
    log, parked, progress = (
        DynamoDBRecorder(client, target.table, namespace) for namespace in NAMESPACES
    )
    log.max_notification_id()  # fails early, naming the fix, when the table is missing
    return client, Recorders(log, parked, progress)
