"""The fenced lease lock: one behaviour suite, run on DynamoDB Local and on local files.

Time is a ``FakeClock`` unless a test needs real heartbeats (the ``LeaseKeeper`` tests), so
expiry is tested exactly, at the boundary, without sleeping. Each lock handle has its own client
(its own "process"); the stored record is read and tampered with directly (``backend.raw``,
``backend.steal``), never through the code under test.
"""

from __future__ import annotations

import copy
import math
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from receipt_chroma.lease import (
    DynamoDBLeases,
    FileLeases,
    LeaseBusy,
    LeaseKeeper,
    LeaseLost,
    Leases,
    create_lease_table,
)
from tests.support.clock import FakeClock
from tests.support.lease_backends import Backend
from tests.support.lease_records import DynamoDBLeaseRecords, LeaseRecord

TTL = 30.0


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- acquire, busy, expiry


def test_acquire_sets_a_fresh_owner_token_and_numeric_expiry(
    backend: Backend, clock: FakeClock
) -> None:
    locks = backend.locks(clock)
    first = locks.acquire("snapshots", ttl=TTL)
    assert (first.name, first.token, first.ttl) == ("snapshots", 1, TTL)
    assert first.expires_at == clock.now + TTL
    assert backend.record("snapshots") == LeaseRecord(
        owner=first.owner, token=1, expires_at=clock.now + TTL
    )
    first.check()
    first.release()
    second = locks.acquire("snapshots", ttl=TTL)
    assert second.owner != first.owner  # a fresh owner id per acquire, even from one handle


def test_a_held_lock_is_busy_and_the_error_names_holder_and_expiry(
    backend: Backend, clock: FakeClock
) -> None:
    holder = backend.locks(clock).acquire("snapshots", ttl=TTL)
    before = backend.raw("snapshots")
    clock.advance(TTL / 2)
    with pytest.raises(LeaseBusy) as busy:
        backend.locks(clock).acquire("snapshots", ttl=TTL)
    error = busy.value
    assert (error.name, error.holder, error.token, error.expires_at) == (
        "snapshots",
        holder.owner,
        1,
        holder.expires_at,
    )
    assert holder.owner in str(error)
    assert iso(holder.expires_at) in str(error)
    assert "15.0 s from now" in str(error)
    assert backend.raw("snapshots") == before  # a failed acquire changes nothing
    holder.check()


def test_busy_until_expiry_then_free_for_the_next_owner(backend: Backend, clock: FakeClock) -> None:
    first = backend.locks(clock).acquire("snapshots", ttl=TTL)
    clock.now = first.expires_at  # exactly at expiry: still held
    with pytest.raises(LeaseBusy):
        backend.locks(clock).acquire("snapshots", ttl=TTL)
    clock.now = math.nextafter(first.expires_at, math.inf)  # the next float after: free
    second = backend.locks(clock).acquire("snapshots", ttl=TTL)
    assert second.owner != first.owner
    assert second.token == first.token + 1
    assert backend.record("snapshots") == LeaseRecord(
        owner=second.owner, token=2, expires_at=clock.now + TTL
    )


def test_expiry_is_compared_as_numbers_not_strings(backend: Backend, clock: FakeClock) -> None:
    # As strings "999.5" > "1000": a string comparison would keep this expired lock busy.
    clock.now = 999.0
    expired = backend.locks(clock).acquire("a", ttl=0.5)
    clock.now = 1000.0
    taken = backend.locks(clock).acquire("a", ttl=0.5)
    assert taken.token == expired.token + 1
    # As strings "100" < "99.5": a string comparison would free this lock before its expiry.
    clock.now = 99.0
    held = backend.locks(clock).acquire("b", ttl=1.0)
    clock.now = 99.5
    with pytest.raises(LeaseBusy):
        backend.locks(clock).acquire("b", ttl=1.0)
    held.check()


def test_locks_of_different_names_are_independent(backend: Backend, clock: FakeClock) -> None:
    lines = backend.locks(clock).acquire("lines", ttl=TTL)
    words = backend.locks(clock).acquire("words", ttl=TTL)
    assert (lines.token, words.token) == (1, 1)
    lines.check()
    words.check()


