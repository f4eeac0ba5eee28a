"""The DynamoDB store (``dynamodb://TABLE``) on DynamoDB Local: what the generic behaviour suite
cannot reach.

* big batches: split into transactions by actions and by bytes, in input order, gapless;
  states over an item split into parts and joined on read; an event too large for one
  transaction refused with :class:`TooLarge`;
* cancelled transactions (injected ``TransactionCanceledException``): conflicts and throttling
  retried with backoff, then given up naming the table; other reasons fail at once;
* the counter moving between a store's head read and its transaction (another store appending
  in between): the append lands after the other's, or raises :class:`HeadMoved` with
  ``expected_head``;
* dedup by the dedup items' conditions, against events another store instance stored;
* reads never pass a position that is committed but not yet readable, and read across bucket
  boundaries;
* a missing table, and ``store create-table`` / ``status`` / ``ingest`` / ``log`` on the
  command line (the installed console script, in a subprocess).

The test process's environment points boto3 at DynamoDB Local (``aws_env``); recorders are
reached into only to spy on their client or to replace their sleep.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from eventsourcing.persistence import OperationalError

from receipt_events.errors import MissingResource
from receipt_events.events import Event
from receipt_events.store import EventStore, HeadMoved, ParkedRecord, dynamodb_items, open_store
from receipt_events.store import dynamodb as dynamodb_module
from receipt_events.store.dynamodb import MAX_ATTEMPTS, DynamoDBRecorder
from receipt_events.store.dynamodb_items import (
    MAX_ACTIONS,
    MAX_STORED_BYTES,
    MAX_TRANSACTION_BYTES,
    PART_BYTES,
    Item,
    TooLarge,
    bucket_key,
    parts_key,
)
from receipt_events.store.mapper import MsgspecMapper
from tests.aws.harness import AwsEnv
from tests.store.helpers import label_set, numbered, parked, read_all, stream_input

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = REPO / ".venv" / "bin" / "receipt-events"
EVENTS_PER_TRANSACTION = (MAX_ACTIONS - 1) // 2  # after the counter, two puts per small event


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def open_dynamodb_store(dynamodb_url: str) -> Iterator[Callable[[], EventStore]]:
    """Open the test's table (again and again: several store instances); all closed after."""
    opened: list[EventStore] = []

    def open_again() -> EventStore:
        opened.append(open_store(dynamodb_url))
        return opened[-1]

    yield open_again
    for store in reversed(opened):
        store.close()


@pytest.fixture
def store(open_dynamodb_store: Callable[[], EventStore]) -> EventStore:
    return open_dynamodb_store()


def table_of(store: EventStore) -> str:
    return store.url.removeprefix("dynamodb://")


def log_recorder(store: EventStore) -> DynamoDBRecorder:
    recorder = store._log
    assert isinstance(recorder, DynamoDBRecorder)
    return recorder


def ids(events: list[Event]) -> list[str]:
    return [event.originator_id for event in events]


def logged_ids(store: EventStore) -> list[str]:
    return [recorded.event.originator_id for recorded in read_all(store)]


class Transactions:
    """A spy on a client's ``transact_write_items``: records each call, runs ``before`` (which
    may append elsewhere, or raise instead of the call), then forwards to the real call."""

    def __init__(
        self,
        client: Any,
        monkeypatch: pytest.MonkeyPatch,
        before: Callable[[int, list[Item]], None] | None = None,
    ) -> None:
        self.client = client
        self.real = client.transact_write_items
        self.calls: list[list[Item]] = []
        self.tokens: list[str] = []
        self.before = before
        monkeypatch.setattr(client, "transact_write_items", self)

    def __call__(self, **arguments: Any) -> Any:
        self.calls.append(arguments["TransactItems"])
        self.tokens.append(arguments["ClientRequestToken"])
        if self.before is not None:
            self.before(len(self.calls), arguments["TransactItems"])
        return self.real(**arguments)

    def event_positions(self) -> list[list[int]]:
        """The positions of the event items each call put, in action order."""
        return [
            [
                int(action["Put"]["Item"]["sk"]["N"])
                for action in actions
                if "Put" in action and "#pos#" in action["Put"]["Item"]["pk"]["S"]
            ]
            for actions in self.calls
        ]


