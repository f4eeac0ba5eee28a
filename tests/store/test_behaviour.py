"""The event store's contract (docs/event-store.md), run on every backend: memory, SQLite and
PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import msgspec
import pytest

from receipt_events.events import Event
from receipt_events.ingest import ingest
from receipt_events.records import read_input
from receipt_events.store import Conflict, EventStore, ParkedResolved, Recorded
from receipt_events.store import event_store as event_store_module
from tests.store.helpers import (
    event_ids,
    label_set,
    logged_events,
    numbered,
    one_of_each,
    parked,
    read_all,
    stream_input,
)

OpenStore = Callable[[], EventStore]


def append_all(store: EventStore, events: list[Event]) -> list[int]:
    """Append events that are all new; return their positions (asserting none was a duplicate)."""
    positions = store.append(events)
    assert None not in positions, positions
    return [p for p in positions if p is not None]


def assert_strictly_increasing(positions: list[int]) -> None:
    assert all(isinstance(p, int) and p > 0 for p in positions), positions
    assert all(a < b for a, b in itertools.pairwise(positions)), positions


# -- empty store, positions, head --------------------------------------------------------------


def test_empty_store(store: EventStore) -> None:
    assert store.head() == 0
    assert store.read() == []
    assert store.read(after=0, to=10, limit=1) == []
    assert list(store.iter_events()) == []
    assert store.parked_records() == []


def test_append_nothing(store: EventStore) -> None:
    assert store.append([]) == []
    assert store.head() == 0
    append_all(store, numbered("e", 2))
    assert store.append([]) == []
    assert len(read_all(store)) == 2


def test_append_returns_strictly_increasing_positions(store: EventStore) -> None:
    positions: list[int] = []
    for batch in range(5):
        events = numbered(f"b{batch}", batch + 1)  # batches of 1..5 events
        batch_positions = append_all(store, events)
        assert len(batch_positions) == len(events)
        positions += batch_positions
        assert store.head() == positions[-1]
    assert_strictly_increasing(positions)
    assert [r.position for r in read_all(store)] == positions


def test_positions_are_returned_in_input_order(store: EventStore) -> None:
    events = numbered("e", 6)
    positions = append_all(store, events)
    by_position = {r.position: r.event for r in read_all(store)}
    assert [by_position[p] for p in positions] == events


# -- reading: read(after, to, limit) and iter_events(page_size) ----------------------------------


@pytest.fixture
def seven(store: EventStore) -> list[Recorded]:
    """A store holding seven events appended in three batches; the expected log."""
    events = numbered("r", 7)
    positions = []
    for batch in (events[:3], events[3:4], events[4:]):
        positions += append_all(store, batch)
    return [Recorded(p, e) for p, e in zip(positions, events, strict=True)]


def expected_slice(
    log: list[Recorded], after: int, to: int | None, limit: int | None = None
) -> list[Recorded]:
    selected = [r for r in log if r.position > after and (to is None or r.position <= to)]
    return selected if limit is None else selected[:limit]


def boundaries(log: list[Recorded]) -> list[int]:
    """0, every position, one between (where the positions have a gap), and past the head."""
    positions = [r.position for r in log]
    head = positions[-1]
    return sorted({0, *positions, *(p - 1 for p in positions), head + 1, head + 100})


def test_read_every_slice(store: EventStore, seven: list[Recorded]) -> None:
    head = store.head()
    assert head == seven[-1].position
    points = boundaries(seven)
    checked = 0
    for after in points:
        for to in [None, *points]:
            for limit in (1, 2, 3, 6, 7, 8, 1000):
                got = store.read(after=after, to=to, limit=limit)
                assert got == expected_slice(seven, after, to, limit), (after, to, limit)
                checked += 1
    assert checked > 500


def test_read_edges(store: EventStore, seven: list[Recorded]) -> None:
    head = store.head()
    assert store.read() == seven  # defaults: from the start, everything (under the page size)
    assert store.read(after=head) == []
    assert store.read(after=head, to=head + 10) == []
    assert store.read(after=seven[4].position, to=seven[2].position) == []  # to < after
    assert store.read(after=seven[3].position, to=seven[3].position) == []  # to == after
    assert store.read(to=0) == []
    assert store.read(limit=1) == seven[:1]
    assert store.read(after=seven[-2].position, limit=1) == seven[-1:]
    assert store.read(after=seven[0].position, to=seven[1].position) == seven[1:2]


def test_iter_events_every_slice_and_page_size(store: EventStore, seven: list[Recorded]) -> None:
    points = boundaries(seven)
    for page_size in (1, 2, 3, 6, 7, 8, 1000):
        assert list(store.iter_events(page_size=page_size)) == seven, page_size
        for after in points:
            for to in [None, *points]:
                got = list(store.iter_events(after=after, to=to, page_size=page_size))
                assert got == expected_slice(seven, after, to), (after, to, page_size)


def test_iter_events_reads_page_by_page(
    store: EventStore, seven: list[Recorded], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int | None, int]] = []
    read = store.read

    def spy(*, after: int = 0, to: int | None = None, limit: int = 1000) -> list[Recorded]:
        calls.append((after, to, limit))
        return read(after=after, to=to, limit=limit)

    monkeypatch.setattr(store, "read", spy)
    assert list(store.iter_events(page_size=3)) == seven
    # pages of 3, 3, 1: each page resumes after the last position of the one before
    assert calls == [
        (0, None, 3),
        (seven[2].position, None, 3),
        (seven[5].position, None, 3),
    ]


def test_iter_events_is_lazy(store: EventStore, seven: list[Recorded]) -> None:
    """A consumer can stop early; pages it does not reach are not read."""
    iterator = store.iter_events(page_size=2)
    assert next(iterator) == seven[0]
    later = numbered("late", 1)
    (position,) = append_all(store, later)
    # the page being consumed was read before the append; the next pages see it
    assert list(iterator) == [*seven[1:], Recorded(position, later[0])]


# -- idempotent append -----------------------------------------------------------------------


def test_appending_the_same_events_again_stores_nothing(store: EventStore) -> None:
    events = one_of_each("x") + numbered("n", 5)
    first = append_all(store, events)
    log_before = read_all(store)
    head = store.head()

    assert store.append(events) == [None] * len(events)
    assert store.append(list(reversed(events))) == [None] * len(events)
    for event in events:
        assert store.append([event]) == [None]

    assert store.head() == head == first[-1]
    assert read_all(store) == log_before


def test_a_batch_mixing_duplicates_and_new_events_stores_only_the_new(store: EventStore) -> None:
    old = numbered("old", 4)
    append_all(store, old)
    head = store.head()
    new = numbered("new", 4)
    batch = [new[0], old[2], new[1], old[0], old[1], new[2], new[3], old[3]]

    positions = store.append(batch)

    is_new = [event in new for event in batch]
    assert [p is not None for p in positions] == is_new
    stored = [p for p in positions if p is not None]
    assert_strictly_increasing([head, *stored])
    assert logged_events(store) == old + new  # only the new ones, in input order
    assert [r.position for r in read_all(store)][-4:] == stored


def test_a_duplicate_inside_one_batch_is_stored_once(store: EventStore) -> None:
    a, b, c = numbered("d", 3)
    positions = store.append([a, b, a, c, a, b])
    assert [p is None for p in positions] == [False, False, True, False, True, True]
    assert_strictly_increasing([p for p in positions if p is not None])
    assert logged_events(store) == [a, b, c]


def test_the_stream_event_id_is_the_identity_first_write_wins(store: EventStore) -> None:
    """A different event under a stored eventID is not appended: it is parked as a conflict
    (once), naming where the stored one is; the first one stays in the log."""
    first = label_set("same-id", status="PENDING")
    second = label_set("same-id", status="INVALID", reasoning="a different payload")
    position, repeated = store.append([first, second])
    assert position == store.head()
    assert position is not None
    assert repeated is None
    assert store.append([second]) == [None]
    assert logged_events(store) == [first]
    (conflict,) = store.parked_records()
    assert conflict.origin == "conflict:ddb:same-id"
    assert f"at position {position}" in conflict.error
    assert msgspec.json.decode(conflict.payload, type=type(second)) == second


def test_append_outcomes_tell_copies_from_conflicts(store: EventStore) -> None:
    a, b = numbered("o", 2)
    changed = label_set("o-1", status="INVALID")  # numbered() names its events <prefix>-<n>
    assert changed.originator_id in {a.originator_id, b.originator_id}
    (pa, pb) = append_all(store, [a, b])
    outcomes = store.append_outcomes([a, changed, b, changed])
    assert outcomes[0] is None
    assert outcomes[2] is None
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, Conflict)]
    assert len(conflicts) == 2
    assert {conflict.position for conflict in conflicts} <= {pa, pb}
    assert conflicts[0].stored_hash != conflicts[0].content_hash
    assert store.parked_records() == []  # append_outcomes leaves parking to its caller


def test_events_of_one_item_keep_input_order(store: EventStore) -> None:
    """One label changed again and again, across and within batches, among other items."""
    statuses = ["NONE", "PENDING", "VALID", "INVALID", "NEEDS_REVIEW", "VALID", "PENDING"]
    item_events = [
        label_set(f"item-{i}", sequence=i, status=status) for i, status in enumerate(statuses)
    ]
    others = numbered("other", len(statuses))
    batches = [
        [others[0], item_events[0], item_events[1], others[1]],
        [item_events[2]],
        [others[2], others[3], item_events[3], item_events[4], item_events[5]],
        [item_events[6], *others[4:]],
    ]
    for batch in batches:
        append_all(store, batch)
    log = logged_events(store)
    assert log == [event for batch in batches for event in batch]
    same_item = [e for e in log if (e.pk, e.sk) == (item_events[0].pk, item_events[0].sk)]
    assert same_item == item_events
    assert [e.source.sequence_number for e in same_item] == sorted(
        e.source.sequence_number for e in same_item
    )


# -- encoding --------------------------------------------------------------------------------


def test_decoded_events_equal_the_appended_ones_exactly(store: EventStore) -> None:
    events = one_of_each("exact")
    positions = append_all(store, events)
    log = read_all(store)
    assert [r.position for r in log] == positions
    for recorded, event in zip(log, events, strict=True):
        assert type(recorded.event) is type(event)
        assert recorded.event == event
        assert msgspec.json.encode(recorded.event) == msgspec.json.encode(event)
        assert type(recorded.event.source.approximate_creation_date_time) is type(
            event.source.approximate_creation_date_time
        )
    assert [type(e).__name__ for e in logged_events(store)] == [
        "PlaceChanged",
        "PlaceRemoved",
        "WordLabelSet",
        "WordLabelRemoved",
        "EmbeddingsPublished",
        "ReceiptRemoved",
        "LineRemoved",
        "WordRemoved",
    ]


# -- restarts --------------------------------------------------------------------------------


def test_reopening_the_store_keeps_everything_and_still_deduplicates(
    open_test_store: OpenStore,
) -> None:
    events = one_of_each("keep") + numbered("keep-n", 5)
    first = open_test_store()
    positions = append_all(first, events)
    first.park([parked("p1"), parked("p2")])
    first.resolve_parked([ParkedResolved(parked_id="p1", outcome="appended", position=3)])
    log = read_all(first)
    first.close()

    second = open_test_store()
    assert read_all(second) == log
    assert second.head() == positions[-1]
    assert second.parked_records() == [parked("p2")]
    assert second.append(events) == [None] * len(events)  # dedup across the restart
    assert second.park([parked("p1"), parked("p2")]) == [False, False]
    more = numbered("after-restart", 2)
    later = append_all(second, more)
    assert later[0] > positions[-1]
    second.close()

    third = open_test_store()
    assert logged_events(third) == events + more
    assert third.append(events + more) == [None] * (len(events) + len(more))
    assert third.head() == later[-1]


# -- parked records --------------------------------------------------------------------------


def test_parking_is_idempotent_and_keeps_order(store: EventStore) -> None:
    r1, r2, r3 = parked("p1"), parked("p2", error="other"), parked("p3")
    assert store.park([r1, r2]) == [True, True]
    assert store.park([r2, r3, r1]) == [False, True, False]
    assert store.park([r3, r3]) == [False, False]
    assert store.parked_records() == [r1, r2, r3]
    # a redelivered bad record (same identity, even with a new error) stays parked once
    assert store.park([parked("p1", error="a later error")]) == [False]
    assert store.parked_records() == [r1, r2, r3]
    # parked records live apart from the log
    assert store.head() == 0
    assert read_all(store) == []


def test_a_batch_repeating_a_parked_record_parks_it_once(store: EventStore) -> None:
    r1, r2 = parked("p1"), parked("p2")
    assert store.park([r1, r2, r1]) == [True, True, False]
    assert store.parked_records() == [r1, r2]


def test_resolved_records_disappear_and_order_is_kept(store: EventStore) -> None:
    records = [parked(f"p{i}") for i in range(5)]
    store.park(records)
    store.resolve_parked([ParkedResolved(parked_id="p1", outcome="appended", position=1)])
    assert store.parked_records() == [records[0], *records[2:]]
    store.resolve_parked(
        [
            ParkedResolved(parked_id="p3", outcome="superseded"),
            ParkedResolved(parked_id="p1", outcome="duplicate"),  # resolving again: no-op
            ParkedResolved(parked_id="p0", outcome="skipped"),
        ]
    )
    assert store.parked_records() == [records[2], records[4]]
    # a resolved record that is redelivered is not parked again
    assert store.park([records[1], records[3]]) == [False, False]
    assert store.parked_records() == [records[2], records[4]]
    store.resolve_parked([])
    store.resolve_parked(
        [ParkedResolved(parked_id=r.parked_id, outcome="unchanged") for r in records]
    )
    assert store.parked_records() == []


def test_parked_records_are_read_in_pages(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [parked(f"p{i}") for i in range(7)]
    store.park(records)
    store.resolve_parked([ParkedResolved(parked_id="p5", outcome="appended")])
    monkeypatch.setattr(event_store_module, "DEFAULT_PAGE_SIZE", 2)
    assert store.parked_records() == records[:5] + records[6:]


# -- the ingest path -------------------------------------------------------------------------


def test_ingesting_the_same_input_twice_appends_once(store: EventStore) -> None:
    data = stream_input()
    first = ingest(store, read_input(data, "stream.jsonl"), batch_size=2)
    assert (first.records, first.appended, first.skipped, first.parked, first.duplicates) == (
        8,
        5,
        1,
        2,
        0,
    )
    log = read_all(store)
    parked_records = store.parked_records()
    assert event_ids([r.event for r in log]) == ["in-1", "in-2", "in-4", "in-5", "in-8"]
    assert first.head == store.head() == log[-1].position
    assert len(parked_records) == 2

    second = ingest(store, read_input(data, "stream.jsonl"), batch_size=3)
    assert second.appended == 0
    assert second.parked == 0
    assert second.duplicates == first.appended + first.parked
    assert second.skipped == first.skipped
    assert second.head == first.head
    assert read_all(store) == log
    assert store.parked_records() == parked_records
