"""A plain-Python reference model of the Chroma projection, written from its rules alone.

It replays events in log order over plain dictionaries and says what the two collections
must hold at the end: id → (document, metadata, embedding bytes). It shares no code with
``projections`` (only the event classes and the delta records it is given); the names it
uses (place and label keys, statuses) come from :mod:`tests.support.projection_rules`.

The rules are those of docs/projection.md. Readings this model makes where a rule could be
read more than one way:

* A run's delta records are upserted one by one: a record replaces the same id's earlier
  record (document, delta metadata, embedding) whole, so a record re-embedded without a
  document has none; ids the run does not hold are left alone. A run published again (a
  new event, same run id) is applied again: log order decides, even over a newer run.
* The keys the projection derives (the six place fields, and for words the five label keys)
  always come from the projection's state: a delta's stale copy of one is never kept, and a
  derived value of ``None`` (or an empty label list) means the key is absent. Lines have no
  labels: a lines delta's ``label_status`` is ordinary delta metadata, kept as it is.
* The receipt's place is that of the place item (``#PLACE`` or ``#METADATA``) written last in
  the log among those not removed; ``PlaceChanged`` carries its item's full field state.
* "Newest" label: the latest ``timestamp_added`` as an instant (ISO 8601; naive means UTC;
  ``Z`` and ``+01:00`` forms of one instant are equal); a label without one is older than
  any with one; ties go to the later log position. The value written is the string as given.
* ``ReceiptRemoved`` / ``LineRemoved`` / ``WordRemoved`` delete records only (the line's
  record, not its words' records: each word has its own REMOVE). Places and labels are items
  with REMOVEs of their own, so they stay in the state and apply if a later run re-creates a
  record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from receipt_chroma.records import ChromaRecord
from receipt_events.events import (
    EmbeddingsPublished,
    Event,
    LineRemoved,
    PlaceChanged,
    PlaceRemoved,
    ReceiptRemoved,
    WordLabelRemoved,
    WordLabelSet,
    WordRemoved,
)
from tests.support.projection_rules import (
    AUTO_SUGGESTED,
    INVALID,
    PENDING,
    PLACE_KEYS,
    UNVALIDATED,
    VALID,
    VALIDATED,
    owned_keys,
)

_ID = re.compile(
    r"^IMAGE#(?P<image>[^#]+)#RECEIPT#(?P<receipt>\d{5})#LINE#(?P<line>\d{5})"
    r"(?:#WORD#(?P<word>\d{5}))?$"
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ReceiptId = tuple[str, int]
WordId = tuple[str, int, int, int]
Contents = dict[str, dict[str, tuple[str | None, dict[str, Any], bytes]]]


def parse_id(record_id: str) -> tuple[ReceiptId, int, int | None]:
    match = _ID.match(record_id)
    assert match, record_id
    word = match["word"]
    return (
        (match["image"], int(match["receipt"])),
        int(match["line"]),
        None if word is None else int(word),
    )


@dataclass
class Label:
    status: str
    proposed_by: str | None
    timestamp_added: str | None
    position: int

    def newness(self) -> tuple[bool, datetime, int]:
        if self.timestamp_added is None:
            return (False, EPOCH, self.position)
        instant = datetime.fromisoformat(self.timestamp_added)
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        return (True, instant, self.position)


@dataclass
class Place:
    fields: dict[str, str | None]
    position: int


@dataclass
class ReferenceModel:
    """Feed it events in log order with :meth:`apply`; read :meth:`contents`."""

    deltas: dict[tuple[str, str], list[ChromaRecord]]
    places: dict[ReceiptId, dict[str, Place]] = field(default_factory=dict)
    labels: dict[WordId, dict[str, Label]] = field(default_factory=dict)
    records: dict[str, dict[str, ChromaRecord]] = field(
        default_factory=lambda: {"lines": {}, "words": {}}
    )
    position: int = 0

    def apply(self, position: int, event: Event) -> None:
        assert position > self.position
        self.position = position
        receipt = (event.image_id, event.receipt_id)
        if isinstance(event, EmbeddingsPublished):
            for collection, location in (
                ("lines", event.lines_delta),
                ("words", event.words_delta),
            ):
                for record in self.deltas[(location, collection)]:
                    assert parse_id(record.id)[0] == receipt
                    self.records[collection][record.id] = record
        elif isinstance(event, PlaceChanged):
            self.places.setdefault(receipt, {})[event.entity] = Place(
                {name: getattr(event, name) for name in PLACE_KEYS}, position
            )
        elif isinstance(event, PlaceRemoved):
            self.places.get(receipt, {}).pop(event.entity, None)
        elif isinstance(event, WordLabelSet):
            word = (*receipt, event.line_id, event.word_id)
            self.labels.setdefault(word, {})[event.label] = Label(
                event.validation_status, event.label_proposed_by, event.timestamp_added, position
            )
        elif isinstance(event, WordLabelRemoved):
            word = (*receipt, event.line_id, event.word_id)
            self.labels.get(word, {}).pop(event.label, None)
        elif isinstance(event, ReceiptRemoved):
            self._delete(lambda r, line, word: r == receipt)
        elif isinstance(event, LineRemoved):
            self._delete(lambda r, line, word: (r, line, word) == (receipt, event.line_id, None))
        elif isinstance(event, WordRemoved):
            self._delete(
                lambda r, line, word: (r, line, word) == (receipt, event.line_id, event.word_id)
            )
        else:  # pragma: no cover
            raise AssertionError(f"unknown event {event!r}")

    def _delete(self, matches: Any) -> None:
        for records in self.records.values():
            for record_id in [i for i in records if matches(*parse_id(i))]:
                del records[record_id]

    # -- what the collections hold -----------------------------------------------------

    def place_fields(self, receipt: ReceiptId) -> dict[str, str | None]:
        places = self.places.get(receipt)
        if not places:
            return {}
        return max(places.values(), key=lambda place: place.position).fields

    def label_metadata(self, word: WordId) -> dict[str, Any]:
        labels = self.labels.get(word)
        if not labels:
            return {}
        meta: dict[str, Any] = {}
        valid = sorted(name for name, label in labels.items() if label.status == VALID)
        invalid = sorted(name for name, label in labels.items() if label.status == INVALID)
        pending = [label for label in labels.values() if label.status == PENDING]
        if valid:
            meta["valid_labels"] = valid
        if invalid:
            meta["invalid_labels"] = invalid
        if valid:
            meta["label_status"] = VALIDATED
        elif pending:
            meta["label_status"] = AUTO_SUGGESTED
        else:
            meta["label_status"] = UNVALIDATED
        if pending:
            newest = max(pending, key=Label.newness)
            if newest.proposed_by is not None:
                meta["label_proposed_by"] = newest.proposed_by
        if valid:
            newest = max(
                (label for label in labels.values() if label.status == VALID),
                key=Label.newness,
            )
            if newest.timestamp_added is not None:
                meta["label_validated_at"] = newest.timestamp_added
        return meta

    def metadata(self, collection: str, record: ChromaRecord) -> dict[str, Any]:
        receipt, line, word = parse_id(record.id)
        owned = owned_keys(collection)
        meta = {k: v for k, v in record.metadata.items() if k not in owned}
        meta.update({k: v for k, v in self.place_fields(receipt).items() if v is not None})
        if collection == "words":
            assert word is not None
            meta.update(self.label_metadata((*receipt, line, word)))
        return meta

    def contents(self) -> Contents:
        return {
            collection: {
                record_id: (record.document, self.metadata(collection, record), record.embedding)
                for record_id, record in sorted(records.items())
            }
            for collection, records in self.records.items()
        }


def replay(
    events: list[Event], deltas: dict[tuple[str, str], list[ChromaRecord]], to: int | None = None
) -> Contents:
    """The expected contents after the events at positions 1..to (default: all)."""
    model = ReferenceModel(deltas)
    for position, event in enumerate(events[:to], start=1):
        model.apply(position, event)
    return model.contents()