def cancellation(client: Any, actions: list[Item], code: str, at: int = 1) -> Exception:
    """What botocore raises for a cancelled ``TransactWriteItems``: one reason per action,
    ``code`` at action ``at`` (1: the first event's dedup put), ``None`` elsewhere."""
    reasons: list[dict[str, str]] = [{"Code": "None"} for _ in actions]
    reasons[at] = {"Code": code, "Message": f"{code} (injected by the test)"}
    listed = ", ".join(reason["Code"] for reason in reasons)
    exception: Exception = client.exceptions.TransactionCanceledException(
        error_response={
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons for "
                f"specific reasons [{listed}]",
            },
            "CancellationReasons": reasons,
        },
        operation_name="TransactWriteItems",
    )
    return exception


class AtTheCeiling(random.Random):
    """Full jitter without the jitter: every backoff is its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def raw_query(client: Any, table: str, pk: str) -> list[Item]:
    response = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    )
    items: list[Item] = response["Items"]
    assert "LastEvaluatedKey" not in response
    return items


def event_item(client: Any, table: str, namespace: str, position: int) -> Item:
    response = client.get_item(
        TableName=table,
        Key={"pk": {"S": bucket_key(namespace, position)}, "sk": {"N": str(position)}},
        ConsistentRead=True,
    )
    item: Item = response["Item"]
    return item


def stored_state_size(entry: object) -> int:
    return len(MsgspecMapper().to_stored_event(entry).state)


# -- big batches ---------------------------------------------------------------------------


def test_a_250_event_batch_is_split_into_transactions_in_input_order(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = numbered("big", 250)
    spy = Transactions(log_recorder(store).client, monkeypatch)

    positions = store.append(events)

    assert positions == list(range(1, 251))
    assert len(spy.calls) == math.ceil(250 / EVENTS_PER_TRANSACTION) > 1
    assert all(len(actions) <= MAX_ACTIONS for actions in spy.calls)
    per_call = spy.event_positions()
    assert [p for call in per_call for p in call] == list(range(1, 251))  # chunks in order
    assert all(len(call) == EVENTS_PER_TRANSACTION for call in per_call[:-1])  # chunks full
    assert store.head() == 250
    assert [r.event for r in read_all(store)] == events
    assert [r.position for r in read_all(store)] == positions


def test_states_larger_than_an_item_are_split_into_parts_and_read_back_exactly(
    store: EventStore, dynamodb_client: Any
) -> None:
    long_label = label_set("long", reasoning="Ünïcødé \u2603 " * 50_000)  # ~700 KB of JSON
    events = [*numbered("before", 2), long_label, *numbered("after", 2)]
    record = msgspec.structs.replace(parked("huge-record"), payload=os.urandom(900_000))
    records = [parked("small-record"), record]
    for entry in (long_label, record):
        assert stored_state_size(entry) > 400_000 > PART_BYTES

    positions = store.append(events)
    assert store.park(records) == [True, True]

    assert positions == [1, 2, 3, 4, 5]
    assert [r.event for r in read_all(store)] == events
    assert store.parked_records() == records
    table = table_of(store)
    for namespace, position, entry in (("log", 3, long_label), ("parked", 2, record)):
        expected_parts = math.ceil(stored_state_size(entry) / PART_BYTES)
        assert expected_parts >= 3
        item = event_item(dynamodb_client, table, namespace, position)
        assert item["parts"] == {"N": str(expected_parts)}
        assert len(item["state"]["B"]) == PART_BYTES
        rest = raw_query(dynamodb_client, table, parts_key(namespace, position))
        assert sorted(int(part["sk"]["N"]) for part in rest) == list(range(1, expected_parts))
        assert all(len(part["state"]["B"]) <= PART_BYTES for part in rest)
    for namespace, position in (("log", 2), ("parked", 1)):  # small states: one item each
        assert "parts" not in event_item(dynamodb_client, table, namespace, position)
        assert raw_query(dynamodb_client, table, parts_key(namespace, position)) == []


def test_a_batch_over_the_transaction_byte_limit_is_split_by_size(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [label_set(f"heavy-{i}", reasoning=str(i) * 1_250_000) for i in range(3)]
    assert sum(stored_state_size(e) for e in events) > MAX_TRANSACTION_BYTES
    spy = Transactions(log_recorder(store).client, monkeypatch)

    assert store.append(events) == [1, 2, 3]

    assert spy.event_positions() == [[1, 2], [3]]  # the actions would have fitted one
    assert [r.event for r in read_all(store)] == events


def test_an_event_over_max_stored_bytes_is_too_large_and_nothing_is_stored(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = label_set("huge", reasoning="x" * MAX_STORED_BYTES)
    spy = Transactions(log_recorder(store).client, monkeypatch)

    with pytest.raises(TooLarge, match=f"ddb:huge is .* over the {MAX_STORED_BYTES}"):
        store.append([*numbered("small", 3), huge, *numbered("later", 3)])

    assert spy.calls == []
    assert store.head() == 0
    assert read_all(store) == []


def test_a_too_large_event_late_in_a_long_batch_stores_nothing_before_it(
    store: EventStore,
) -> None:
    huge = label_set("huge", reasoning="x" * MAX_STORED_BYTES)
    with pytest.raises(TooLarge):
        store.append([*numbered("small", 2 * EVENTS_PER_TRANSACTION), huge])
    assert store.head() == 0


def test_the_largest_storable_event_round_trips(store: EventStore) -> None:
    largest = label_set("largest", reasoning="y" * (MAX_STORED_BYTES - 20_000))
    assert stored_state_size(largest) > 3 * 1024 * 1024
    assert store.append([largest]) == [1]
    assert [r.event for r in read_all(store)] == [largest]


# -- cancelled transactions: retried, given up, or failed at once ---------------------------------


@pytest.mark.parametrize("code", ["TransactionConflict", "ThrottlingError"])
def test_conflicts_and_throttling_are_retried_with_backoff_storing_each_event_once(
    store: EventStore, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    recorder = log_recorder(store)
    sleeps: list[float] = []
    monkeypatch.setattr(recorder, "_sleep", sleeps.append)
    monkeypatch.setattr(recorder, "_rng", AtTheCeiling())
    failures = 4

    def fail_first(call: int, actions: list[Item]) -> None:
        if call <= failures:
            raise cancellation(recorder.client, actions, code, at=3)

    spy = Transactions(recorder.client, monkeypatch, fail_first)
    events = numbered("retried", 5)

    assert store.append(events) == [1, 2, 3, 4, 5]

    assert len(spy.calls) == failures + 1
    assert len(set(spy.tokens)) == len(spy.tokens)  # each retry is a new request
    assert [r.event for r in read_all(store)] == events
    assert len(sleeps) == failures
    assert 0 < sleeps[0] <= 0.05
    assert sleeps == [sleeps[0] * 2**k for k in range(failures)]  # doubling


def test_backoff_is_capped(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = log_recorder(store)
    sleeps: list[float] = []
    monkeypatch.setattr(recorder, "_sleep", sleeps.append)
    monkeypatch.setattr(recorder, "_rng", AtTheCeiling())

    def fail_until_the_last(call: int, actions: list[Item]) -> None:
        if call < MAX_ATTEMPTS:
            raise cancellation(recorder.client, actions, "TransactionConflict")

    Transactions(recorder.client, monkeypatch, fail_until_the_last)
    assert store.append(numbered("capped", 1)) == [1]
    assert len(sleeps) == MAX_ATTEMPTS - 1
    assert max(sleeps) == dynamodb_module.BACKOFF_CAP_SECONDS
    assert sleeps == sorted(sleeps)


def test_an_append_gives_up_after_max_attempts_naming_the_table_and_stores_nothing(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = log_recorder(store)
    sleeps: list[float] = []
    monkeypatch.setattr(recorder, "_sleep", sleeps.append)

    def always(call: int, actions: list[Item]) -> None:
        raise cancellation(recorder.client, actions, "TransactionConflict")

    spy = Transactions(recorder.client, monkeypatch, always)

    with pytest.raises(OperationalError) as raised:
        store.append(numbered("doomed", 3))

    message = str(raised.value)
    assert f"dynamodb://{table_of(store)}" in message
    assert f"gave up after {MAX_ATTEMPTS} attempts" in message
    assert "TransactionConflict" in message
    assert len(spy.calls) == MAX_ATTEMPTS
    assert len(sleeps) == MAX_ATTEMPTS - 1
    assert store.head() == 0
    assert read_all(store) == []


def test_a_cancellation_for_another_reason_fails_at_once(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = log_recorder(store)
    sleeps: list[float] = []
    monkeypatch.setattr(recorder, "_sleep", sleeps.append)

    def invalid(call: int, actions: list[Item]) -> None:
        raise cancellation(recorder.client, actions, "ValidationError", at=2)

    spy = Transactions(recorder.client, monkeypatch, invalid)

    with pytest.raises(OperationalError, match="append cancelled: ValidationError") as raised:
        store.append(numbered("invalid", 3))

    assert f"dynamodb://{table_of(store)}" in str(raised.value)
    assert len(spy.calls) == 1
    assert sleeps == []
    assert store.head() == 0


# -- the counter moving between a head read and the transaction -----------------------------------


def append_in_between(
    other: EventStore, events: list[Event], on_call: int = 1
) -> Callable[[int, list[Item]], None]:
    """A ``before`` hook: ``other`` appends ``events`` just before call ``on_call`` is sent."""

    def before(call: int, actions: list[Item]) -> None:
        if call == on_call:
            assert None not in other.append(events)

    return before


def test_an_append_that_loses_the_counter_race_lands_after_the_winner(
    open_dynamodb_store: Callable[[], EventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    winner, loser = open_dynamodb_store(), open_dynamodb_store()
    first, second = numbered("winner", 3), numbered("loser", 4)
    recorder = log_recorder(loser)
    sleeps: list[float] = []
    monkeypatch.setattr(recorder, "_sleep", sleeps.append)
    spy = Transactions(recorder.client, monkeypatch, append_in_between(winner, first))

    positions = loser.append(second)

    assert positions == [4, 5, 6, 7]
    assert spy.event_positions() == [[1, 2, 3, 4], [4, 5, 6, 7]]  # refused, then re-read
    assert sleeps == []  # the counter moving is not a conflict to back off from
    assert logged_ids(winner) == ids(first + second)
    assert [r.position for r in read_all(winner)] == list(range(1, 8))
    assert winner.head() == loser.head() == 7


def test_a_conditional_append_that_loses_the_counter_race_raises_head_moved(
    open_dynamodb_store: Callable[[], EventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    winner, loser = open_dynamodb_store(), open_dynamodb_store()
    assert loser.append(numbered("base", 2)) == [1, 2]
    head = loser.head()
    first = numbered("winner", 3)
    spy = Transactions(log_recorder(loser).client, monkeypatch, append_in_between(winner, first))

    with pytest.raises(HeadMoved) as raised:
        loser.append(numbered("decided", 4), expected_head=head)

    assert (raised.value.expected, raised.value.head) == (2, 5)
    assert len(spy.calls) == 1
    assert logged_ids(loser) == ids(numbered("base", 2) + first)
    assert loser.head() == 5


def test_a_conditional_batch_over_several_transactions_keeps_the_chunks_before_the_move(
    open_dynamodb_store: Callable[[], EventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documented: each chunk lands only right after the one before; HeadMoved keeps the
    chunks committed before the other writer."""
    winner, loser = open_dynamodb_store(), open_dynamodb_store()
    decided = numbered("decided", EVENTS_PER_TRANSACTION + 10)
    first = numbered("winner", 2)
    before = append_in_between(winner, first, on_call=2)
    Transactions(log_recorder(loser).client, monkeypatch, before)

    with pytest.raises(HeadMoved) as raised:
        loser.append(decided, expected_head=0)

    n = EVENTS_PER_TRANSACTION
    assert (raised.value.expected, raised.value.head) == (n, n + 2)
    assert logged_ids(loser) == ids(decided[:n] + first)
    assert [r.position for r in read_all(loser)] == list(range(1, n + 3))


