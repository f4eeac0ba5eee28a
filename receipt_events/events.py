"""The domain events: a msgspec tagged union, one class per kind of change the projection uses.

Each event carries the stream record it came from (:class:`EventSource`) and the **new state**
of the relevant fields, not a diff, so applying it needs nothing but the event and the
projection's own state. Each class has a schema version; its store topic
(``receipt_events.WordLabelSet.v1``) names both, so a later version can be upcast by topic.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeAlias

import msgspec
from eventsourcing.utils import register_topic

from receipt_events.keys import (
    CompactionRunKey,
    LabelKey,
    LineKey,
    PlaceKey,
    ReceiptKey,
    WordKey,
)

StreamEventName: TypeAlias = Literal["INSERT", "MODIFY", "REMOVE"]
ValidationStatus: TypeAlias = Literal["NONE", "PENDING", "VALID", "INVALID", "NEEDS_REVIEW"]
VALIDATION_STATUSES: tuple[ValidationStatus, ...] = (
    "NONE",
    "PENDING",
    "VALID",
    "INVALID",
    "NEEDS_REVIEW",
)
PlaceEntity: TypeAlias = Literal["RECEIPT_METADATA", "RECEIPT_PLACE"]
PLACE_FIELDS: tuple[str, ...] = (
    "merchant_name",
    "canonical_merchant_name",
    "merchant_category",
    "address",
    "phone_number",
    "place_id",
)
LABEL_FIELDS: tuple[str, ...] = (
    "validation_status",
    "label_proposed_by",
    "reasoning",
    "label_consolidated_from",
    "timestamp_added",
)


class EventSource(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where an event came from: the DynamoDB stream record, as AWS identified it."""

    event_id: str
    event_name: StreamEventName
    sequence_number: str
    approximate_creation_date_time: int | float | None = None
    region: str


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event. Not itself part of the union."""

    SCHEMA_VERSION: ClassVar[int] = 1
    originator_version: ClassVar[int] = 1  # one stored event per stream record

    schema_version: int = 1
    source: EventSource
    image_id: str
    receipt_id: int

    @classmethod
    def topic(cls) -> str:
        return f"receipt_events.{cls.__name__}.v{cls.SCHEMA_VERSION}"

    @property
    def originator_id(self) -> str:
        """The store's identity for this event: the stream record's eventID (dedup key)."""
        return stream_originator_id(self.source.event_id)

    @property
    def receipt(self) -> ReceiptKey:
        return ReceiptKey(self.image_id, self.receipt_id)

    @property
    def pk(self) -> str:
        return f"IMAGE#{self.image_id}"

    @property
    def sk(self) -> str:  # pragma: no cover - every concrete event overrides it
        raise NotImplementedError


class PlaceChanged(DomainEvent, frozen=True, kw_only=True, tag=True):
    """A receipt's merchant place was written (INSERT or MODIFY); the fields' new state."""

    entity: PlaceEntity
    merchant_name: str | None = None
    canonical_merchant_name: str | None = None
    merchant_category: str | None = None
    address: str | None = None
    phone_number: str | None = None
    place_id: str | None = None

    @property
    def sk(self) -> str:
        return PlaceKey(self.image_id, self.receipt_id, self.entity).sk

    def fields(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in PLACE_FIELDS}


class PlaceRemoved(DomainEvent, frozen=True, kw_only=True, tag=True):
    entity: PlaceEntity

    @property
    def sk(self) -> str:
        return PlaceKey(self.image_id, self.receipt_id, self.entity).sk


class WordLabelSet(DomainEvent, frozen=True, kw_only=True, tag=True):
    """A word label was created or modified; its full new state."""

    line_id: int
    word_id: int
    label: str
    validation_status: ValidationStatus = "NONE"
    label_proposed_by: str | None = None
    reasoning: str | None = None
    label_consolidated_from: str | None = None
    timestamp_added: str | None = None

    @property
    def word(self) -> WordKey:
        return WordKey(self.image_id, self.receipt_id, self.line_id, self.word_id)

    @property
    def sk(self) -> str:
        return LabelKey(self.image_id, self.receipt_id, self.line_id, self.word_id, self.label).sk


class WordLabelRemoved(DomainEvent, frozen=True, kw_only=True, tag=True):
    line_id: int
    word_id: int
    label: str

    @property
    def word(self) -> WordKey:
        return WordKey(self.image_id, self.receipt_id, self.line_id, self.word_id)

    @property
    def sk(self) -> str:
        return LabelKey(self.image_id, self.receipt_id, self.line_id, self.word_id, self.label).sk


class EmbeddingsPublished(DomainEvent, frozen=True, kw_only=True, tag=True):
    """A compaction run was inserted: both embedding deltas exist at these locations."""

    run_id: str
    lines_delta: str
    words_delta: str

    @property
    def sk(self) -> str:
        return CompactionRunKey(self.image_id, self.receipt_id, self.run_id).sk


class ReceiptRemoved(DomainEvent, frozen=True, kw_only=True, tag=True):
    @property
    def sk(self) -> str:
        return self.receipt.sk


class LineRemoved(DomainEvent, frozen=True, kw_only=True, tag=True):
    line_id: int

    @property
    def line(self) -> LineKey:
        return LineKey(self.image_id, self.receipt_id, self.line_id)

    @property
    def sk(self) -> str:
        return self.line.sk


class WordRemoved(DomainEvent, frozen=True, kw_only=True, tag=True):
    line_id: int
    word_id: int

    @property
    def word(self) -> WordKey:
        return WordKey(self.image_id, self.receipt_id, self.line_id, self.word_id)

    @property
    def sk(self) -> str:
        return self.word.sk


Event: TypeAlias = (
    PlaceChanged
    | PlaceRemoved
    | WordLabelSet
    | WordLabelRemoved
    | EmbeddingsPublished
    | ReceiptRemoved
    | LineRemoved
    | WordRemoved
)
EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    PlaceChanged,
    PlaceRemoved,
    WordLabelSet,
    WordLabelRemoved,
    EmbeddingsPublished,
    ReceiptRemoved,
    LineRemoved,
    WordRemoved,
)
TOPICS: dict[str, type[DomainEvent]] = {cls.topic(): cls for cls in EVENT_TYPES}
for _topic, _cls in TOPICS.items():
    register_topic(_topic, _cls)


def stream_originator_id(event_id: str) -> str:
    return f"ddb:{event_id}"


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as plain JSON-ready data: ``type`` first, then its fields in order."""
    return msgspec.to_builtins(event)  # type: ignore[no-any-return]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the event union, from the msgspec types themselves."""
    return msgspec.json.schema(Event)
