"""A record's Chroma metadata: a pure function of its delta metadata, place and labels.

The projection owns some keys outright: the place fields on both collections, the label keys
on words. Their values always come from the projection's state, never from the delta (a
delta's ``merchant_name`` is whatever it was at embedding time), and a key whose value is
absent is absent from the record. No wall-clock value appears anywhere. The rules, and the
tests that check them: docs/projection.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from receipt_events.events import PLACE_FIELDS

LABEL_KEYS: tuple[str, ...] = (
    "valid_labels",
    "invalid_labels",
    "label_status",
    "label_proposed_by",
    "label_validated_at",
)
MANAGED_KEYS: dict[str, frozenset[str]] = {
    "lines": frozenset(PLACE_FIELDS),
    "words": frozenset(PLACE_FIELDS) | frozenset(LABEL_KEYS),
}


class LabelState(msgspec.Struct, frozen=True):
    """What the metadata needs of one word label; ``position`` breaks timestamp ties."""

    label: str
    validation_status: str
    label_proposed_by: str | None
    timestamp_added: str | None
    position: int


def record_metadata(
    collection: str,
    delta_metadata: Mapping[str, Any],
    place: Mapping[str, str | None] | None,
    labels: Iterable[LabelState] = (),
) -> dict[str, Any]:
    """The full metadata a record must have in Chroma."""
    managed = MANAGED_KEYS[collection]
    metadata = {key: value for key, value in delta_metadata.items() if key not in managed}
    if place:
        metadata.update({key: value for key, value in place.items() if value is not None})
    if collection == "words":
        metadata.update(label_metadata(labels))
    return metadata


def label_metadata(labels: Iterable[LabelState]) -> dict[str, Any]:
    """The label keys of a word's metadata; empty when the word has no labels."""
    labels = list(labels)
    if not labels:
        return {}
    valid = [label for label in labels if label.validation_status == "VALID"]
    invalid = [label for label in labels if label.validation_status == "INVALID"]
    pending = [label for label in labels if label.validation_status == "PENDING"]
    metadata: dict[str, Any] = {}
    if valid:
        metadata["valid_labels"] = sorted({label.label for label in valid})
    if invalid:
        metadata["invalid_labels"] = sorted({label.label for label in invalid})
    if valid:
        metadata["label_status"] = "validated"
    elif pending:
        metadata["label_status"] = "auto_suggested"
    else:
        metadata["label_status"] = "unvalidated"
    if pending:
        proposer = newest(pending).label_proposed_by
        if proposer is not None:
            metadata["label_proposed_by"] = proposer
    if valid:
        validated_at = newest(valid).timestamp_added
        if validated_at is not None:
            metadata["label_validated_at"] = validated_at
    return metadata


def newest(labels: list[LabelState]) -> LabelState:
    """The label with the latest ``timestamp_added``; the later log position breaks ties."""
    return max(labels, key=lambda label: (_instant(label.timestamp_added), label.position))


_OLDEST = datetime.min.replace(tzinfo=UTC)


def _instant(timestamp: str | None) -> datetime:
    """An ISO 8601 timestamp as an aware instant (naive means UTC); unreadable counts as oldest."""
    if not timestamp:
        return _OLDEST
    try:
        parsed = datetime.fromisoformat(timestamp)
    except ValueError:
        return _OLDEST
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