def test_tokens_strictly_increase_across_acquire_release_expire_reacquire(
    backend: Backend, clock: FakeClock
) -> None:
    handles = [backend.locks(clock), backend.locks(clock)]
    tokens = []
    for round_ in range(8):
        lease = handles[round_ % 2].acquire("snapshots", ttl=TTL)
        tokens.append(lease.token)
        if round_ % 3 == 0:
            lease.release()
        elif round_ % 3 == 1:
            clock.advance(TTL + 1)  # let it expire, then someone takes it over
        else:
            lease.release()
            lease.release()
            clock.advance(TTL * 10)
    assert tokens == list(range(1, 9))


# --------------------------------------------------------------------------- release


def test_release_keeps_the_record_and_token_and_frees_at_once(
    backend: Backend, clock: FakeClock
) -> None:
    first = backend.locks(clock).acquire("snapshots", ttl=TTL)
    first.release()
    record = backend.record("snapshots")
    assert record is not None, "release must not delete the record (the token would restart)"
    assert record.owner is None
    assert record.token == 1
    assert record.expires_at <= clock.now
    second = backend.locks(clock).acquire("snapshots", ttl=TTL)  # same instant: free already
    assert second.token == 2


def test_release_is_idempotent(backend: Backend, clock: FakeClock) -> None:
    lease = backend.locks(clock).acquire("snapshots", ttl=TTL)
    lease.release()
    after_first = backend.raw("snapshots")
    clock.advance(1)
    lease.release()
    assert backend.raw("snapshots") == after_first


def test_release_by_a_non_owner_changes_nothing(backend: Backend, clock: FakeClock) -> None:
    stale = backend.locks(clock).acquire("snapshots", ttl=TTL)
    clock.advance(TTL + 1)
    current = backend.locks(clock).acquire("snapshots", ttl=TTL)
    before = backend.raw("snapshots")
    stale.release()  # expired and taken over: not an error, and not a release
    assert backend.raw("snapshots") == before
    current.check()
    # An earlier holder that released and lost the race to re-acquire changes nothing either.
    current.release()
    newest = backend.locks(clock).acquire("snapshots", ttl=TTL)
    before = backend.raw("snapshots")
    current.release()
    stale.release()
    assert backend.raw("snapshots") == before
    newest.check()


# --------------------------------------------------------------------------- heartbeat


def test_heartbeat_extends_the_lease(backend: Backend, clock: FakeClock) -> None:
    lease = backend.locks(clock).acquire("snapshots", ttl=TTL)
    first_expiry = lease.expires_at
    clock.advance(TTL / 2)
    lease.heartbeat()
    assert lease.expires_at == clock.now + TTL
    assert backend.record("snapshots") == LeaseRecord(
        owner=lease.owner, token=lease.token, expires_at=clock.now + TTL
    )
    clock.now = first_expiry + 1  # past the first expiry, inside the extended one
    with pytest.raises(LeaseBusy):
        backend.locks(clock).acquire("snapshots", ttl=TTL)
    lease.check()


def test_heartbeat_of_an_expired_and_taken_holder_fails_and_leaves_the_new_owner_untouched(
    backend: Backend,
) -> None:
    old_clock, new_clock = FakeClock(), FakeClock()
    old = backend.locks(old_clock).acquire("snapshots", ttl=TTL)
    new_clock.advance(TTL + 1)  # the new owner sees the old lease expired...
    new = backend.locks(new_clock).acquire("snapshots", ttl=TTL)
    before = backend.raw("snapshots")
    # ...while the old holder's own clock (a paused process, a skewed host) says it is not:
    # only owner and token can stop its heartbeat from taking the lock back.
    with pytest.raises(LeaseLost) as lost:
        old.heartbeat()
    assert backend.raw("snapshots") == before
    assert new.owner in str(lost.value)
    assert "taken by" in lost.value.reason
    assert old.expires_at == old_clock.now + TTL  # the failed heartbeat changed nothing local
    new.check()
    with pytest.raises(LeaseLost):
        old.check()


