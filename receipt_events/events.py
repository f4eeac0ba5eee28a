"""The domain events: a msgspec tagged union, one class per kind of change the projection uses.

Each event carries where it came from (a stream record, :class:`EventSource`, or a row a
backfill read, :class:`BackfillSource`) and the **new state** of the relevant fields, not a
diff, so applying it needs nothing but the event and the projection's own state. Each class has
a schema version; its store topic (``receipt_events.WordLabelSet.v2``) names both, and events
stored under an older version are upcast by topic when read (:func:`upcast`).
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


class EventSource(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="origin",
    tag="stream",
):
    """Where an event came from: the DynamoDB stream record, as AWS identified it."""

    event_id: str
    event_name: StreamEventName
    sequence_number: str
    approximate_creation_date_time: int | float | None = None
    region: str


BackfillVia: TypeAlias = Literal["scan", "export", "snapshot"]


class BackfillSource(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="origin",
    tag="backfill",
):
    """Where a backfilled event came from: a row of the table, read by a scan or an export
    (or, ``via="snapshot"``, the old system's Chroma snapshot adopted as the embeddings baseline).

    ``read_at`` (epoch seconds) is when the row's state was read: a consistent scan's page
    time, or an export's ``exportTime`` plus its fuzziness (docs/backfill.md). It is what the
    backfill's barrier waits on; nothing downstream of the log reads it.
    """

    via: BackfillVia
    table: str
    read_at: float
    export_id: str | None = None


Source: TypeAlias = EventSource | BackfillSource


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event. Not itself part of the union."""

    SCHEMA_VERSION: ClassVar[int] = 2
    originator_version: ClassVar[int] = 1  # one stored event per stream record or table item

    schema_version: int = 2
    source: Source
    image_id: str
    receipt_id: int

    @classmethod
    def topic(cls) -> str:
        return f"receipt_events.{cls.__name__}.v{cls.SCHEMA_VERSION}"

    @property
    def originator_id(self) -> str:
        """The store's identity for this event (its dedup key).

        A streamed event is identified by its record's eventID; a backfilled one by its item,
        so an item is backfilled at most once whatever runs again (SPEC §11).
        """
        if isinstance(self.source, BackfillSource):
            return backfill_originator_id(self.pk, self.sk)
        return stream_originator_id(self.source.event_id)

    @property
    def streamed(self) -> bool:
        return isinstance(self.source, EventSource)

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


BASELINE_PK = "RECEIPT_EVENTS#BASELINE"


class EmbeddingsAdopted(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    """The old system's Chroma snapshot, adopted once as the embeddings baseline (SPEC §11).

    Its collections were copied to immutable, content-addressed delta locations (``None``
    where the snapshot had no such collection). Unlike every other event it is about many
    receipts: the projection merges a receipt's records from it only where the log has not
    already given that receipt vectors or removed them.
    """

    SCHEMA_VERSION: ClassVar[int] = 1
    originator_version: ClassVar[int] = 1

    schema_version: int = 1
    source: BackfillSource
    snapshot: str  # what was adopted, as the user named it
    lines_delta: str | None = None
    words_delta: str | None = None
    digest: str  # of both collections' records: the baseline's identity

    @classmethod
    def topic(cls) -> str:
        return f"receipt_events.{cls.__name__}.v{cls.SCHEMA_VERSION}"

    @property
    def originator_id(self) -> str:
        return backfill_originator_id(self.pk, self.sk)

    @property
    def streamed(self) -> bool:
        return False

    @property
    def pk(self) -> str:
        return BASELINE_PK

    @property
    def sk(self) -> str:
        return self.digest


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


ReceiptEvent: TypeAlias = (
    PlaceChanged
    | PlaceRemoved
    | WordLabelSet
    | WordLabelRemoved
    | EmbeddingsPublished
    | ReceiptRemoved
    | LineRemoved
    | WordRemoved
)
Event: TypeAlias = ReceiptEvent | EmbeddingsAdopted
RECEIPT_EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    PlaceChanged,
    PlaceRemoved,
    WordLabelSet,
    WordLabelRemoved,
    EmbeddingsPublished,
    ReceiptRemoved,
    LineRemoved,
    WordRemoved,
)
EVENT_TYPES: tuple[type[DomainEvent] | type[EmbeddingsAdopted], ...] = (
    *RECEIPT_EVENT_TYPES,
    EmbeddingsAdopted,
)
TOPICS: dict[str, type[DomainEvent] | type[EmbeddingsAdopted]] = {
    cls.topic(): cls for cls in EVENT_TYPES
}
for _topic, _cls in TOPICS.items():
    register_topic(_topic, _cls)
# Version 1 (before backfill): the source was always a stream record and carried no tag.
V1_TOPICS: dict[str, type[DomainEvent]] = {
    f"receipt_events.{cls.__name__}.v1": cls for cls in RECEIPT_EVENT_TYPES
}
for _topic, _cls in V1_TOPICS.items():
    register_topic(_topic, _cls)
_V1_PREFIX = b',"schema_version":1,"source":{'


def upcast(topic: str, state: bytes) -> bytes:
    """A stored event's JSON in the current schema, whatever version its topic names.

    A v1 event's JSON starts ``{"type":"…","schema_version":1,"source":{`` (msgspec writes
    fields in declaration order); v2 differs only in the version and the source's tag, so
    the upcast is a splice at that fixed place, not a decode and re-encode.
    """
    if topic not in V1_TOPICS:
        return state
    at = state.find(_V1_PREFIX)
    if at < 0 or not state.startswith(b'{"type":"'):
        raise ValueError(f"a {topic} event that does not start as version 1 events do")
    end = at + len(_V1_PREFIX)
    return state[:at] + b',"schema_version":2,"source":{"origin":"stream",' + state[end:]


def stream_originator_id(event_id: str) -> str:
    return f"ddb:{event_id}"


BACKFILL_KEY_PREFIX = "fill:"  # a backfilled item's identity (and a parked row's)


def backfill_originator_id(pk: str, sk: str) -> str:
    return f"{BACKFILL_KEY_PREFIX}{pk}|{sk}"


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as plain JSON-ready data: ``type`` first, then its fields in order."""
    return msgspec.to_builtins(event)  # type: ignore[no-any-return]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the event union, from the msgspec types themselves."""
    return msgspec.json.schema(Event)
