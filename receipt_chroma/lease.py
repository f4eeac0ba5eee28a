"""Fenced lease locks: one holder at a time, for a while, with a token that proves the order.

A lease is held by a fresh ``owner`` id until ``expires_at`` (epoch seconds) unless its holder
extends it with :meth:`Lease.heartbeat`. Every acquire of a name, ever, increments its fencing
``token``, so a writer can stamp its work with the token and a publisher can refuse work stamped
with a lower one: a holder that paused past its expiry and woke up after someone else took the
lock can be told apart from the new holder, whatever the clocks say.

Two backends, one behaviour (``tests/aws/test_lease.py`` runs the same suite on both):

* :class:`DynamoDBLocks`: one item per lock name in a table keyed by ``lock_id`` (see
  :func:`ensure_lock_table`). Every change is one conditional ``UpdateItem``:

  - acquire: ``attribute_not_exists(lock_id) OR attribute_not_exists(owner) OR expires_at < :now``
    sets a fresh owner and ``expires_at`` and adds 1 to ``token``;
  - heartbeat: ``owner = :owner AND token = :token AND expires_at > :now`` moves ``expires_at``,
    so an old holder's heartbeat can never take the lock back from a new owner (the old
    system's heartbeat re-put the whole item with no owner check);
  - release: ``owner = :owner AND token = :token`` removes the owner and sets ``expires_at`` to
    now. The item is never deleted, so the token survives and tokens strictly increase across
    all acquires ever. **Do not enable DynamoDB TTL on a lock table**: deleting an item would
    restart its token at 1.

  Times are DynamoDB numbers written from exact decimal strings (``{"N": "1732806000.25"}``), so
  expiry is compared as numbers (the old system compared ISO strings). :meth:`Lease.check`
  reads with ``ConsistentRead``.
* :class:`FileLocks`: the same state in a small JSON file per name under ``<root>/.locks/``,
  each change made under an exclusive ``flock`` on the name's guard file and written atomically
  (temporary file, fsync, rename). For local snapshot stores; processes on one machine only.

Time comes from an injectable ``clock`` (default :func:`time.time`), so expiry is testable
without sleeping. Each party compares against its own clock: clocks of the holders must agree
to well within a ttl, and the fencing token covers what they cannot.

:class:`LeaseKeeper` heartbeats a lease on a daemon thread while a long job runs, and its
:meth:`LeaseKeeper.check` raises :class:`LockLost` once a heartbeat has failed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

Clock = Callable[[], float]

LOCK_KEY = "lock_id"
LOCKS_DIR = ".locks"


# --------------------------------------------------------------------------- interface


class LockBusy(Exception):
    """The lock is held by someone else. Names the holder and when its lease expires."""

    def __init__(
        self,
        name: str,
        *,
        holder: str | None,
        token: int | None,
        expires_at: float | None,
        now: float,
    ) -> None:
        self.name = name
        self.holder = holder
        self.token = token
        self.expires_at = expires_at
        if holder is None or expires_at is None:
            message = f"lock {name!r} is busy (its holder changed while it was being read)"
        else:
            message = (
                f"lock {name!r} is held by {holder} (token {token}) until "
                f"{_iso(expires_at)} (expires_at={_number(expires_at)}, "
                f"{expires_at - now:.1f} s from now)"
            )
        super().__init__(message)


class LockLost(Exception):
    """This holder no longer holds the lock: it expired (and maybe was taken), was released,
    or its token moved on."""

    def __init__(self, name: str, *, owner: str, token: int, reason: str) -> None:
        self.name = name
        self.owner = owner
        self.token = token
        self.reason = reason
        super().__init__(f"lock {name!r} is no longer held by {owner} (token {token}): {reason}")


class Lease(Protocol):
    """A held lock. ``token`` is its fencing token; ``expires_at`` is epoch seconds."""

    name: str
    owner: str
    token: int
    expires_at: float
    ttl: float

    def heartbeat(self) -> None:
        """Extend to now + ttl. Succeeds only for the current owner with this token, before
        expiry; otherwise raises :class:`LockLost` and changes nothing."""
        ...

    def check(self) -> None:
        """Raise :class:`LockLost` unless this owner and token still hold the lock and it has
        not expired (a consistent read)."""
        ...

    def release(self) -> None:
        """Let go. Idempotent; releasing a lock already lost is not an error and changes
        nothing. The token is kept."""
        ...


class Locks(Protocol):
    def acquire(self, name: str, *, ttl: float) -> Lease:
        """Take the lock ``name`` for ``ttl`` seconds, or raise :class:`LockBusy`. Never waits."""
        ...


# --------------------------------------------------------------------------- helpers


def _number(value: float) -> str:
    """The exact decimal string of ``value`` (no exponent, no rounding): float(s) == value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