def test_heartbeat_after_expiry_fails_even_if_nobody_took_it(
    backend: Backend, clock: FakeClock
) -> None:
    lease = backend.locks(clock).acquire("snapshots", ttl=TTL)
    clock.now = lease.expires_at
    before = backend.raw("snapshots")
    with pytest.raises(LeaseLost, match="expired"):
        lease.heartbeat()
    assert backend.raw("snapshots") == before


def test_heartbeat_after_release_fails(backend: Backend, clock: FakeClock) -> None:
    lease = backend.locks(clock).acquire("snapshots", ttl=TTL)
    lease.release()
    before = backend.raw("snapshots")
    with pytest.raises(LeaseLost, match="released"):
        lease.heartbeat()
    assert backend.raw("snapshots") == before


# --------------------------------------------------------------------------- check


def test_check_passes_while_held_and_fails_from_expiry_on(
    backend: Backend, clock: FakeClock
) -> None:
    lease = backend.locks(clock).acquire("snapshots", ttl=TTL)
    lease.check()
    clock.now = math.nextafter(lease.expires_at, -math.inf)
    lease.check()
    clock.now = lease.expires_at
    with pytest.raises(LeaseLost, match="expired"):
        lease.check()


def test_check_fails_once_released_or_taken(backend: Backend, clock: FakeClock) -> None:
    released = backend.locks(clock).acquire("a", ttl=TTL)
    released.release()
    with pytest.raises(LeaseLost, match="released"):
        released.check()
    robbed = backend.locks(clock).acquire("b", ttl=TTL)
    thief = backend.steal("b")
    with pytest.raises(LeaseLost) as lost:
        robbed.check()
    assert thief in str(lost.value)


# --------------------------------------------------------------------------- races


def _takeover_round(
    name: str, old_locks: Leases, old_clock: FakeClock, new_locks: Leases, new_clock: FakeClock
) -> dict[str, Any]:
    """The old holder heartbeats in a loop while the new owner (whose clock says the old lease
    expired) acquires; return what happened."""
    new_clock.now = old_clock.now + TTL + 1
    old = old_locks.acquire(name, ttl=TTL)
    outcomes: list[tuple[int, bool]] = []  # (monotonic ns when the heartbeat began, succeeded)
    stop = threading.Event()
    start = threading.Barrier(2)

    def heartbeats() -> None:
        start.wait()
        while not stop.is_set():
            began = time.monotonic_ns()
            try:
                old.heartbeat()
                outcomes.append((began, True))
            except LeaseLost:
                outcomes.append((began, False))

    thread = threading.Thread(target=heartbeats)
    thread.start()
    try:
        start.wait()
        time.sleep(random.uniform(0, 0.005))
        new = new_locks.acquire(name, ttl=TTL)
        acquired = time.monotonic_ns()
        deadline = time.monotonic() + 10
        while not any(began > acquired for began, _ in outcomes) and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        stop.set()
        thread.join()
    return {"old": old, "new": new, "acquired": acquired, "outcomes": outcomes}


def test_race_old_holder_heartbeats_while_a_new_owner_acquires(backend: Backend) -> None:
    """An old holder heartbeating as fast as it can never takes the lock back (60 rounds)."""
    old_clock, new_clock = FakeClock(), FakeClock()
    old_locks, new_locks = backend.locks(old_clock), backend.locks(new_clock)
    for round_ in range(60):
        name = f"race-{round_}"
        run = _takeover_round(name, old_locks, old_clock, new_locks, new_clock)
        old, new, acquired, outcomes = run["old"], run["new"], run["acquired"], run["outcomes"]
        assert backend.record(name) == LeaseRecord(
            owner=new.owner, token=old.token + 1, expires_at=new.expires_at
        )
        after = [ok for began, ok in outcomes if began > acquired]
        assert after, "no heartbeat started after the new owner acquired"
        assert not any(after), f"{name}: an old heartbeat succeeded after the takeover"
        succeeded = [ok for _, ok in outcomes]
        assert not any(succeeded[succeeded.index(False) :]), "a heartbeat succeeded after a failure"