def test_two_stores_appending_the_same_events_at_one_head_store_and_report_them_once(
    open_dynamodb_store: Callable[[], EventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = open_dynamodb_store(), open_dynamodb_store()
    events = numbered("same", 3)
    spy = Transactions(log_recorder(second).client, monkeypatch, append_in_between(first, events))

    positions = second.append(events)

    assert len(spy.calls) >= 1
    assert logged_ids(first) == ids(events)
    assert positions == [None, None, None]  # the first store appended them, not this one


# -- dedup by the dedup items' conditions --------------------------------------------------------


def test_events_another_store_stored_are_dropped_and_the_rest_appended_in_order(
    open_dynamodb_store: Callable[[], EventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier, later = open_dynamodb_store(), open_dynamodb_store()
    old = numbered("old", 4)
    assert earlier.append(old) == [1, 2, 3, 4]
    new = numbered("new", 4)
    batch = [new[0], old[2], new[1], old[0], old[1], new[2], new[3], old[3]]
    spy = Transactions(log_recorder(later).client, monkeypatch)

    positions = later.append(batch)

    assert positions == [5, None, 6, None, None, 7, 8, None]
    assert len(spy.calls) == 2  # refused by the dedup conditions, then the new ones only
    assert spy.event_positions() == [[5, 6, 7, 8, 9, 10, 11, 12], [5, 6, 7, 8]]
    assert logged_ids(earlier) == ids(old + new)
    assert [r.position for r in read_all(earlier)] == list(range(1, 9))
    assert later.parked_records() == []  # copies, not conflicts


def test_a_batch_of_stored_events_only_leaves_the_counter_where_it_was(
    open_dynamodb_store: Callable[[], EventStore],
) -> None:
    earlier, later = open_dynamodb_store(), open_dynamodb_store()
    events = numbered("again", 5)
    earlier.append(events)
    assert later.append(events[::-1]) == [None] * 5
    assert later.head() == 5
    assert later.append(numbered("next", 1)) == [6]
    assert logged_ids(later) == ids(events + numbered("next", 1))


def test_a_different_event_under_an_id_another_store_stored_is_parked_as_a_conflict(
    open_dynamodb_store: Callable[[], EventStore],
) -> None:
    earlier, later = open_dynamodb_store(), open_dynamodb_store()
    stored = label_set("same-id", status="PENDING")
    earlier.append([stored])
    changed = label_set("same-id", status="INVALID", reasoning="another payload")
    new = numbered("fresh", 2)

    assert later.append([new[0], changed, new[1]]) == [2, None, 3]

    assert [r.event for r in read_all(later)] == [stored, *new]
    (conflict,) = later.parked_records()
    assert conflict.origin == "conflict:ddb:same-id"
    assert "at position 1" in conflict.error
    assert msgspec.json.decode(conflict.payload, type=type(changed)) == changed
    assert later.append([changed]) == [None]  # parked once
    assert len(earlier.parked_records()) == 1


# -- reads never pass a gap ------------------------------------------------------------------


class HidingQueries:
    """A spy on ``client.query`` that hides the log's event at ``hidden`` from the first
    ``times`` bucket queries that would return it (a transaction not yet readable there)."""

    def __init__(
        self, client: Any, monkeypatch: pytest.MonkeyPatch, hidden: int, times: float
    ) -> None:
        self.real = client.query
        self.hidden = hidden
        self.times = times
        self.hid = 0
        monkeypatch.setattr(client, "query", self)

    def __call__(self, **arguments: Any) -> Any:
        response = self.real(**arguments)
        items = response.get("Items", [])
        bucket = arguments["ExpressionAttributeValues"][":pk"]["S"]
        if bucket.startswith("log#pos#") and self.hid < self.times:
            kept = [item for item in items if int(item["sk"]["N"]) != self.hidden]
            if len(kept) < len(items):
                self.hid += 1
                response = {**response, "Items": kept}
        return response


@pytest.mark.parametrize("hidden", [3, 10], ids=["inside", "last"])
def test_a_read_waits_for_a_committed_position_and_returns_the_contiguous_page(
    store: EventStore, monkeypatch: pytest.MonkeyPatch, hidden: int
) -> None:
    events = numbered("gap", 10)
    store.append(events)
    recorder = log_recorder(store)
    sleeps: list[float] = []
    monkeypatch.setattr(recorder, "_sleep", sleeps.append)
    spy = HidingQueries(recorder.client, monkeypatch, hidden=hidden, times=3)

    page = store.read(after=0, limit=100)

    assert spy.hid == 3
    assert len(sleeps) == 3
    assert [r.position for r in page] == list(range(1, 11))
    assert [r.event for r in page] == events


def test_a_read_that_stops_before_a_missing_position_does_not_wait_for_it(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = numbered("gap", 10)
    store.append(events)
    recorder = log_recorder(store)
    sleeps: list[float] = []
    monkeypatch.setattr(recorder, "_sleep", sleeps.append)
    HidingQueries(recorder.client, monkeypatch, hidden=5, times=math.inf)

    assert [r.position for r in store.read(after=0, to=4)] == [1, 2, 3, 4]
    assert [r.position for r in store.read(after=0, limit=4)] == [1, 2, 3, 4]
    assert [r.position for r in store.read(after=5)] == [6, 7, 8, 9, 10]
    assert sleeps == []


def test_a_position_that_never_becomes_readable_fails_the_read_after_the_gap_wait(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.append(numbered("gap", 10))
    recorder = log_recorder(store)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(recorder, "_sleep", sleep)
    monkeypatch.setattr(dynamodb_module, "GAP_WAIT_SECONDS", 0.3)
    HidingQueries(recorder.client, monkeypatch, hidden=4, times=math.inf)

    with pytest.raises(OperationalError) as raised:
        store.read(after=0)

    message = str(raised.value)
    assert f"dynamodb://{table_of(store)}" in message
    assert "position 4 of log is committed but was not readable" in message
    assert len(sleeps) >= 2


@pytest.fixture
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> int:
    """Buckets of 7 positions (in the layout and in the reader), so reads cross several."""
    monkeypatch.setattr(dynamodb_items, "BUCKET_SIZE", 7)
    monkeypatch.setattr(dynamodb_module, "BUCKET_SIZE", 7)
    return 7


def test_reads_across_bucket_boundaries_match_every_slice(
    store: EventStore, dynamodb_client: Any, small_buckets: int
) -> None:
    events = numbered("bucketed", 30)
    assert store.append(events) == list(range(1, 31))
    buckets = {bucket_key("log", position) for position in range(1, 31)}
    assert len(buckets) == 5  # positions 1-6, 7-13, 14-20, 21-27, 28-30
    for bucket in buckets:  # really stored that way
        assert raw_query(dynamodb_client, table_of(store), bucket)
    log = [(position, event) for position, event in enumerate(events, start=1)]

    def expected(after: int, to: int | None, limit: int) -> list[tuple[int, Event]]:
        return [(p, e) for p, e in log if after < p and (to is None or p <= to)][:limit]

    for after in range(0, 31):
        for to in [None, *range(after, 32)]:
            got = store.read(after=after, to=to, limit=1000)
            assert [(r.position, r.event) for r in got] == expected(after, to, 1000), (after, to)
        for limit in (1, 6, 7, 8, 14):
            got = store.read(after=after, limit=limit)
            assert [(r.position, r.event) for r in got] == expected(after, None, limit)
            got = store.read(after=after, to=after + 9, limit=limit)
            assert [(r.position, r.event) for r in got] == expected(after, after + 9, limit)
    for page_size in (1, 5, 7, 30):
        assert [r.event for r in store.iter_events(page_size=page_size)] == events


# -- a missing table, and the command line ---------------------------------------------------------


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, in its own process, with this process's (AWS) env."""
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200", "RECEIPT_EVENTS_DEBUG": ""},
    )


def test_opening_a_missing_table_names_the_command_that_creates_it(aws_clean: AwsEnv) -> None:
    with pytest.raises(MissingResource) as raised:
        open_store("dynamodb://nope")
    message = str(raised.value)
    assert "'nope' does not exist" in message
    assert "receipt-events store create-table --store dynamodb://nope" in message


def test_a_table_deleted_after_opening_names_the_command_that_creates_it(
    store: EventStore, dynamodb_client: Any
) -> None:
    store.append(numbered("before", 1))
    dynamodb_client.delete_table(TableName=table_of(store))
    fix = re.escape(f"receipt-events store create-table --store {store.url}")
    with pytest.raises(MissingResource, match=fix):
        store.append(numbered("after", 1))
    with pytest.raises(MissingResource, match=fix):
        store.read()


def test_a_command_on_a_missing_table_exits_2_naming_the_fix(aws_clean: AwsEnv) -> None:
    done = run_cli("status", "--store", "dynamodb://nope")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "receipt-events store create-table --store dynamodb://nope" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stdout == ""


def test_store_create_table_creates_once_then_says_it_exists(
    aws_clean: AwsEnv, dynamodb_client: Any
) -> None:
    url = "dynamodb://made-by-the-cli"

    created = run_cli("store", "create-table", "--store", url)
    assert created.returncode == 0, created.stderr
    assert "created the event store table made-by-the-cli" in created.stdout
    again = run_cli("store", "create-table", "--store", url)
    assert again.returncode == 0, again.stderr
    assert "the event store table made-by-the-cli exists" in again.stdout
    as_json = run_cli("store", "create-table", "--store", url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "store": url,
        "table": "made-by-the-cli",
        "created": False,
    }

    table = dynamodb_client.describe_table(TableName="made-by-the-cli")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    with open_store(url) as store:
        assert store.append(numbered("works", 2)) == [1, 2]


def test_store_create_table_refuses_a_table_with_another_key_schema(
    aws_clean: AwsEnv, dynamodb_client: Any
) -> None:
    dynamodb_client.create_table(
        TableName="someone-elses",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    done = run_cli("store", "create-table", "--store", "dynamodb://someone-elses")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "'someone-elses' exists but is not an event store table" in done.stderr
    assert "Traceback" not in done.stderr


def test_store_create_table_refuses_a_store_that_is_not_dynamodb(
    aws_clean: AwsEnv, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    done = run_cli("store", "create-table", "--store", url)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "is not a dynamodb:// store: only DynamoDB tables are created" in done.stderr
    assert not (tmp_path / "events.db").exists()


def test_status_ingest_and_log_on_a_table_made_by_the_cli(
    aws_clean: AwsEnv, tmp_path: Path
) -> None:
    url = "dynamodb://cli-events"
    assert run_cli("store", "create-table", "--store", url).returncode == 0
    status = run_cli("status", "--store", url, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == {
        "store": url,
        "head": 0,
        "parked": 0,
        "checkpoint": None,
        "lag": None,
    }
    stream = tmp_path / "stream.jsonl"
    stream.write_bytes(stream_input())

    ingested = run_cli("ingest", stream, "--store", url, "--json", "--batch-size", "2")
    assert ingested.returncode == 0, ingested.stderr
    summary = json.loads(ingested.stdout)
    counts = [summary[k] for k in ("records", "appended", "skipped", "parked", "duplicates")]
    assert counts == [8, 5, 1, 2, 0]
    again = json.loads(run_cli("ingest", stream, "--store", url, "--json").stdout)
    assert (again["appended"], again["duplicates"]) == (0, 7)

    log = run_cli("log", "--store", url, "--json")
    assert log.returncode == 0, log.stderr
    lines = [json.loads(line) for line in log.stdout.splitlines()]
    assert [line["position"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line["source"]["event_id"] for line in lines] == [
        "in-1",
        "in-2",
        "in-4",
        "in-5",
        "in-8",
    ]
    status = run_cli("status", "--store", url, "--json")
    assert (json.loads(status.stdout)["head"], json.loads(status.stdout)["parked"]) == (5, 2)
    with open_store(url) as store:
        assert [r.position for r in read_all(store)] == [1, 2, 3, 4, 5]
        assert len(store.parked_records()) == 2
        assert all(isinstance(record, ParkedRecord) for record in store.parked_records())
