"""Coalescing and write economy: what reaches Chroma, counted per call.

Two witnesses for every claim: the ``on_write`` hook of ``catch_up`` (operation, collection,
records per Chroma call) and a spy on ``Collection`` itself (what really reached Chroma,
and whether embeddings were sent with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from tests.projection.helpers import (
    ChromaCalls,
    Log,
    Writes,
    checkpoint,
    metadatas,
    project,
    records,
    word_id,
    word_meta,
)

W11 = word_id(1, 1)


def seeded(log: Log, snap: Path) -> None:
    """Receipt 1 with 2 lines and 3 words, a place and one label, already projected."""
    log.add(
        log.run(
            "run-1",
            lines={1: "TOTAL 12.50", 2: "THANK YOU"},
            words={(1, 1): "TOTAL", (1, 2): "12.50", (2, 1): "THANK"},
        ),
        log.place(merchant_name="Shop"),
        log.label(1, 2, "AMOUNT", "VALID"),
    )
    project(log.store, snap, log.deltas)


def test_a_new_receipt_is_one_upsert_per_collection(
    log: Log, snap: Path, writes: Writes, chroma_calls: ChromaCalls
) -> None:
    log.add(
        log.place(merchant_name="Shop"),
        log.run("run-1", lines={1: "A", 2: "B"}, words={(1, 1): "A", (1, 2): "B", (2, 1): "C"}),
        log.label(1, 1, "TOTAL", "VALID"),
        log.place(merchant_name="Shop 2"),
    )
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert writes == [("upsert", "lines", 2), ("upsert", "words", 3)]
    assert chroma_calls == [("upsert", "lines", 2, True), ("upsert", "words", 3, True)]
    assert (result.added, result.updated, result.deleted, result.records_written) == (5, 0, 0, 5)


def test_many_label_changes_to_one_word_in_one_batch_are_one_metadata_update(
    log: Log, snap: Path, writes: Writes, chroma_calls: ChromaCalls
) -> None:
    seeded(log, snap)
    chroma_calls.clear()
    log.add(
        log.label(1, 1, "TOTAL", "PENDING", by="model:v1", at="2024-01-01T00:00:00+00:00"),
        log.label(1, 1, "TOTAL", "VALID", at="2024-01-02T00:00:00+00:00"),
        log.label(1, 1, "TAX", "PENDING", by="model:v2", at="2024-01-03T00:00:00+00:00"),
        log.label(1, 1, "TAX", "INVALID"),
        log.label(1, 1, "DATE", "NEEDS_REVIEW"),
        log.unlabel(1, 1, "DATE"),
        log.label(1, 1, "AMOUNT", "PENDING", by="model:v3", at="2024-01-04T00:00:00+00:00"),
        log.label(1, 1, "AMOUNT", "VALID", at="2024-01-05T00:00:00+00:00"),
        log.label(1, 1, "TOTAL", "INVALID"),
        log.label(1, 1, "TOTAL", "VALID", at="2024-01-06T00:00:00+00:00"),
    )
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert writes == [("update", "words", 1)]
    assert chroma_calls == [("update", "words", 1, False)]
    assert (result.applied, result.updated, result.records_written) == (10, 1, 1)
    assert metadatas(snap)["words"][W11] == {
        **word_meta("run-1", 1, 1, "TOTAL"),
        "merchant_name": "Shop",
        "valid_labels": ["AMOUNT", "TOTAL"],
        "invalid_labels": ["TAX"],
        "label_status": "validated",
        "label_validated_at": "2024-01-06T00:00:00+00:00",
    }


def test_a_batch_whose_changes_cancel_out_writes_nothing(
    log: Log, snap: Path, writes: Writes, chroma_calls: ChromaCalls
) -> None:
    seeded(log, snap)
    before = records(snap)
    chroma_calls.clear()
    positions = log.add(
        log.label(1, 1, "TOTAL", "VALID"),
        log.unlabel(1, 1, "TOTAL"),
        log.label(1, 2, "AMOUNT", "INVALID"),
        log.label(1, 2, "AMOUNT", "VALID"),  # back to what it was (same timestamp: none)
        log.place(merchant_name="Somewhere Else", address="2 Other St"),
        log.place(merchant_name="Shop"),
        log.unplace("RECEIPT_METADATA"),  # never existed
        log.remove_word(7, 7),  # never existed
    )
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert writes == []
    assert chroma_calls == []
    assert (result.applied, result.records_written, result.to_position) == (8, 0, positions[-1])
    assert checkpoint(snap) == (positions[-1], None)
    assert records(snap) == before


def test_metadata_only_changes_never_resend_embeddings(
    log: Log, snap: Path, writes: Writes, chroma_calls: ChromaCalls
) -> None:
    seeded(log, snap)
    chroma_calls.clear()
    log.add(
        log.place(merchant_name="New Shop", phone_number="555"),
        log.label(2, 1, "TOTAL", "PENDING", by="m"),
        log.unlabel(1, 2, "AMOUNT"),
    )
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert writes == [("update", "lines", 2), ("update", "words", 3)]
    assert chroma_calls == [("update", "lines", 2, False), ("update", "words", 3, False)]
    assert (result.added, result.updated, result.deleted) == (0, 5, 0)


def test_only_records_whose_vector_changed_are_upserted(
    log: Log, snap: Path, writes: Writes, chroma_calls: ChromaCalls
) -> None:
    seeded(log, snap)
    chroma_calls.clear()
    # a re-run with one word's vector and the place changed in the same batch
    log.add(log.run("run-2", words={(1, 1): "TOTAL"}), log.place(merchant_name="Other"))
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert writes == [("update", "lines", 2), ("upsert", "words", 1), ("update", "words", 2)]
    assert chroma_calls == [
        ("update", "lines", 2, False),
        ("upsert", "words", 1, True),
        ("update", "words", 2, False),
    ]
    assert (result.added, result.updated, result.deleted) == (0, 5, 0)


def test_removals_are_one_delete_call_per_collection(
    log: Log, snap: Path, writes: Writes, chroma_calls: ChromaCalls
) -> None:
    seeded(log, snap)
    chroma_calls.clear()
    log.add(log.remove_word(1, 1), log.label(1, 2, "X", "VALID"), log.remove_receipt())
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert writes == [("delete", "lines", 2), ("delete", "words", 3)]
    assert chroma_calls == [("delete", "lines", 2, False), ("delete", "words", 3, False)]
    assert (result.added, result.updated, result.deleted) == (0, 0, 5)
    assert records(snap) == {"lines": {}, "words": {}}


def test_catching_up_twice_writes_nothing_the_second_time(
    log: Log, snap: Path, writes: Writes, chroma_calls: ChromaCalls
) -> None:
    seeded(log, snap)
    chroma_calls.clear()
    before = records(snap)
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert (result.applied, result.records_written, result.batches, writes) == (0, 0, 0, [])
    assert chroma_calls == []
    assert records(snap) == before


def test_an_event_repeating_the_current_state_writes_nothing(
    log: Log, snap: Path, writes: Writes
) -> None:
    """A redelivered change under a new stream id: new position, same state, no write."""
    seeded(log, snap)
    before = records(snap)
    log.add(log.place(merchant_name="Shop"), log.label(1, 2, "AMOUNT", "VALID"))
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert (result.applied, result.records_written, writes) == (2, 0, [])
    assert records(snap) == before


def test_the_same_stream_records_appended_again_are_not_applied_again(
    log: Log, snap: Path, writes: Writes
) -> None:
    events: list[Any] = [log.label(1, 1, "TOTAL", "VALID"), log.place(merchant_name="Shop")]
    seeded(log, snap)
    log.add(*events)
    project(log.store, snap, log.deltas)
    before = records(snap)
    assert log.store.append(events) == [None, None]  # the store keeps each once
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert (result.applied, writes) == (0, [])
    assert records(snap) == before


def test_a_re_published_vector_with_new_delta_metadata_is_a_metadata_update(
    log: Log, snap: Path, writes: Writes, chroma_calls: ChromaCalls
) -> None:
    seeded(log, snap)
    chroma_calls.clear()
    event = log.run("run-2", words={(1, 1): "TOTAL"})
    (old,) = [r for r in log.deltas.deltas[("run-1/words", "words")] if r.id == W11]
    same_vector = msgspec.structs.replace(old, metadata={**old.metadata, "run": "run-2"})
    log.deltas.put("run-2/words", "words", [same_vector])
    log.add(event)
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert writes == [("update", "words", 1)]
    assert chroma_calls == [("update", "words", 1, False)]
    assert (result.added, result.updated) == (0, 1)
    assert metadatas(snap)["words"][W11] == {
        **word_meta("run-2", 1, 1, "TOTAL"),
        "merchant_name": "Shop",
    }