def test_contention_exactly_one_winner_per_round(backend: Backend) -> None:
    """16 contenders, each with its own client, released together by a barrier, 200 rounds."""
    contenders, rounds = 16, 200
    handles = [backend.locks(time.time) for _ in range(contenders)]
    barrier = threading.Barrier(contenders)
    results: list[list[Any]] = [[None] * contenders for _ in range(rounds)]
    errors: list[BaseException] = []

    def contend(index: int) -> None:
        try:
            for round_ in range(rounds):
                barrier.wait()
                try:
                    lease = handles[index].acquire("contended", ttl=60)
                except LeaseBusy as busy:
                    results[round_][index] = busy
                else:
                    results[round_][index] = lease
                barrier.wait()  # everyone has tried; the winner lets go
                if isinstance(results[round_][index], LeaseBusy):
                    continue
                lease.release()
        except BaseException as error:
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    winners_per_round = [
        [result for result in round_results if not isinstance(result, LeaseBusy)]
        for round_results in results
    ]
    bad = {i: len(w) for i, w in enumerate(winners_per_round) if len(w) != 1}
    assert not bad, f"rounds without exactly one winner (round: winners): {bad}"
    assert [w[0].token for w in winners_per_round] == list(range(1, rounds + 1))


# --------------------------------------------------------------------------- LeaseKeeper


def test_keeper_keeps_a_short_lease_alive_across_several_ttls(backend: Backend) -> None:
    ttl = 0.9  # long enough that a slow DynamoDB Local call does not miss a beat
    lease = backend.locks(time.time).acquire("kept", ttl=ttl)
    with LeaseKeeper(lease) as keeper:
        time.sleep(ttl * 3.5)
        keeper.check()
        with pytest.raises(LeaseBusy):
            backend.locks(time.time).acquire("kept", ttl=ttl)
        assert keeper.heartbeats >= 6
    beats = keeper.heartbeats
    stopped = backend.raw("kept")
    time.sleep(keeper.interval * 2)
    assert keeper.heartbeats == beats
    assert backend.raw("kept") == stopped  # no heartbeat after exit
    time.sleep(max(0.0, lease.expires_at - time.time()) + 0.05)
    with pytest.raises(LeaseLost, match="expired"):  # without the keeper the lease runs out
        lease.check()
    lease.release()


def test_keeper_reports_loss_when_the_lock_is_stolen(backend: Backend) -> None:
    lease = backend.locks(time.time).acquire("stolen", ttl=0.6)
    with LeaseKeeper(lease) as keeper:
        time.sleep(0.3)
        keeper.check()
        thief = backend.steal("stolen")
        stolen = backend.raw("stolen")
        deadline = time.monotonic() + 5
        while keeper.failure is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert isinstance(keeper.failure, LeaseLost)
        with pytest.raises(LeaseLost) as lost:
            keeper.check()
        assert thief in str(lost.value)
        time.sleep(keeper.interval * 2)
    assert backend.raw("stolen") == stolen  # the keeper did not take it back


class _FailingLease:
    name, owner, token, expires_at, ttl = "x", "me", 7, 0.0, 0.09

    def heartbeat(self) -> None:
        raise ConnectionError("endpoint unreachable")

    def check(self) -> None:
        pass

    def release(self) -> None:
        pass


def test_keeper_check_raises_lock_lost_after_any_heartbeat_error() -> None:
    with LeaseKeeper(_FailingLease()) as keeper:
        keeper.check()  # no heartbeat yet
        deadline = time.monotonic() + 5
        while keeper.failure is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(LeaseLost, match="a heartbeat failed: ConnectionError") as lost:
            keeper.check()
    assert isinstance(lost.value.__cause__, ConnectionError)
    assert lost.value.token == 7


# --------------------------------------------------------------------------- DynamoDB specifics


def _record_calls(client: Any) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, copy.deepcopy(params)))

    client.meta.events.register("provide-client-params.dynamodb.*", hook)
    return calls


