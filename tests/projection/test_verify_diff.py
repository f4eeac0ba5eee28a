"""verify (rebuild elsewhere, compare record by record) and diff (a dry run of the tail)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromadb.api.models.Collection import Collection

from projections.errors import StateError
from projections.runner import rebuild
from projections.state import STATE_FILE
from projections.verify import Difference, DiffRecord, DiffResult, verify
from projections.verify import diff as diff_tail
from receipt_chroma.client import ChromaDirectory, open_chroma
from tests.projection.helpers import (
    ChromaCalls,
    Log,
    Writes,
    checkpoint,
    digest,
    line_id,
    make_v1,
    project,
    records,
    vector,
    word_id,
)

L1, L2 = line_id(1), line_id(2)
W11, W12, W21 = word_id(1, 1), word_id(1, 2), word_id(2, 1)


def snapshot_history(log: Log) -> list[int]:
    return log.add(
        log.run("run-1", lines={1: "A", 2: "B"}, words={(1, 1): "A", (1, 2): "B", (2, 1): "C"}),
        log.place(merchant_name="Shop"),
        log.label(1, 1, "TOTAL", "VALID", at="2024-01-01T00:00:00+00:00"),
    )


def test_a_fresh_snapshot_verifies_ok(log: Log, snap: Path) -> None:
    positions = snapshot_history(log)
    project(log.store, snap, log.deltas, batch_size=1)
    expected = digest(snap)
    result = verify(log.store, snap, log.deltas)
    assert result.ok
    assert (result.position, result.digest, result.rebuilt_digest) == (
        positions[-1],
        expected,
        expected,
    )
    assert result.counts == result.rebuilt_counts == {"lines": 2, "words": 3}
    assert (result.differences, result.differing_records) == ([], 0)


def corrupt(path: Path, change: Callable[[ChromaDirectory], Any]) -> None:
    with open_chroma(path / "chroma", create=False) as chroma:
        change(chroma)


def words(chroma: ChromaDirectory) -> Collection:
    return chroma.collection("words")


def lines(chroma: ChromaDirectory) -> Collection:
    return chroma.collection("lines")


CORRUPTIONS: list[Any] = [
    pytest.param(
        lambda c: words(c).update(ids=[W11], metadatas=[{"merchant_name": "Evil"}]),
        [Difference("words", W11, ["metadata.merchant_name"])],
        id="metadata-value",
    ),
    pytest.param(
        lambda c: words(c).update(ids=[W11], metadatas=[{"label_status": None}]),
        [Difference("words", W11, ["metadata.label_status"])],
        id="metadata-key-removed",
    ),
    pytest.param(
        lambda c: lines(c).update(ids=[L2], metadatas=[{"valid_labels": ["TOTAL"]}]),
        [Difference("lines", L2, ["metadata.valid_labels"])],
        id="metadata-key-added",
    ),
    pytest.param(
        lambda c: words(c).update(
            ids=[W12], embeddings=[vector("run-1", W12)], documents=["TAMPERED"]
        ),
        [Difference("words", W12, ["document"])],
        id="document",
    ),
    pytest.param(
        lambda c: lines(c).update(ids=[L1], embeddings=[vector("run-9", L1)]),
        [Difference("lines", L1, ["embedding"])],
        id="embedding",
    ),
    pytest.param(
        lambda c: words(c).delete(ids=[W21]),
        [Difference("words", W21, ["missing from the snapshot"])],
        id="deleted",
    ),
    pytest.param(
        lambda c: words(c).upsert(
            ids=[word_id(9, 9)],
            embeddings=[vector("run-1", word_id(9, 9))],
            documents=["X"],
            metadatas=[{"text": "X"}],
        ),
        [Difference("words", word_id(9, 9), ["missing from the rebuild"])],
        id="extra",
    ),
    pytest.param(
        lambda c: (
            words(c).update(
                ids=[W11],
                embeddings=[vector("run-1", W11)],
                documents=["TAMPERED"],
                metadatas=[{"merchant_name": None, "text": "TAMPERED"}],
            ),
            lines(c).delete(ids=[L1]),
        ),
        [
            Difference("lines", L1, ["missing from the snapshot"]),
            Difference("words", W11, ["document", "metadata.merchant_name", "metadata.text"]),
        ],
        id="several",
    ),
]


@pytest.mark.parametrize(("change", "expected"), CORRUPTIONS)
def test_verify_names_each_hand_corrupted_record_and_field(
    log: Log,
    snap: Path,
    change: Callable[[ChromaDirectory], Any],
    expected: list[Difference],
) -> None:
    positions = snapshot_history(log)
    project(log.store, snap, log.deltas)
    clean = digest(snap)
    corrupt(snap, change)
    result = verify(log.store, snap, log.deltas)
    assert not result.ok
    assert result.differences == expected
    assert result.differing_records == len(expected)
    assert result.position == positions[-1]
    assert result.rebuilt_digest == clean
    assert result.digest == digest(snap) != clean


def test_verify_lists_at_most_limit_differences_but_counts_them_all(log: Log, snap: Path) -> None:
    snapshot_history(log)
    project(log.store, snap, log.deltas)
    corrupt(snap, lambda c: words(c).delete(ids=[W11, W12, W21]))
    result = verify(log.store, snap, log.deltas, limit=2)
    assert result.differences == [
        Difference("words", W11, ["missing from the snapshot"]),
        Difference("words", W12, ["missing from the snapshot"]),
    ]
    assert result.differing_records == 3
    assert (result.counts, result.rebuilt_counts) == (
        {"lines": 2, "words": 0},
        {"lines": 2, "words": 3},
    )


# -- diff ----------------------------------------------------------------------------------


def tail(log: Log) -> list[int]:
    return log.add(
        log.run("run-2", lines={1: "R2"}, words={(1, 1): "R2", (1, 2): "R2b"}, receipt=2),
        log.label(1, 1, "AMOUNT", "PENDING", by="m"),  # update W11
        log.remove_word(1, 2),  # delete W12
        log.label(2, 1, "TOTAL", "VALID"),  # cancels out: nothing for W21
        log.unlabel(2, 1, "TOTAL"),
        log.remove_line(2),  # delete L2
        log.run("run-3", lines={1: "A, again"}),  # a new vector for L1: an update
    )


EXPECTED_TAIL = [
    DiffRecord("lines", L1, "update"),
    DiffRecord("lines", L2, "delete"),
    DiffRecord("lines", line_id(1, receipt=2), "add"),
    DiffRecord("words", W11, "update"),
    DiffRecord("words", W12, "delete"),
    DiffRecord("words", word_id(1, 1, receipt=2), "add"),
    DiffRecord("words", word_id(1, 2, receipt=2), "add"),
]


def test_diff_lists_exactly_what_the_tail_would_add_update_and_delete_and_writes_nothing(
    log: Log, snap: Path, chroma_calls: ChromaCalls, writes: Writes
) -> None:
    before = snapshot_history(log)
    project(log.store, snap, log.deltas)
    clean, dumped = digest(snap), records(snap)
    state_bytes = (snap / "state.sqlite3").read_bytes()
    after = tail(log)
    chroma_calls.clear()

    result = diff_tail(log.store, snap, log.deltas)
    assert result == DiffResult(
        from_position=before[-1],
        to_position=after[-1],
        events=7,
        add=3,
        update=2,
        delete=2,
        records=EXPECTED_TAIL,
        stopped=None,
    )
    assert chroma_calls == []
    assert (digest(snap), checkpoint(snap), records(snap)) == (clean, (before[-1], None), dumped)
    assert (snap / "state.sqlite3").read_bytes() == state_bytes

    # applying the tail writes exactly those records
    applied = project(log.store, snap, log.deltas, on_write=writes)
    assert (applied.added, applied.updated, applied.deleted) == (3, 2, 2)
    assert sorted(writes) == sorted(
        [
            ("delete", "lines", 1),
            ("upsert", "lines", 2),
            ("delete", "words", 1),
            ("upsert", "words", 2),
            ("update", "words", 1),
        ]
    )
    assert diff_tail(log.store, snap, log.deltas) == DiffResult(
        from_position=after[-1],
        to_position=after[-1],
        events=0,
        add=0,
        update=0,
        delete=0,
        records=[],
    )


def test_diff_up_to_a_position(log: Log, snap: Path) -> None:
    before = snapshot_history(log)
    project(log.store, snap, log.deltas)
    after = tail(log)
    result = diff_tail(log.store, snap, log.deltas, to=after[2])
    assert (result.from_position, result.to_position, result.events) == (before[-1], after[2], 3)
    assert result.records == [
        DiffRecord("lines", line_id(1, receipt=2), "add"),
        DiffRecord("words", W11, "update"),
        DiffRecord("words", W12, "delete"),
        DiffRecord("words", word_id(1, 1, receipt=2), "add"),
        DiffRecord("words", word_id(1, 2, receipt=2), "add"),
    ]


def test_diff_says_where_the_projection_would_stop(log: Log, snap: Path) -> None:
    before = snapshot_history(log)
    project(log.store, snap, log.deltas)
    event = log.run("run-2", words={(1, 1): "X"}, receipt=2)
    del log.deltas.deltas[("run-2/lines", "lines")]
    after = log.add(log.label(1, 1, "AMOUNT", "VALID"), event, log.label(1, 2, "X", "VALID"))
    result = diff_tail(log.store, snap, log.deltas)
    assert result == DiffResult(
        from_position=before[-1],
        to_position=after[0],
        events=1,
        add=0,
        update=1,
        delete=0,
        records=[DiffRecord("words", W11, "update")],
        stopped=(
            f"log position {after[1]}: compaction run run-2, collection lines: "
            "delta run-2/lines: not found"
        ),
    )
    assert checkpoint(snap) == (before[-1], None)


def test_a_rebuild_to_a_position_equals_the_snapshot_caught_up_to_it(
    log: Log, snap: Path, tmp_path: Path
) -> None:
    before = snapshot_history(log)
    tail(log)
    project(log.store, snap, log.deltas, to=before[-1])
    rebuilt = rebuild(log.store, tmp_path / "to", log.deltas, to=before[-1])
    assert rebuilt.digest == digest(snap)
    assert (rebuilt.position, rebuilt.counts) == (before[-1], {"lines": 2, "words": 3})
    for collection, found in records(snap).items():
        for record_id, record in found.items():
            assert np.array_equal(
                record.vector(), records(tmp_path / "to")[collection][record_id].vector()
            )


# -- the digest the state keeps (digest v2) -------------------------------------------------


def test_verify_compares_the_kept_digest_and_names_records_whose_kept_hash_is_wrong(
    log: Log, snap: Path
) -> None:
    snapshot_history(log)
    project(log.store, snap, log.deltas)
    assert verify(log.store, snap, log.deltas).manifest_digest == digest(snap)
    with sqlite3.connect(snap / STATE_FILE) as db:  # the state, not Chroma, goes wrong
        db.execute("UPDATE records SET record_hash = ? WHERE id = ?", (b"\0" * 32, W12))
        db.execute(
            "UPDATE collection_hashes SET lanes = ? WHERE collection = 'lines'", (b"\1" * 2048,)
        )
    result = verify(log.store, snap, log.deltas)
    assert not result.ok
    assert result.digest == result.rebuilt_digest == digest(snap) != result.manifest_digest
    assert result.differences == [Difference("words", W12, ["hash kept in the state"])]


def test_a_snapshot_from_before_digest_v2_is_refused_with_a_message_to_rebuild(
    log: Log, snap: Path
) -> None:
    snapshot_history(log)
    project(log.store, snap, log.deltas, to=2)
    make_v1(snap)
    for attempt in (
        lambda: verify(log.store, snap, log.deltas),
        lambda: project(log.store, snap, log.deltas),
    ):
        with pytest.raises(StateError, match=r"before canonical digest v2.*rebuild"):
            attempt()
    assert checkpoint(snap) == (2, None)  # nothing was applied to it
    assert digest(snap)  # the dump's digest (the `digest` command) still reads it
