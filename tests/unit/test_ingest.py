"""Ingest and redrive against the in-memory store: every record in exactly one bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

import receipt_events.ingest as ingest_module
from receipt_events.changes import ChangeError, Skipped
from receipt_events.events import PlaceChanged, ReceiptRemoved, WordLabelSet
from receipt_events.ingest import (
    IngestInterrupted,
    IngestSummary,
    RedriveSummary,
    classify,
    ingest,
    park_record,
    redrive,
)
from receipt_events.records import InputRecord, StreamRecord, read_input
from receipt_events.store import EventStore, ParkedRecord, open_store
from tests.unit.records_factory import (
    jsonl,
    make_record,
    sk_label,
    sk_line,
    sk_metadata,
    sk_place,
    sk_receipt,
    sk_run,
    sk_word,
    to_bytes,
    to_input,
)

PLACE = {"merchant_name": "Cafe", "place_id": "p1"}
RUN = {"lines_delta_prefix": "s3://b/l", "words_delta_prefix": "s3://b/w"}


@pytest.fixture
def store() -> Iterator[EventStore]:
    with open_store("memory://") as opened:
        yield opened


def _inputs(records: list[dict[str, Any] | bytes]) -> list[InputRecord]:
    return [to_input(r, f"test:{i}") for i, r in enumerate(records, start=1)]


def _event_ids(store: EventStore) -> list[str]:
    return [r.event.source.event_id for r in store.iter_events()]


def _mixed() -> dict[str, list[dict[str, Any] | bytes]]:
    return {
        "appended": [
            make_record("INSERT", sk=sk_place(), new_image=PLACE),
            make_record("INSERT", sk=sk_label("TOTAL"), new_image={"validation_status": "VALID"}),
            make_record("INSERT", sk=sk_run("r1"), new_image=RUN),
            make_record("REMOVE", sk=sk_word()),
            make_record("REMOVE", sk=sk_receipt(2)),
        ],
        "unchanged": [
            make_record(
                "MODIFY", sk=sk_metadata(), new_image={**PLACE, "x": 2}, old_image={**PLACE, "x": 1}
            ),
        ],
        "skipped": [
            make_record("INSERT", sk=sk_receipt(), new_image={}),
            make_record("MODIFY", sk=sk_line(), new_image={}),
            make_record("INSERT", sk=sk_word(), new_image={}),
            make_record("MODIFY", sk=sk_run("r1"), new_image={**RUN, "status": "DONE"}),
            make_record("INSERT", sk="IMAGE", new_image={}),
            make_record("INSERT", pk="LOCK#chroma", sk="LOCK", new_image={}),
            make_record("REMOVE", pk="LOCK#chroma", sk="LOCK"),
        ],
        "parked": [
            make_record("INSERT", sk=sk_place()),  # no NewImage
            make_record("INSERT", sk="RECEIPT#abc"),
            b"not json at all",
        ],
    }


def test_every_record_lands_in_exactly_one_bucket(store: EventStore) -> None:
    groups = _mixed()
    records = [r for group in groups.values() for r in group]
    summary = ingest(store, _inputs(records))
    assert summary == IngestSummary(
        records=16,
        appended=5,
        duplicates=0,
        unchanged=1,
        skipped=7,
        parked=3,
        skipped_by_kind={
            "RECEIPT": 1,
            "RECEIPT_LINE": 1,
            "RECEIPT_WORD": 1,
            "COMPACTION_RUN": 1,
            "IMAGE": 1,
            "LOCK": 2,
        },
        unchanged_by_kind={"RECEIPT_METADATA": 1},
        head=5,
    )
    parts = (summary.appended, summary.duplicates, summary.unchanged, summary.skipped)
    assert sum(parts) + summary.parked == summary.records
    assert _event_ids(store) == [r["eventID"] for r in groups["appended"]]  # type: ignore[index]
    assert [r.position for r in store.iter_events()] == [1, 2, 3, 4, 5]


def test_parked_records_keep_payload_origin_reason_and_identity(store: EventStore) -> None:
    no_image = make_record("INSERT", sk=sk_place(), event_id="bad-1", sequence_number="42")
    good = make_record("REMOVE", sk=sk_receipt())
    garbage = b"\x00\xffnot json"
    ingest(store, [to_input(good, "earlier:1")])
    ingest(store, _inputs([no_image, garbage]))
    first, second = store.parked_records()
    assert first == ParkedRecord(
        parked_id="bad-1",
        origin="test:1",
        error=(
            "INSERT of RECEIPT_PLACE has no NewImage "
            "(the stream must use NEW_AND_OLD_IMAGES or NEW_IMAGE)"
        ),
        payload=to_bytes(no_image),
        event_id="bad-1",
        sequence_number="42",
        log_head=1,
    )
    assert second.parked_id.startswith("sha256:")
    assert len(second.parked_id) == len("sha256:") + 64
    assert (second.origin, second.payload, second.event_id) == ("test:2", garbage, None)
    assert second.log_head == 1
    assert second.error == "not valid UTF-8 at byte 1"


def test_a_batch_with_duplicates_appends_only_new_ones(store: EventStore) -> None:
    a = make_record("REMOVE", sk=sk_receipt(1))
    b = make_record("REMOVE", sk=sk_receipt(2))
    c = make_record("REMOVE", sk=sk_receipt(3))
    bad = make_record("INSERT", sk=sk_place())
    first = ingest(store, _inputs([a, b, bad]))
    assert (first.appended, first.parked, first.duplicates, first.head) == (2, 1, 0, 2)
    # a redelivery: old records again, one repeated inside the batch, and one new one
    second = ingest(store, _inputs([a, b, c, a, bad, bad]))
    assert (second.records, second.appended, second.duplicates, second.parked) == (6, 1, 5, 0)
    assert second.head == 3
    assert _event_ids(store) == [a["eventID"], b["eventID"], c["eventID"]]
    assert len(store.parked_records()) == 1


def test_duplicates_within_one_fresh_batch(store: EventStore) -> None:
    a = make_record("REMOVE", sk=sk_receipt(1))
    summary = ingest(store, _inputs([a, a, a]))
    assert (summary.appended, summary.duplicates) == (1, 2)
    assert _event_ids(store) == [a["eventID"]]


def test_batch_size_smaller_than_the_input(store: EventStore) -> None:
    records = [make_record("REMOVE", sk=sk_receipt(n)) for n in range(1, 8)]
    skipped = make_record("INSERT", sk=sk_receipt(1), new_image={})
    inputs = _inputs([*records[:3], skipped, *records[3:]])
    seen: list[int] = []
    summary = ingest(store, inputs, batch_size=2, progress=seen.append)
    assert (summary.records, summary.appended, summary.skipped, summary.head) == (8, 7, 1, 7)
    # a flush every two events (a skipped record is counted by the next flush), then the last
    assert seen == [2, 5, 7, 8]
    assert _event_ids(store) == [r["eventID"] for r in records]
    assert [r.position for r in store.iter_events()] == list(range(1, 8))


def test_origin_names_the_line_of_a_json_lines_file(store: EventStore) -> None:
    records = [make_record("REMOVE", sk=sk_receipt(n)) for n in range(1, 21)]
    data = jsonl(records).replace(to_bytes(records[16]), b'{"eventID": "broken-17"')
    ingest(store, read_input(data, "stream.jsonl"))
    (parked,) = store.parked_records()
    assert (parked.origin, parked.payload) == ("stream.jsonl:17", b'{"eventID": "broken-17"')
    assert parked.event_id is None  # not readable from broken JSON: parked by its bytes
    assert len(_event_ids(store)) == 19


def test_batch_size_one_with_parked_records(store: EventStore) -> None:
    good = [make_record("REMOVE", sk=sk_receipt(n)) for n in range(1, 4)]
    bad = [make_record("INSERT", sk=sk_place(n)) for n in range(1, 3)]
    summary = ingest(store, _inputs([good[0], bad[0], good[1], bad[1], good[2]]), batch_size=1)
    assert (summary.appended, summary.parked, summary.head) == (3, 2, 3)
    assert [p.log_head for p in store.parked_records()] == [1, 2]


def test_records_read_from_json_lines_ingest_in_order(store: EventStore) -> None:
    records = [make_record("REMOVE", sk=sk_line(1, n)) for n in range(1, 6)]
    data = jsonl(records[:2]) + b"{broken\n" + jsonl(records[2:])
    summary = ingest(store, read_input(data, "s.jsonl"))
    assert (summary.appended, summary.parked) == (5, 1)
    assert _event_ids(store) == [r["eventID"] for r in records]
    (parked,) = store.parked_records()
    assert (parked.origin, parked.payload) == ("s.jsonl:3", b"{broken")


def test_an_unexpected_exception_is_parked_not_raised(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(record: StreamRecord) -> Skipped:
        raise RuntimeError("boom")

    monkeypatch.setattr(ingest_module, "detect", explode)
    record = make_record("REMOVE", sk=sk_receipt())
    outcome = classify(to_input(record))
    assert isinstance(outcome, ParkedRecord)
    assert outcome.error == "internal error (RuntimeError): boom"
    assert ingest(store, [to_input(record)]).parked == 1


def test_a_store_failure_interrupts_with_how_far_input_is_stored(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [make_record("REMOVE", sk=sk_receipt(n)) for n in range(1, 6)]
    real_append = store.append_outcomes
    calls = {"n": 0}

    def failing_append(events: Any) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_append(events)

    monkeypatch.setattr(store, "append_outcomes", failing_append)
    with pytest.raises(IngestInterrupted) as caught:
        ingest(store, _inputs(records), batch_size=2)
    assert caught.value.stored_through == 2
    assert isinstance(caught.value.cause, OSError)
    assert str(caught.value) == "the event store failed after 2 records: disk full"
    assert _event_ids(store) == [records[0]["eventID"], records[1]["eventID"]]


# -- redrive -------------------------------------------------------------------------------------


def _fail_once(monkeypatch: pytest.MonkeyPatch, event_ids: set[str]) -> None:
    """Make detect fail (as a parser bug would) the first time it sees each of these records."""
    real = ingest_module.detect
    failed: set[str] = set()

    def flaky(record: StreamRecord) -> Any:
        event_id = record.source.event_id
        if event_id in event_ids and event_id not in failed:
            failed.add(event_id)
            raise ChangeError("parser bug")
        return real(record)

    monkeypatch.setattr(ingest_module, "detect", flaky)


def test_redrive_appends_a_record_that_now_parses_and_resolves_it(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = make_record("REMOVE", sk=sk_receipt(1))
    record = make_record("INSERT", sk=sk_place(), new_image=PLACE, event_id="flaky-1")
    _fail_once(monkeypatch, {"flaky-1"})
    summary = ingest(store, _inputs([before, record]))
    assert (summary.appended, summary.parked) == (1, 1)
    assert [p.parked_id for p in store.parked_records()] == ["flaky-1"]

    result = redrive(store)
    assert result == RedriveSummary(retried=1, appended=1)
    assert store.parked_records() == []
    assert _event_ids(store) == [before["eventID"], "flaky-1"]
    event = store.read(after=1)[0]
    assert event.position == 2
    assert isinstance(event.event, PlaceChanged)
    assert event.event.merchant_name == "Cafe"
    # a second redrive has nothing left to do
    assert redrive(store) == RedriveSummary()


def test_redrive_of_a_parked_record_with_a_valid_payload(store: EventStore) -> None:
    record = make_record("REMOVE", sk=sk_receipt(5), event_id="parked-ok")
    parked = park_record(to_input(record, "lambda:Records[0]"), "synthetic: store was down")
    assert parked.parked_id == "parked-ok"
    assert parked.sequence_number == record["dynamodb"]["SequenceNumber"]
    assert store.park([parked]) == [True]
    assert store.park([parked]) == [False]

    result = redrive(store)
    assert (result.retried, result.appended, result.still_parked) == (1, 1, 0)
    assert store.parked_records() == []
    (recorded,) = store.read()
    assert isinstance(recorded.event, ReceiptRemoved)
    assert recorded.event.receipt_id == 5


def test_redrive_of_an_already_logged_record_is_a_duplicate(store: EventStore) -> None:
    record = make_record("REMOVE", sk=sk_receipt(5))
    ingest(store, [to_input(record)])
    store.park([park_record(to_input(record), "synthetic")])
    result = redrive(store)
    assert (result.duplicates, result.appended) == (1, 0)
    assert store.head() == 1
    assert store.parked_records() == []


def test_redrive_of_a_record_that_now_skips_or_is_unchanged(store: EventStore) -> None:
    skipped = make_record("INSERT", sk=sk_receipt(), new_image={})
    unchanged = make_record("MODIFY", sk=sk_place(), new_image=PLACE, old_image=PLACE)
    store.park([park_record(to_input(r), "synthetic") for r in (skipped, unchanged)])
    result = redrive(store)
    assert (result.retried, result.skipped, result.unchanged, result.appended) == (2, 1, 1, 0)
    assert store.parked_records() == []
    assert store.head() == 0


def test_redrive_supersedes_a_record_older_than_a_later_logged_change(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_record(
        "MODIFY", sk=sk_label(), new_image={"validation_status": "PENDING"}, sequence_number="100"
    )
    new = make_record(
        "MODIFY", sk=sk_label(), new_image={"validation_status": "VALID"}, sequence_number="200"
    )
    _fail_once(monkeypatch, {old["eventID"]})
    assert ingest(store, [to_input(old)]).parked == 1
    assert ingest(store, [to_input(new)]).appended == 1

    result = redrive(store)
    assert result == RedriveSummary(retried=1, superseded=1)
    assert store.parked_records() == []
    assert _event_ids(store) == [new["eventID"]]
    (recorded,) = store.read()
    assert isinstance(recorded.event, WordLabelSet)
    assert recorded.event.validation_status == "VALID"


def test_redrive_appends_an_older_record_when_only_other_items_changed_later(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_record("MODIFY", sk=sk_label("A"), new_image={}, sequence_number="100")
    other = make_record("MODIFY", sk=sk_label("B"), new_image={}, sequence_number="200")
    _fail_once(monkeypatch, {old["eventID"]})
    ingest(store, [to_input(old)])
    ingest(store, [to_input(other)])
    assert redrive(store).appended == 1
    assert _event_ids(store) == [other["eventID"], old["eventID"]]


def test_redrive_supersedes_against_a_later_change_in_the_same_batch(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_record(
        "MODIFY", sk=sk_place(), new_image={"merchant_name": "Old"}, sequence_number="100"
    )
    new = make_record(
        "MODIFY", sk=sk_place(), new_image={"merchant_name": "New"}, sequence_number="200"
    )
    _fail_once(monkeypatch, {old["eventID"]})
    summary = ingest(store, _inputs([old, new]))
    assert (summary.parked, summary.appended) == (1, 1)
    result = redrive(store)
    assert result.superseded == 1
    assert _event_ids(store) == [new["eventID"]]


def test_still_parked_records_stay_listed(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = make_record("INSERT", sk=sk_place(), event_id="broken-1")
    fixable = make_record("REMOVE", sk=sk_receipt(), event_id="fixable-1")
    _fail_once(monkeypatch, {"fixable-1"})
    ingest(store, _inputs([broken, fixable]))
    assert [p.parked_id for p in store.parked_records()] == ["broken-1", "fixable-1"]

    result = redrive(store)
    assert (result.retried, result.appended, result.still_parked) == (2, 1, 1)
    assert result.errors == {
        "broken-1": "INSERT of RECEIPT_PLACE has no NewImage "
        "(the stream must use NEW_AND_OLD_IMAGES or NEW_IMAGE)"
    }
    (still,) = store.parked_records()
    assert (still.parked_id, still.origin) == ("broken-1", "test:1")
    assert redrive(store) == RedriveSummary(retried=1, still_parked=1, errors=result.errors)


def test_redrive_only_the_named_parked_records(store: EventStore) -> None:
    records = [make_record("REMOVE", sk=sk_receipt(n), event_id=f"p-{n}") for n in (1, 2, 3)]
    store.park([park_record(to_input(r), "synthetic") for r in records])
    result = redrive(store, ["p-2"])
    assert (result.retried, result.appended) == (1, 1)
    assert [p.parked_id for p in store.parked_records()] == ["p-1", "p-3"]
    assert _event_ids(store) == ["p-2"]


def test_parked_record_survives_encoding(store: EventStore) -> None:
    # bytes that are not UTF-8 must come back exactly
    payload = bytes(range(256))
    store.park([park_record(InputRecord("bin:1", payload), "not json")])
    (parked,) = store.parked_records()
    assert parked.payload == payload
    assert msgspec.json.decode(msgspec.json.encode(parked), type=ParkedRecord) == parked
