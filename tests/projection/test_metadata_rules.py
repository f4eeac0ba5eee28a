"""The record metadata rules (docs/projection.md) on real Chroma: every record's metadata,
compared as a full dict.

Each test writes a small history with :class:`Log`, catches a snapshot directory up and reads
the records back from Chroma (``receipt_chroma.digest.dump``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from projections.runner import rebuild
from receipt_events.events import Event, ValidationStatus
from tests.projection.helpers import (
    OTHER_IMAGE,
    STALE_MERCHANT,
    Log,
    all_metadata_values,
    digest,
    line_id,
    line_meta,
    metadatas,
    project,
    records,
    vector,
    word_id,
    word_meta,
)

L1, L2 = line_id(1), line_id(2)
W11, W12, W21 = word_id(1, 1), word_id(1, 2), word_id(2, 1)


def first_run(log: Log, run_id: str = "run-1", **kwargs: Any) -> Event:
    """Receipt 1: lines 1-2, words (1,1) (1,2) (2,1)."""
    return log.run(
        run_id,
        lines={1: "TOTAL 12.50", 2: "THANK YOU"},
        words={(1, 1): "TOTAL", (1, 2): "12.50", (2, 1): "THANK"},
        **kwargs,
    )


def words_of(path: Path) -> dict[str, dict[str, Any]]:
    return metadatas(path)["words"]


def lines_of(path: Path) -> dict[str, dict[str, Any]]:
    return metadatas(path)["lines"]


# -- a delta arriving ----------------------------------------------------------------------


def test_a_delta_creates_its_records_with_its_metadata_and_without_its_stale_values(
    log: Log, snap: Path
) -> None:
    log.add(first_run(log))
    project(log.store, snap, log.deltas)

    found = records(snap)
    assert set(found["lines"]) == {L1, L2}
    assert set(found["words"]) == {W11, W12, W21}
    # The delta's merchant_name and label_status are creation-time values: the receipt has
    # no place and the word no labels, so both keys are absent.
    assert found["words"][W11].metadata == {
        "line_id": 1,
        "word_id": 1,
        "text": "TOTAL",
        "run": "run-1",
        "confidence": 0.5,
    }
    assert found["lines"][L1].metadata == {
        "line_id": 1,
        "text": "TOTAL 12.50",
        "run": "run-1",
        "confidence": 0.5,
    }
    assert found["lines"][L2].document == "THANK YOU"
    assert found["words"][W12].document == "12.50"
    for collection in ("lines", "words"):
        for record_id, record in found[collection].items():
            # cosine space: Chroma stores the vector normalised (within 1 ulp of the input)
            np.testing.assert_allclose(record.vector(), vector("run-1", record_id), atol=1e-6)


@pytest.mark.parametrize("separate_batches", [False, True], ids=["one-batch", "earlier-batch"])
def test_labels_and_place_that_arrive_before_the_embeddings_apply_when_the_delta_arrives(
    log: Log, snap: Path, separate_batches: bool, writes: list[Any]
) -> None:
    log.add(
        log.place(merchant_name="Corner Shop", address="1 High St"),
        log.label(1, 1, "TOTAL", "VALID", at="2024-03-01T09:00:00+00:00"),
        log.label(1, 2, "AMOUNT", "PENDING", by="model:v2"),
    )
    if separate_batches:
        result = project(log.store, snap, log.deltas, on_write=writes)
        assert (result.applied, result.records_written, writes) == (3, 0, [])
        assert records(snap) == {"lines": {}, "words": {}}
    log.add(first_run(log))
    project(log.store, snap, log.deltas)

    place = {"merchant_name": "Corner Shop", "address": "1 High St"}
    assert words_of(snap) == {
        W11: {
            **word_meta("run-1", 1, 1, "TOTAL"),
            **place,
            "valid_labels": ["TOTAL"],
            "label_status": "validated",
            "label_validated_at": "2024-03-01T09:00:00+00:00",
        },
        W12: {
            **word_meta("run-1", 1, 2, "12.50"),
            **place,
            "label_status": "auto_suggested",
            "label_proposed_by": "model:v2",
        },
        W21: {**word_meta("run-1", 2, 1, "THANK"), **place},
    }
    assert lines_of(snap) == {
        L1: {**line_meta("run-1", 1, "TOTAL 12.50"), **place},
        L2: {**line_meta("run-1", 2, "THANK YOU"), **place},
    }


def test_the_projection_overrides_the_delta_s_merchant_name_and_label_status(
    log: Log, snap: Path
) -> None:
    log.add(first_run(log), log.place(canonical_merchant_name="CORNER SHOP"))
    project(log.store, snap, log.deltas)
    # merchant_name is absent from the place: the delta's stale one must not show through
    assert words_of(snap)[W11] == {
        **word_meta("run-1", 1, 1, "TOTAL"),
        "canonical_merchant_name": "CORNER SHOP",
    }
    assert STALE_MERCHANT not in all_metadata_values(records(snap)["lines"].values())

    log.add(log.label(1, 1, "TOTAL", "NONE"))
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == {
        **word_meta("run-1", 1, 1, "TOTAL"),
        "canonical_merchant_name": "CORNER SHOP",
        "label_status": "unvalidated",
    }


# -- labels --------------------------------------------------------------------------------


def test_valid_to_invalid_moves_a_label_between_the_arrays_never_in_both(
    log: Log, snap: Path
) -> None:
    base = word_meta("run-1", 1, 1, "TOTAL")
    log.add(first_run(log))
    steps: list[tuple[Event, dict[str, Any]]] = [
        (
            log.label(1, 1, "TOTAL", "VALID", at="2024-03-01T09:00:00+00:00"),
            {
                "valid_labels": ["TOTAL"],
                "label_status": "validated",
                "label_validated_at": "2024-03-01T09:00:00+00:00",
            },
        ),
        (
            log.label(1, 1, "AMOUNT", "VALID", at="2024-03-02T09:00:00+00:00"),
            {
                "valid_labels": ["AMOUNT", "TOTAL"],
                "label_status": "validated",
                "label_validated_at": "2024-03-02T09:00:00+00:00",
            },
        ),
        (
            log.label(1, 1, "AMOUNT", "INVALID", at="2024-03-03T09:00:00+00:00"),
            {
                "valid_labels": ["TOTAL"],
                "invalid_labels": ["AMOUNT"],
                "label_status": "validated",
                "label_validated_at": "2024-03-01T09:00:00+00:00",
            },
        ),
        (
            log.label(1, 1, "TOTAL", "INVALID", at="2024-03-04T09:00:00+00:00"),
            {"invalid_labels": ["AMOUNT", "TOTAL"], "label_status": "unvalidated"},
        ),
        (
            log.label(1, 1, "TOTAL", "VALID", at="2024-03-05T09:00:00+00:00"),
            {
                "valid_labels": ["TOTAL"],
                "invalid_labels": ["AMOUNT"],
                "label_status": "validated",
                "label_validated_at": "2024-03-05T09:00:00+00:00",
            },
        ),
    ]
    for event, expected in steps:
        log.add(event)
        project(log.store, snap, log.deltas)
        assert words_of(snap)[W11] == {**base, **expected}, event


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param([], {}, id="no-labels"),
        pytest.param(
            [("TOTAL", "VALID", None, "2024-01-01T00:00:00+00:00")],
            {
                "valid_labels": ["TOTAL"],
                "label_status": "validated",
                "label_validated_at": "2024-01-01T00:00:00+00:00",
            },
            id="valid",
        ),
        pytest.param(
            [("TOTAL", "PENDING", "model:v1", "2024-01-01T00:00:00+00:00")],
            {"label_status": "auto_suggested", "label_proposed_by": "model:v1"},
            id="pending",
        ),
        pytest.param(
            [("TOTAL", "NONE", "someone", None)], {"label_status": "unvalidated"}, id="none"
        ),
        pytest.param(
            [("TOTAL", "NEEDS_REVIEW", "someone", "2024-01-01T00:00:00+00:00")],
            {"label_status": "unvalidated"},
            id="needs-review",
        ),
        pytest.param(
            [("TOTAL", "INVALID", None, "2024-01-01T00:00:00+00:00")],
            {"invalid_labels": ["TOTAL"], "label_status": "unvalidated"},
            id="invalid",
        ),
        pytest.param(
            [
                ("TOTAL", "INVALID", None, None),
                ("AMOUNT", "PENDING", "model:v1", "2024-01-02T00:00:00+00:00"),
            ],
            {
                "invalid_labels": ["TOTAL"],
                "label_status": "auto_suggested",
                "label_proposed_by": "model:v1",
            },
            id="invalid+pending",
        ),
        pytest.param(
            [
                ("AMOUNT", "PENDING", "model:v1", "2024-01-02T00:00:00+00:00"),
                ("TOTAL", "VALID", "model:v1", "2024-01-01T00:00:00+00:00"),
                ("DATE", "NEEDS_REVIEW", "model:v3", "2024-01-05T00:00:00+00:00"),
            ],
            {
                "valid_labels": ["TOTAL"],
                "label_status": "validated",
                "label_proposed_by": "model:v1",
                "label_validated_at": "2024-01-01T00:00:00+00:00",
            },
            id="pending+valid+review",
        ),
        pytest.param(
            [("TOTAL", "VALID", None, None)],
            {"valid_labels": ["TOTAL"], "label_status": "validated"},
            id="valid-without-timestamp",
        ),
        pytest.param(
            [("TOTAL", "PENDING", None, "2024-01-01T00:00:00+00:00")],
            {"label_status": "auto_suggested"},
            id="pending-without-proposer",
        ),
    ],
)
def test_label_keys(
    log: Log,
    snap: Path,
    labels: list[tuple[str, ValidationStatus, str | None, str | None]],
    expected: dict[str, Any],
) -> None:
    log.add(
        first_run(log),
        *(log.label(1, 1, name, status, by=by, at=at) for name, status, by, at in labels),
    )
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == {**word_meta("run-1", 1, 1, "TOTAL"), **expected}


def test_newest_label_is_by_instant_across_timezone_forms_not_by_text_or_log_order(
    log: Log, snap: Path
) -> None:
    log.add(
        first_run(log),
        # VALID: 10:00+02:00 is 08:00Z; "09:00:00" (naive) means UTC; 08:30Z is in between.
        log.label(1, 1, "TAX", "VALID", at="2024-03-01T08:30:00Z"),
        log.label(1, 1, "SUBTOTAL", "VALID", at="2024-03-01T09:00:00"),
        log.label(1, 1, "TOTAL", "VALID", at="2024-03-01T10:00:00+02:00"),
        # PENDING: the newest instant is the earliest in the log and the smallest as text.
        log.label(1, 2, "AMOUNT", "PENDING", by="newest", at="2024-03-01T07:00:00-05:00"),
        log.label(1, 2, "TOTAL", "PENDING", by="older", at="2024-03-01T11:59:59.999999+00:00"),
        log.label(1, 2, "TAX", "PENDING", by="oldest", at="2024-03-01T13:00:00+09:00"),
    )
    project(log.store, snap, log.deltas)
    found = words_of(snap)
    assert found[W11] == {
        **word_meta("run-1", 1, 1, "TOTAL"),
        "valid_labels": ["SUBTOTAL", "TAX", "TOTAL"],
        "label_status": "validated",
        "label_validated_at": "2024-03-01T09:00:00",
    }
    assert found[W12] == {
        **word_meta("run-1", 1, 2, "12.50"),
        "label_status": "auto_suggested",
        "label_proposed_by": "newest",
    }


@pytest.mark.parametrize("later", ["A", "B"])
def test_timestamp_ties_are_broken_by_log_order(log: Log, snap: Path, later: str) -> None:
    # The same instant written two ways: the label set later in the log wins.
    forms = {"A": "2024-03-01T09:00:00Z", "B": "2024-03-01T10:00:00+01:00"}
    order = ["B", "A"] if later == "A" else ["A", "B"]
    log.add(
        first_run(log),
        *(log.label(1, 1, f"L{name}", "VALID", at=forms[name]) for name in order),
        *(
            log.label(1, 2, f"L{name}", "PENDING", by=f"by-{name}", at=forms[name])
            for name in order
        ),
    )
    project(log.store, snap, log.deltas)
    found = words_of(snap)
    assert found[W11] == {
        **word_meta("run-1", 1, 1, "TOTAL"),
        "valid_labels": ["LA", "LB"],
        "label_status": "validated",
        "label_validated_at": forms[later],
    }
    assert found[W12] == {
        **word_meta("run-1", 1, 2, "12.50"),
        "label_status": "auto_suggested",
        "label_proposed_by": f"by-{later}",
    }


def test_re_setting_a_label_moves_it_later_in_log_order_for_ties(log: Log, snap: Path) -> None:
    at = "2024-03-01T09:00:00+00:00"
    log.add(
        first_run(log),
        log.label(1, 1, "TOTAL", "PENDING", by="first", at=at),
        log.label(1, 1, "AMOUNT", "PENDING", by="second", at=at),
    )
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11]["label_proposed_by"] == "second"
    log.add(log.label(1, 1, "TOTAL", "PENDING", by="first-again", at=at))
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == {
        **word_meta("run-1", 1, 1, "TOTAL"),
        "label_status": "auto_suggested",
        "label_proposed_by": "first-again",
    }


def test_removing_one_label_recomputes_from_the_remaining_ones(log: Log, snap: Path) -> None:
    base = word_meta("run-1", 1, 1, "TOTAL")
    log.add(
        first_run(log),
        log.label(1, 1, "TOTAL", "VALID", at="2024-03-02T00:00:00+00:00"),
        log.label(1, 1, "AMOUNT", "VALID", at="2024-03-01T00:00:00+00:00"),
        log.label(1, 1, "TAX", "PENDING", by="model:new", at="2024-03-05T00:00:00+00:00"),
        log.label(1, 1, "DATE", "PENDING", by="model:old", at="2024-03-04T00:00:00+00:00"),
        log.label(1, 1, "MERCHANT", "INVALID"),
    )
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == {
        **base,
        "valid_labels": ["AMOUNT", "TOTAL"],
        "invalid_labels": ["MERCHANT"],
        "label_status": "validated",
        "label_proposed_by": "model:new",
        "label_validated_at": "2024-03-02T00:00:00+00:00",
    }
    log.add(log.unlabel(1, 1, "TOTAL"), log.unlabel(1, 1, "TAX"))
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == {
        **base,
        "valid_labels": ["AMOUNT"],
        "invalid_labels": ["MERCHANT"],
        "label_status": "validated",
        "label_proposed_by": "model:old",
        "label_validated_at": "2024-03-01T00:00:00+00:00",
    }
    log.add(log.unlabel(1, 1, "AMOUNT"), log.unlabel(1, 1, "MERCHANT"))
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == {
        **base,
        "label_status": "auto_suggested",
        "label_proposed_by": "model:old",
    }
    log.add(log.unlabel(1, 1, "DATE"))
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == base
    # removing a label the word never had changes nothing
    log.add(log.unlabel(1, 1, "NEVER_SET"))
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == base


def test_labels_arrays_are_filterable_with_contains(log: Log, snap: Path) -> None:
    from receipt_chroma.client import open_chroma

    log.add(
        first_run(log),
        log.label(1, 1, "TOTAL", "VALID"),
        log.label(1, 2, "AMOUNT", "VALID"),
        log.label(1, 2, "TOTAL", "INVALID"),
    )
    project(log.store, snap, log.deltas)
    with open_chroma(snap / "chroma", create=False) as chroma:
        words = chroma.collection("words")
        assert words.get(where={"valid_labels": {"$contains": "TOTAL"}})["ids"] == [W11]
        assert words.get(where={"invalid_labels": {"$contains": "TOTAL"}})["ids"] == [W12]


@pytest.mark.parametrize("one_batch", [True, False], ids=["one-batch", "batch-per-event"])
def test_log_order_decides_between_set_and_remove(log: Log, snap: Path, one_batch: bool) -> None:
    log.add(
        first_run(log),
        log.label(1, 1, "TOTAL", "VALID"),
        log.unlabel(1, 1, "TOTAL"),
        log.unlabel(1, 2, "TOTAL"),
        log.label(1, 2, "TOTAL", "VALID"),
    )
    project(log.store, snap, log.deltas, batch_size=1000 if one_batch else 1)
    found = words_of(snap)
    assert found[W11] == word_meta("run-1", 1, 1, "TOTAL")
    assert found[W12] == {
        **word_meta("run-1", 1, 2, "12.50"),
        "valid_labels": ["TOTAL"],
        "label_status": "validated",
    }


# -- places ---------------------------------------------------------------------------------


def test_place_fields_the_last_changed_place_item_wins_and_removal_falls_back(
    log: Log, snap: Path
) -> None:
    metadata_place = {"merchant_name": "Old Name", "address": "1 Old Road"}
    receipt_place = {
        "merchant_name": "New Name",
        "canonical_merchant_name": "NEW NAME",
        "merchant_category": "grocery",
        "phone_number": "+44 20 7946 0000",
        "place_id": "ChIJ-new",
    }
    base_line, base_word = line_meta("run-1", 1, "TOTAL 12.50"), word_meta("run-1", 1, 1, "TOTAL")

    def check(place: dict[str, str]) -> None:
        project(log.store, snap, log.deltas)
        found = metadatas(snap)
        assert found["lines"][L1] == {**base_line, **place}
        assert found["words"][W11] == {**base_word, **place}

    log.add(first_run(log), log.place("RECEIPT_METADATA", **metadata_place))
    check(metadata_place)
    log.add(log.place("RECEIPT_PLACE", **receipt_place))
    check(receipt_place)
    log.add(log.place("RECEIPT_METADATA", merchant_name="Old Name v2", address="2 Old Road"))
    check({"merchant_name": "Old Name v2", "address": "2 Old Road"})
    log.add(log.unplace("RECEIPT_METADATA"))  # falls back to the remaining place item
    check(receipt_place)
    log.add(log.unplace("RECEIPT_PLACE"))  # exactly the place keys go, nothing else
    check({})
    log.add(log.unplace("RECEIPT_PLACE"))  # removing it again changes nothing
    check({})


def test_a_place_field_that_becomes_null_is_removed_from_the_records(log: Log, snap: Path) -> None:
    log.add(
        first_run(log),
        log.place(merchant_name="Shop", phone_number="555-0100", address="1 High St"),
    )
    project(log.store, snap, log.deltas)
    log.add(log.place(merchant_name="Shop", address="1 High St"))  # phone_number now null
    project(log.store, snap, log.deltas)
    found = metadatas(snap)
    assert found["lines"][L2] == {
        **line_meta("run-1", 2, "THANK YOU"),
        "merchant_name": "Shop",
        "address": "1 High St",
    }
    assert found["words"][W21] == {
        **word_meta("run-1", 2, 1, "THANK"),
        "merchant_name": "Shop",
        "address": "1 High St",
    }


def test_lines_get_place_fields_but_never_label_keys(log: Log, snap: Path) -> None:
    log.add(
        first_run(log),
        log.place(merchant_name="Shop"),
        log.label(1, 1, "TOTAL", "VALID", at="2024-01-01T00:00:00+00:00"),
        log.label(1, 2, "AMOUNT", "PENDING", by="model"),
    )
    project(log.store, snap, log.deltas)
    assert lines_of(snap) == {
        L1: {**line_meta("run-1", 1, "TOTAL 12.50"), "merchant_name": "Shop"},
        L2: {**line_meta("run-1", 2, "THANK YOU"), "merchant_name": "Shop"},
    }


def test_a_place_belongs_to_its_receipt_only(log: Log, snap: Path) -> None:
    log.add(
        first_run(log),
        log.run("run-2", lines={1: "OTHER"}, words={(1, 1): "OTHER"}, receipt=2),
        log.place(merchant_name="Receipt Two Shop", receipt=2),
        log.label(1, 1, "TOTAL", "VALID", receipt=2),
    )
    project(log.store, snap, log.deltas)
    found = metadatas(snap)
    assert found["words"][W11] == word_meta("run-1", 1, 1, "TOTAL")
    assert found["lines"][L1] == line_meta("run-1", 1, "TOTAL 12.50")
    assert found["words"][word_id(1, 1, receipt=2)] == {
        **word_meta("run-2", 1, 1, "OTHER"),
        "merchant_name": "Receipt Two Shop",
        "valid_labels": ["TOTAL"],
        "label_status": "validated",
    }


# -- removals and re-embedding -------------------------------------------------------------


def test_receipt_remove_deletes_every_record_of_that_receipt_and_nothing_else(
    log: Log, snap: Path
) -> None:
    log.add(
        first_run(log),
        log.run("run-2", lines={1: "R2"}, words={(1, 1): "R2"}, receipt=2),
        log.run("run-3", lines={1: "OTHER"}, words={(1, 1): "OTHER"}, image=OTHER_IMAGE),
        log.place(merchant_name="Shop"),
        log.label(1, 1, "TOTAL", "VALID"),
    )
    project(log.store, snap, log.deltas)
    before = records(snap)
    log.add(log.remove_receipt())
    project(log.store, snap, log.deltas)
    after = records(snap)
    survivors = {
        "lines": {line_id(1, receipt=2), line_id(1, image=OTHER_IMAGE)},
        "words": {word_id(1, 1, receipt=2), word_id(1, 1, image=OTHER_IMAGE)},
    }
    assert {name: set(found) for name, found in after.items()} == survivors
    for name, ids in survivors.items():
        for record_id in ids:
            assert after[name][record_id] == before[name][record_id]


def test_line_and_word_remove_delete_just_that_record(log: Log, snap: Path) -> None:
    log.add(first_run(log), log.place(merchant_name="Shop"))
    project(log.store, snap, log.deltas)
    before = records(snap)
    log.add(log.remove_line(2), log.remove_word(1, 2))
    project(log.store, snap, log.deltas)
    after = records(snap)
    assert after == {
        "lines": {L1: before["lines"][L1]},
        "words": {W11: before["words"][W11], W21: before["words"][W21]},
    }
    # removing them again, or removing what never existed, changes nothing
    log.add(log.remove_line(2), log.remove_word(1, 2), log.remove_word(9, 9))
    project(log.store, snap, log.deltas)
    assert records(snap) == after


def test_a_later_run_for_the_same_receipt_overwrites_and_re_adds_with_new_vectors(
    log: Log, snap: Path
) -> None:
    log.add(
        first_run(log),
        log.place(merchant_name="Shop"),
        log.label(1, 1, "TOTAL", "VALID"),
        log.remove_word(1, 1),
        log.remove_line(2),
    )
    project(log.store, snap, log.deltas)
    assert set(records(snap)["words"]) == {W12, W21}
    log.add(log.run("run-2", lines={2: "THANKS AGAIN"}, words={(1, 1): "TOTAL:", (1, 2): "12.5"}))
    project(log.store, snap, log.deltas)
    found = records(snap)
    assert {name: set(ids) for name, ids in found.items()} == {
        "lines": {L1, L2},
        "words": {W11, W12, W21},
    }
    shop = {"merchant_name": "Shop"}
    assert found["words"][W11].metadata == {
        **word_meta("run-2", 1, 1, "TOTAL:"),
        **shop,
        "valid_labels": ["TOTAL"],
        "label_status": "validated",
    }
    assert found["words"][W12].metadata == {**word_meta("run-2", 1, 2, "12.5"), **shop}
    assert found["words"][W21].metadata == {**word_meta("run-1", 2, 1, "THANK"), **shop}
    assert found["lines"][L2].metadata == {**line_meta("run-2", 2, "THANKS AGAIN"), **shop}
    assert (found["words"][W11].document, found["lines"][L2].document) == ("TOTAL:", "THANKS AGAIN")
    for collection, record_id, run in [
        ("words", W11, "run-2"),
        ("words", W12, "run-2"),
        ("lines", L2, "run-2"),
        ("words", W21, "run-1"),
        ("lines", L1, "run-1"),
    ]:
        stored = found[collection][record_id].vector()
        np.testing.assert_allclose(stored, vector(run, record_id), atol=1e-6)
    assert not np.allclose(found["words"][W12].vector(), vector("run-1", W12), atol=1e-3)


def test_no_wall_clock_value_reaches_the_metadata(tmp_path: Path) -> None:
    """The same history, logged with other stream times and projected a second later,
    gives the same digest; no metadata value is a current date or epoch time."""
    from receipt_events.store import open_store

    def history(log: Log) -> None:
        log.add(
            first_run(log),
            log.place(merchant_name="Shop"),
            log.label(1, 1, "TOTAL", "VALID", at="2024-03-01T09:00:00+00:00"),
            log.label(1, 2, "AMOUNT", "PENDING", by="model:v1"),
            log.unlabel(1, 1, "TOTAL"),
            log.label(1, 1, "TOTAL", "INVALID"),
        )

    digests, dumps = [], []
    for index, created in enumerate((1_600_000_000, 1_800_000_000)):
        with open_store("memory://") as store:
            log = Log(store, prefix=f"history-{index}", created=created)
            history(log)
            out = tmp_path / f"rebuild-{index}"
            digests.append(rebuild(store, out, log.deltas).digest)
            dumps.append(records(out))
        if index == 0:
            time.sleep(1.1)
    assert digests[0] == digests[1]
    assert dumps[0] == dumps[1]
    now = time.time()
    today = datetime.now(UTC).date().isoformat()
    for found in dumps[0].values():
        for value in all_metadata_values(found.values()):
            assert not (isinstance(value, int | float) and abs(value - now) < 10 * 86400)
            assert not (isinstance(value, str) and today in value)


def test_same_history_twice_gives_same_digest_as_the_snapshot(log: Log, snap: Path) -> None:
    log.add(first_run(log), log.place(merchant_name="Shop"), log.label(1, 1))
    project(log.store, snap, log.deltas, batch_size=1)
    assert digest(snap) == rebuild(log.store, snap.parent / "again", log.deltas).digest


@pytest.mark.parametrize("remove_last", [True, False])
def test_log_order_decides_between_place_change_and_removal_in_one_batch(
    log: Log, snap: Path, remove_last: bool
) -> None:
    change, removal = log.place(merchant_name="Shop"), log.unplace()
    log.add(first_run(log), *((change, removal) if remove_last else (removal, change)))
    project(log.store, snap, log.deltas)
    place = {} if remove_last else {"merchant_name": "Shop"}
    assert lines_of(snap)[L1] == {**line_meta("run-1", 1, "TOTAL 12.50"), **place}
    assert words_of(snap)[W11] == {**word_meta("run-1", 1, 1, "TOTAL"), **place}


def test_an_unreadable_timestamp_counts_as_the_oldest(log: Log, snap: Path) -> None:
    log.add(
        first_run(log),
        log.label(1, 1, "TOTAL", "VALID", at="2024-01-01T00:00:00+00:00"),
        log.label(1, 1, "AMOUNT", "VALID", at="not a timestamp"),
        log.label(1, 1, "TAX", "VALID"),
    )
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == {
        **word_meta("run-1", 1, 1, "TOTAL"),
        "valid_labels": ["AMOUNT", "TAX", "TOTAL"],
        "label_status": "validated",
        "label_validated_at": "2024-01-01T00:00:00+00:00",
    }


def test_a_re_embedding_whose_delta_drops_a_key_removes_it_from_the_record(
    log: Log, snap: Path
) -> None:
    log.add(first_run(log), log.place(merchant_name="Shop"))
    project(log.store, snap, log.deltas)
    event = log.run("run-2", words={(1, 1): "TOTAL"})
    (record,) = log.deltas.deltas[("run-2/words", "words")]
    slim = {"text": "TOTAL", "label_status": "unvalidated"}  # no line_id, word_id, run, ...
    log.deltas.put("run-2/words", "words", [msgspec.structs.replace(record, metadata=slim)])
    log.add(event)
    project(log.store, snap, log.deltas)
    assert words_of(snap)[W11] == {"text": "TOTAL", "merchant_name": "Shop"}
    assert digest(snap) == rebuild(log.store, snap.parent / "rebuilt", log.deltas).digest


def test_a_record_whose_metadata_becomes_empty(log: Log, snap: Path) -> None:
    event = log.run("run-1", lines={1: "A"})
    (record,) = log.deltas.deltas[("run-1/lines", "lines")]
    log.deltas.put("run-1/lines", "lines", [msgspec.structs.replace(record, metadata={})])
    log.add(event)
    project(log.store, snap, log.deltas)
    assert lines_of(snap) == {L1: {}}
    log.add(log.place(merchant_name="Shop", address="1 High St"))
    project(log.store, snap, log.deltas)
    assert lines_of(snap) == {L1: {"merchant_name": "Shop", "address": "1 High St"}}
    log.add(log.unplace())
    project(log.store, snap, log.deltas)
    assert lines_of(snap) == {L1: {}}
    assert digest(snap) == rebuild(log.store, snap.parent / "rebuilt", log.deltas).digest