def _n(value: float) -> dict[str, str]:
    return {"N": _number(value)}


def _iso(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return f"epoch {epoch}"


def _check_ttl(ttl: float) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise TypeError(f"ttl must be a finite number of seconds, got {ttl!r}")
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, got {ttl!r}")
    return float(ttl)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a lock name must be a non-empty string, got {name!r}")
    return name


def new_owner_id() -> str:
    """A fresh owner id: ``host:pid:uuid4-hex``, unique per acquire, readable in messages."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


def _lost_reason(
    state: _State | None, *, owner: str, token: int, now: float, released_locally: bool
) -> str:
    if state is None:
        return "the lock record is gone"
    if state.token != token:
        if state.owner is None:
            return f"it was taken (token {state.token}) and released since"
        return f"it was taken by {state.owner} (token {state.token})"
    if state.owner is None:
        return "it was released" + (" by this holder" if released_locally else "")
    if state.owner != owner:
        return f"it is held by {state.owner} with the same token {token} (corrupt lock record)"
    return f"it expired at {_iso(state.expires_at)} (now {_iso(now)})"


class _State:
    """A lock record: who holds it (None once released), its token, when it expires."""

    __slots__ = ("expires_at", "owner", "token")

    def __init__(self, owner: str | None, token: int, expires_at: float) -> None:
        self.owner = owner
        self.token = token
        self.expires_at = expires_at

    def held_by(self, owner: str, token: int, now: float) -> bool:
        return self.owner == owner and self.token == token and now < self.expires_at


# --------------------------------------------------------------------------- DynamoDB


def ensure_lock_table(client: Any, table: str) -> None:
    """Create the lock table (on-demand, hash key ``lock_id`` S) if missing; wait until ACTIVE.

    An existing table with another key schema raises ``ValueError``. Do not enable TTL on it.
    """
    try:
        description = client.describe_table(TableName=table)["Table"]
    except client.exceptions.ResourceNotFoundException:
        # ResourceInUse: created concurrently by someone else
        with contextlib.suppress(client.exceptions.ResourceInUseException):
            client.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": LOCK_KEY, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": LOCK_KEY, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
    else:
        key_schema = description.get("KeySchema")
        if key_schema != [{"AttributeName": LOCK_KEY, "KeyType": "HASH"}]:
            raise ValueError(
                f"table {table!r} exists but is not a lock table: its key schema is "
                f"{key_schema!r}, expected a hash key {LOCK_KEY!r} and no range key"
            )
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )


def _state_from_item(item: dict[str, Any] | None) -> _State | None:
    if not item:
        return None
    owner = item.get("owner", {}).get("S")
    token = int(item["token"]["N"]) if "token" in item else 0
    expires_at = float(item["expires_at"]["N"]) if "expires_at" in item else 0.0
    return _State(owner, token, expires_at)


class DynamoDBLocks:
    """Fenced leases in a DynamoDB table (see :func:`ensure_lock_table`).

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
        return {LOCK_KEY: {"S": name}}

    def read(self, name: str) -> dict[str, Any] | None:
        """The lock's raw item (consistent read), or None: for checks and diagnostics."""
        response = self.client.get_item(
            TableName=self.table, Key=self._key(_check_name(name)), ConsistentRead=True
        )
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
                    "#id": LOCK_KEY,
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
        except self.client.exceptions.ConditionalCheckFailedException as error:
            item = error.response.get("Item") or self.read(name)
            state = _state_from_item(item)
            raise LockBusy(
                name,
                holder=state.owner if state else None,
                token=state.token if state else None,
                expires_at=state.expires_at if state else None,
                now=now,
            ) from None
        token = int(response["Attributes"]["token"]["N"])
        return DynamoDBLease(self, name, owner=owner, token=token, expires_at=expires_at, ttl=ttl)


class DynamoDBLease:
    """A lease held in DynamoDB; made by :meth:`DynamoDBLocks.acquire`."""

    def __init__(
        self,
        locks: DynamoDBLocks,
        name: str,
        *,
        owner: str,
        token: int,
        expires_at: float,
        ttl: float,
    ) -> None:
        self.locks = locks
        self.name = name
        self.owner = owner
        self.token = token
        self.expires_at = expires_at
        self.ttl = ttl
        self._released = False

    def __repr__(self) -> str:
        return (
            f"DynamoDBLease(table={self.locks.table!r}, name={self.name!r}, owner={self.owner!r}, "
            f"token={self.token}, expires_at={self.expires_at!r})"
        )

    def _lost(self, item: dict[str, Any] | None, now: float) -> LockLost:
        reason = _lost_reason(
            _state_from_item(item),
            owner=self.owner,
            token=self.token,
            now=now,
            released_locally=self._released,
        )
        return LockLost(self.name, owner=self.owner, token=self.token, reason=reason)

    def heartbeat(self) -> None:
        locks = self.locks
        now = locks.clock()
        expires_at = now + self.ttl
        try:
            locks.client.update_item(
                TableName=locks.table,
                Key=locks._key(self.name),
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
        except locks.client.exceptions.ConditionalCheckFailedException as error:
            raise self._lost(error.response.get("Item"), now) from None
        self.expires_at = expires_at

    def check(self) -> None:
        item = self.locks.read(self.name)
        now = self.locks.clock()
        state = _state_from_item(item)
        if state is None or not state.held_by(self.owner, self.token, now):
            raise self._lost(item, now)

    def release(self) -> None:
        locks = self.locks
        now = locks.clock()
        # a failed condition: already released, or lost; nothing of ours to let go
        with contextlib.suppress(locks.client.exceptions.ConditionalCheckFailedException):
            locks.client.update_item(
                TableName=locks.table,
                Key=locks._key(self.name),
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


# --------------------------------------------------------------------------- local files


class FileLocks:
    """Fenced leases in ``<root>/.locks/``: per name a JSON state file and a guard file.

    Every read-modify-write holds an exclusive ``flock`` on the guard file, and every write
    replaces the state file atomically (write a temporary file, fsync, rename, fsync the
    directory), so a crash never loses a token. The state file is never deleted. Works between
    threads and processes on one machine (``flock`` is per open file, not per process).
    """

    def __init__(self, root: Path, *, clock: Clock = time.time) -> None:
        self.root = Path(root)
        self.directory = self.root / LOCKS_DIR
        self.clock = clock

    def _stem(self, name: str) -> str:
        return "lock-" + quote(_check_name(name), safe="")

    def state_path(self, name: str) -> Path:
        return self.directory / f"{self._stem(name)}.json"

    def _guard_path(self, name: str) -> Path:
        return self.directory / f"{self._stem(name)}.guard"

    @contextlib.contextmanager
    def _guard(self, name: str, *, exclusive: bool = True) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._guard_path(name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def read(self, name: str) -> dict[str, Any] | None:
        """The lock's state as stored (a dict), or None: for checks and diagnostics."""
        with self._guard(name, exclusive=False):
            return self._read(name)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            text = self.state_path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        state: dict[str, Any] = json.loads(text)
        return state

    def _write(self, name: str, state: dict[str, Any]) -> None:
        path = self.state_path(name)
        temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        data = json.dumps(state, sort_keys=True).encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        directory_fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(directory_fd)
        except OSError as error:  # some filesystems refuse fsync on a directory
            if error.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(directory_fd)

    def acquire(self, name: str, *, ttl: float) -> FileLease:
        name, ttl = _check_name(name), _check_ttl(ttl)
        owner = new_owner_id()
        with self._guard(name):
            now = self.clock()
            current = self._read(name)
            state = _state_from_dict(current)
            if state is not None and state.owner is not None and not state.expires_at < now:
                raise LockBusy(
                    name,
                    holder=state.owner,
                    token=state.token,
                    expires_at=state.expires_at,
                    now=now,
                )
            token = (state.token if state else 0) + 1
            expires_at = now + ttl
            self._write(
                name,
                {
                    LOCK_KEY: name,
                    "owner": owner,
                    "token": token,
                    "expires_at": expires_at,
                    "acquired_at": now,
                    "heartbeat_at": now,
                },
            )
        return FileLease(self, name, owner=owner, token=token, expires_at=expires_at, ttl=ttl)


def _state_from_dict(state: dict[str, Any] | None) -> _State | None:
    if state is None:
        return None
    return _State(state.get("owner"), int(state.get("token", 0)), float(state["expires_at"]))


class FileLease:
    """A lease held in a :class:`FileLocks` directory; made by :meth:`FileLocks.acquire`."""

    def __init__(
        self,
        locks: FileLocks,
        name: str,
        *,
        owner: str,
        token: int,
        expires_at: float,
        ttl: float,
    ) -> None:
        self.locks = locks
        self.name = name
        self.owner = owner
        self.token = token
        self.expires_at = expires_at
        self.ttl = ttl
        self._released = False

    def __repr__(self) -> str:
        return (
            f"FileLease(root={str(self.locks.root)!r}, name={self.name!r}, owner={self.owner!r}, "
            f"token={self.token}, expires_at={self.expires_at!r})"
        )

    def _lost(self, state: dict[str, Any] | None, now: float) -> LockLost:
        reason = _lost_reason(
            _state_from_dict(state),
            owner=self.owner,
            token=self.token,
            now=now,
            released_locally=self._released,
        )
        return LockLost(self.name, owner=self.owner, token=self.token, reason=reason)

    def heartbeat(self) -> None:
        locks = self.locks
        with locks._guard(self.name):
            now = locks.clock()
            current = locks._read(self.name)
            state = _state_from_dict(current)
            if current is None or state is None or not state.held_by(self.owner, self.token, now):
                raise self._lost(current, now)
            expires_at = now + self.ttl
            locks._write(self.name, {**current, "expires_at": expires_at, "heartbeat_at": now})
        self.expires_at = expires_at

    def check(self) -> None:
        current = self.locks.read(self.name)
        now = self.locks.clock()
        state = _state_from_dict(current)
        if state is None or not state.held_by(self.owner, self.token, now):
            raise self._lost(current, now)

    def release(self) -> None:
        locks = self.locks
        with locks._guard(self.name):
            now = locks.clock()
            current = locks._read(self.name)
            state = _state_from_dict(current)
            if (
                current is not None
                and state is not None
                and state.owner == self.owner
                and state.token == self.token
            ):
                released = {k: v for k, v in current.items() if k != "owner"}
                locks._write(self.name, {**released, "expires_at": now, "released_at": now})
        self._released = True


# --------------------------------------------------------------------------- keeper


class LeaseKeeper:
    """Keep a lease alive while a long job runs: heartbeat every ``interval`` seconds (default
    ``lease.ttl / 3``) on a daemon thread, from ``__enter__`` until ``__exit__``.

    The first failed heartbeat (lost, or any error) stops the heartbeats and is remembered;
    :meth:`check` then raises :class:`LockLost`. Call :meth:`check` before anything that must
    happen under the lock (and fence the write itself with ``lease.token``). Exiting stops the
    thread and waits for it, so no heartbeat happens afterwards; it does not release the lease.
    """

    def __init__(self, lease: Lease, *, interval: float | None = None) -> None:
        self.lease = lease
        self.interval = _check_ttl(lease.ttl / 3 if interval is None else interval)
        self.heartbeats = 0
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def failure(self) -> BaseException | None:
        """The error of the heartbeat that failed, if one did."""
        return self._failure

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this LeaseKeeper was already started")
        self._thread = threading.Thread(
            target=self._run, name=f"lease-keeper-{self.lease.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.lease.heartbeat()
            except BaseException as error:
                self._failure = error
                return
            self.heartbeats += 1

    def check(self) -> None:
        """Raise :class:`LockLost` if a heartbeat failed or the lease no longer holds."""
        failure = self._failure
        lease = self.lease
        if failure is not None:
            reason = (
                failure.reason
                if isinstance(failure, LockLost)
                else f"a heartbeat failed: {type(failure).__name__}: {failure}"
            )
            raise LockLost(
                lease.name, owner=lease.owner, token=lease.token, reason=reason
            ) from failure
        lease.check()

    def __enter__(self) -> LeaseKeeper:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