@pytest.mark.aws
def test_dynamodb_each_operation_is_one_conditional_call_with_typed_numbers(
    dynamodb_client: Any, lock_table: str
) -> None:
    clock = FakeClock(1_732_806_000.123456)
    locks = DynamoDBLeases(lock_table, client=dynamodb_client, clock=clock)
    calls = _record_calls(dynamodb_client)

    lease = locks.acquire("snapshots", ttl=0.1)
    [(operation, params)] = calls
    assert operation == "UpdateItem"
    assert params["ConditionExpression"] == (
        "attribute_not_exists(#id) OR attribute_not_exists(#owner) OR #expires < :now"
    )
    assert "ADD #token :one" in params["UpdateExpression"]
    values = params["ExpressionAttributeValues"]
    assert values[":now"] == {"N": "1732806000.123456"}
    assert values[":expires"] == {"N": repr(clock.now + 0.1)}  # exact, no exponent, no rounding

    calls.clear()
    lease.heartbeat()
    [(operation, params)] = calls
    assert operation == "UpdateItem"
    assert params["ConditionExpression"] == (
        "#owner = :owner AND #token = :token AND #expires > :now"
    )
    assert params["ExpressionAttributeValues"][":token"] == {"N": "1"}

    calls.clear()
    lease.check()
    [(operation, params)] = calls
    assert (operation, params["ConsistentRead"]) == ("GetItem", True)

    calls.clear()
    lease.release()
    [(operation, params)] = calls
    assert operation == "UpdateItem"  # never DeleteItem: the token must survive
    assert params["ConditionExpression"] == "#owner = :owner AND #token = :token"

    item = DynamoDBLeaseRecords(dynamodb_client, lock_table).raw("snapshots")
    assert item is not None
    assert item["token"] == {"N": "1"}
    assert set(item["expires_at"]) == {"N"}
    assert "owner" not in item


@pytest.mark.aws
def test_dynamodb_stored_times_round_trip_exactly(dynamodb_client: Any, lock_table: str) -> None:
    for now in (1_732_806_000.1, 1e9 + 1 / 3, 17.000000000000004, 1e16):
        clock = FakeClock(now)
        name = f"t-{now!r}"
        lease = DynamoDBLeases(lock_table, client=dynamodb_client, clock=clock).acquire(
            name, ttl=1 / 7
        )
        item = DynamoDBLeaseRecords(dynamodb_client, lock_table).raw(name)
        assert item is not None
        stored = item["expires_at"]["N"]
        assert "e" not in stored.lower()
        assert float(stored) == lease.expires_at == now + 1 / 7
        assert float(item["acquired_at"]["N"]) == now


@pytest.mark.aws
def test_ensure_lock_table_creates_an_on_demand_table_once(dynamodb_client: Any) -> None:
    create_lease_table(dynamodb_client, "locks-ensure")
    create_lease_table(dynamodb_client, "locks-ensure")  # idempotent
    table = dynamodb_client.describe_table(TableName="locks-ensure")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == [{"AttributeName": "lock_id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "lock_id", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    dynamodb_client.create_table(
        TableName="not-locks",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ValueError, match="not a lease table"):
        create_lease_table(dynamodb_client, "not-locks")


@pytest.mark.aws
def test_dynamodb_leases_default_client_comes_from_the_environment(
    aws_clean: Any, lock_table: str
) -> None:
    lease = DynamoDBLeases(lock_table).acquire("snapshots", ttl=TTL)
    assert lease.leases.client.meta.endpoint_url == aws_clean.dynamodb_url
    lease.check()


def test_file_locks_keep_state_in_a_small_json_file_under_dot_locks(tmp_path: Any) -> None:
    locks = FileLeases(tmp_path, clock=FakeClock())
    lease = locks.acquire("lines/words: odd name", ttl=TTL)
    files = sorted(p.name for p in (tmp_path / ".locks").iterdir())
    assert len(files) == 2
    assert all(name.startswith("lock-") for name in files)
    assert all("/" not in name for name in files)
    lease.release()
    with pytest.raises(ValueError, match="non-empty"):
        locks.acquire("", ttl=TTL)
    with pytest.raises(ValueError, match="positive"):
        locks.acquire("x", ttl=0)
