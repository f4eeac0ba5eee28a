"""Property: however a history (with redeliveries) is chunked into ingests, the log is the same.

The same events in the same order at the same positions, and the same parked records: the
log depends on the stream, not on how a Lambda happened to batch it or a file was split.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from receipt_events.ingest import ingest
from receipt_events.records import InputRecord, read_input
from receipt_events.store import EventStore, open_store
from synthetic.history import HistoryConfig, corrupt_lines, generate_history, to_jsonl

_histories: dict[tuple[int, int, int], list[InputRecord]] = {}


def history(seed: int, receipts: int, corrupt: int) -> list[InputRecord]:
    key = (seed, receipts, corrupt)
    if key not in _histories:
        config = HistoryConfig(
            seed=seed,
            receipts=receipts,
            lines_per_receipt=(2, 4),
            words_per_line=(1, 3),
            redelivery_rate=0.15,
        )
        data = to_jsonl(generate_history(config).records)
        if corrupt:
            data = corrupt_lines(data, corrupt, seed)
        _histories[key] = read_input(data, f"history-{seed}")
    return _histories[key]


def log_of(store: EventStore) -> list[tuple[int, object]]:
    return [(recorded.position, recorded.event) for recorded in store.iter_events(page_size=97)]


def parked_of(store: EventStore) -> list[tuple[str, str]]:
    return [(record.parked_id, record.error) for record in store.parked_records()]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    receipts=st.integers(1, 3),
    corrupt=st.integers(0, 3),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    batch_sizes=st.lists(st.integers(1, 50), min_size=1, max_size=4),
)
def test_any_chunking_gives_the_same_log(
    seed: int,
    receipts: int,
    corrupt: int,
    cuts: list[int],
    batch_sizes: list[int],
) -> None:
    records = history(seed, receipts, corrupt)
    boundaries = sorted({cut % (len(records) + 1) for cut in cuts} | {0, len(records)})
    chunks = [records[a:b] for a, b in itertools.pairwise(boundaries)]

    whole = open_store("memory://")
    expected_summary = ingest(whole, records)
    expected_log = log_of(whole)

    chunked = open_store("memory://")
    totals = {"appended": 0, "duplicates": 0, "parked": 0, "records": 0}
    for index, chunk in enumerate(chunks):
        summary = ingest(chunked, chunk, batch_size=batch_sizes[index % len(batch_sizes)])
        for key in totals:
            totals[key] += getattr(summary, key)

    assert log_of(chunked) == expected_log
    assert parked_of(chunked) == parked_of(whole)
    assert totals["appended"] == expected_summary.appended == len(expected_log)
    assert totals["records"] == len(records)
    # a record stored once is a duplicate everywhere else, whatever the chunking
    assert totals["appended"] + totals["duplicates"] + totals["parked"] == (
        expected_summary.appended + expected_summary.duplicates + expected_summary.parked
    )


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 10_000), max_size=5))
def test_chunked_ingest_into_sqlite_equals_one_pass(seed: int, cuts: list[int]) -> None:
    records = history(seed, 2, 1)
    boundaries = sorted({cut % (len(records) + 1) for cut in cuts} | {0, len(records)})
    with tempfile.TemporaryDirectory() as scratch:
        one = open_store(f"sqlite:///{Path(scratch) / 'one.db'}")
        ingest(one, records)
        many = open_store(f"sqlite:///{Path(scratch) / 'many.db'}")
        for a, b in itertools.pairwise(boundaries):
            ingest(many, records[a:b], batch_size=7)
            ingest(many, records[a:b], batch_size=13)  # and each chunk redelivered whole
        assert log_of(many) == log_of(one)
        assert parked_of(many) == parked_of(one)
        one.close()
        many.close()
