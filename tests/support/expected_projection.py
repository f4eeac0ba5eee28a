"""What the Chroma collections must hold, computed from the receipts table and the runs' deltas.

An oracle for the Lambda end-to-end tests: it reads the table's current items and the runs'
delta contents and applies the projection's metadata rules (docs/projection.md) itself,
without the event log or the projection code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from receipt_chroma.records import ChromaRecord
from synthetic.deltas import run_records
from synthetic.history import RunContent
from tests.support.projection_rules import (
    AUTO_SUGGESTED,
    INVALID,
    NO_STATUS,
    PENDING,
    PLACE_KEYS,
    UNVALIDATED,
    VALID,
    VALIDATED,
    owned_keys,
)
from tests.support.receipt_table import ReceiptTable

# The SK endings of a receipt's place items (``RECEIPT#r#PLACE``, ``RECEIPT#r#METADATA``).
PLACE_ITEM_SUFFIXES = ("#PLACE", "#METADATA")


@dataclass(frozen=True)
class Expected:
    """One record a collection must hold, and the run whose delta it comes from."""

    document: str
    metadata: dict[str, Any]
    embedding: bytes
    run_id: str


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def place_fields(item: Mapping[str, Any]) -> dict[str, str | None]:
    """A place item's six fields (a ``#PLACE`` item's address is its ``formatted_address``)."""
    fields = {name: _text(item.get(name)) for name in PLACE_KEYS}
    if str(item["SK"]).endswith("#PLACE") and "formatted_address" in item:
        fields["address"] = _text(item["formatted_address"])
    return fields


def _instant(timestamp: Any) -> datetime:
    if not isinstance(timestamp, str) or not timestamp:
        return datetime.min.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(timestamp)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


LabelItem = tuple[str, dict[str, Any], int]  # label name, its item, index of its last write


def label_metadata(labels: list[LabelItem]) -> dict[str, Any]:
    """The label keys of a word record, from the word's label items."""
    if not labels:
        return {}

    def newest(chosen: list[LabelItem]) -> dict[str, Any]:
        return max(chosen, key=lambda label: (_instant(label[1].get("timestamp_added")), label[2]))[
            1
        ]

    def status(item: Mapping[str, Any]) -> str:
        return _text(item.get("validation_status")) or NO_STATUS

    valid = [label for label in labels if status(label[1]) == VALID]
    invalid = [label for label in labels if status(label[1]) == INVALID]
    pending = [label for label in labels if status(label[1]) == PENDING]
    metadata: dict[str, Any] = {}
    if valid:
        metadata["valid_labels"] = sorted({name for name, _, _ in valid})
        metadata["label_status"] = VALIDATED
    elif pending:
        metadata["label_status"] = AUTO_SUGGESTED
    else:
        metadata["label_status"] = UNVALIDATED
    if invalid:
        metadata["invalid_labels"] = sorted({name for name, _, _ in invalid})
    if pending and (proposer := _text(newest(pending).get("label_proposed_by"))) is not None:
        metadata["label_proposed_by"] = proposer
    if valid and (validated := _text(newest(valid).get("timestamp_added"))) is not None:
        metadata["label_validated_at"] = validated
    return metadata


def expected_projection(
    table: ReceiptTable, runs: list[RunContent], *, dimension: int
) -> dict[str, dict[str, Expected]]:
    """Every record each collection must hold, given the table's items now.

    A record is there if its line/word item is in the table and some run of its (still
    present) receipt embedded it; its document, embedding and delta metadata come from the
    latest such run, its place keys from the receipt's place item (the one written last), its
    label keys from the word's label items.
    """
    items = table.items()
    runs_in_table = {
        str(item["run_id"]): key for key, item in items.items() if "#COMPACTION_RUN#" in key[1]
    }
    places: dict[tuple[str, int], tuple[int, dict[str, str | None]]] = {}
    labels: dict[tuple[str, int, int, int], list[LabelItem]] = {}
    for (pk, sk), item in items.items():
        if not pk.startswith("IMAGE#") or not sk.startswith("RECEIPT#"):
            continue
        parts = sk.split("#")
        receipt = (pk.removeprefix("IMAGE#"), int(parts[1]))
        if sk.endswith(PLACE_ITEM_SUFFIXES) and len(parts) == 3:
            order = table.last_write[(pk, sk)]
            if receipt not in places or places[receipt][0] < order:
                places[receipt] = (order, place_fields(item))
        elif "#LABEL#" in sk and len(parts) == 8:
            word = (*receipt, int(parts[3]), int(parts[5]))
            labels.setdefault(word, []).append((parts[7], item, table.last_write[(pk, sk)]))
    expected: dict[str, dict[str, Expected]] = {"lines": {}, "words": {}}
    ordered = sorted(
        (run for run in runs if run.run_id in runs_in_table),
        key=lambda run: table.inserted[runs_in_table[run.run_id]],
    )
    for run in ordered:  # later runs overwrite earlier ones
        receipt = (run.image_id, run.receipt_id)
        place = places.get(receipt, (0, {}))[1]
        for collection, records in run_records(run, dimension).items():
            for record in records:
                key = ("IMAGE#" + run.image_id, record.id.split("#", 2)[2])
                if key not in items:
                    continue  # removed since
                owned = owned_keys(collection)
                metadata = {k: v for k, v in record.metadata.items() if k not in owned}
                metadata.update({k: v for k, v in place.items() if v is not None})
                if collection == "words":
                    parts = key[1].split("#")  # RECEIPT#r#LINE#l#WORD#w
                    word = (*receipt, int(parts[3]), int(parts[5]))
                    metadata.update(label_metadata(labels.get(word, [])))
                expected[collection][record.id] = Expected(
                    record.document or "", metadata, record.embedding, run.run_id
                )
    return expected


def assert_records_match(
    found: Mapping[str, Mapping[str, ChromaRecord]], expected: Mapping[str, Mapping[str, Expected]]
) -> None:
    """Each collection holds exactly the expected records: ids, documents, embeddings (to an
    ulp: Chroma's cosine space renormalises what it stores) and full metadata."""
    for collection in ("lines", "words"):
        extra = sorted(set(found[collection]) - set(expected[collection]))
        missing = sorted(set(expected[collection]) - set(found[collection]))
        assert (extra, missing) == ([], []), collection
        for record_id, want in expected[collection].items():
            got = found[collection][record_id]
            assert got.document == want.document, record_id
            assert np.allclose(
                np.frombuffer(got.embedding, "<f4"), np.frombuffer(want.embedding, "<f4"), atol=1e-6
            ), record_id
            assert got.metadata == want.metadata, record_id
