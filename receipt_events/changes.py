"""Change detection: one stream record → a domain event, a skip, or "unchanged".

Only the relevant fields count (docs/stream-records.md): a place or label MODIFY that changes
none of them is *unchanged*; records of entities that never feed the projection are *skipped*
by kind. Ingest classifies a record by its key and eventName first (:func:`skipped_by_key`):
one they skip has its images neither checked nor decoded. Images are decoded only when the
record's entity needs them, and a NewImage that does not decode is an error (the record is
parked), never read as "fields removed".
"""

from __future__ import annotations

from typing import Any

import msgspec

from receipt_events.attributes import AttributeValueError, Item, Value, decode_item
from receipt_events.events import (
    LABEL_FIELDS,
    PLACE_FIELDS,
    VALIDATION_STATUSES,
    EmbeddingsPublished,
    Event,
    EventSource,
    LineRemoved,
    PlaceChanged,
    PlaceRemoved,
    ReceiptEvent,
    ReceiptRemoved,
    Source,
    StreamEventName,
    ValidationStatus,
    WordLabelRemoved,
    WordLabelSet,
    WordRemoved,
)
from receipt_events.keys import (
    CompactionRunKey,
    EntityKey,
    LabelKey,
    LineKey,
    OtherEntity,
    PlaceKey,
    ReceiptKey,
    WordKey,
    parse_key,
)
from receipt_events.markers import MarkerKey, MarkerSeen
from receipt_events.records import Envelope, StreamRecord

TOUCH_ATTRIBUTE = "receipt_events_touch"  # set by `backfill --touch`, never read as a field


class ChangeError(ValueError):
    """A record whose content cannot be turned into an event (it is parked with this reason)."""


class Skipped(msgspec.Struct, frozen=True):
    """A record that can never produce an event; counted under ``kind``."""

    kind: str


class Unchanged(msgspec.Struct, frozen=True):
    """A MODIFY that changed no field the projection reads."""

    kind: str


Detected = Event | Skipped | Unchanged | MarkerSeen


def entity_of(record: StreamRecord | Envelope) -> EntityKey:
    """The entity a record is about, from its ``Keys``."""
    keys = record.keys
    if len(keys) == 2:  # the usual {"PK": {"S": ...}, "SK": {"S": ...}}, without decoding
        pk_value, sk_value = keys.get("PK"), keys.get("SK")
        if type(pk_value) is dict and type(sk_value) is dict:
            pk, sk = pk_value.get("S"), sk_value.get("S")
            if type(pk) is str and type(sk) is str and len(pk_value) == len(sk_value) == 1:
                return parse_key(pk, sk)
    decoded = decode_item(keys, "Keys")
    pk, sk = decoded.get("PK"), decoded.get("SK")
    if not isinstance(pk, str) or not isinstance(sk, str):
        raise ChangeError("Keys must hold string PK and SK attributes")
    return parse_key(pk, sk)


def skipped_by_key(entity: EntityKey, name: StreamEventName) -> Skipped | None:
    """The skip a record's key and eventName decide alone; None when it may produce an event.

    Compaction-run MODIFYs are not decided here: a backfill's touch (its NewImage) makes one
    an event.
    """
    if isinstance(entity, OtherEntity):
        return Skipped(entity.kind)
    if isinstance(entity, MarkerKey):
        return None if name == "INSERT" else Skipped(entity.kind)
    if isinstance(entity, ReceiptKey | LineKey | WordKey):
        return None if name == "REMOVE" else Skipped(entity.kind)  # only removals are events
    if isinstance(entity, CompactionRunKey) and name == "REMOVE":
        return Skipped(entity.kind)
    return None


def detect(record: StreamRecord) -> Detected:
    """Turn one validated stream record into what it means for the projection."""
    entity = entity_of(record)
    name = record.source.event_name
    skipped = skipped_by_key(entity, name)
    if skipped is not None:
        return skipped
    if isinstance(entity, MarkerKey):
        return MarkerSeen(entity.marker)
    if isinstance(entity, ReceiptKey | LineKey | WordKey):
        return _removal(entity, record.source)
    assert not isinstance(entity, OtherEntity)  # skipped_by_key skips every one
    touched = name == "MODIFY" and touched_by_backfill(record)
    if isinstance(entity, CompactionRunKey):
        if name != "INSERT" and not touched:
            return Skipped(entity.kind)  # status MODIFYs are the projection's outputs, not inputs
    elif name == "REMOVE":
        return _item_removed(entity, record.source)
    detected = item_event(entity, _new_image(record, entity.kind), record.source, "NewImage")
    if name == "MODIFY" and not touched and _same_as_before(entity, record, detected):
        return Unchanged(entity.kind)
    return detected


def touched_by_backfill(record: StreamRecord) -> bool:
    """Whether a MODIFY is a backfill's touch (``backfill --touch``): its NewImage carries the
    item's whole current state, so it becomes an event even though no relevant field changed.
    """
    if record.new_image is None or TOUCH_ATTRIBUTE.encode() not in record.new_image:
        return False  # the cheap test first: most records never carry the attribute
    new = _json_object(record.new_image)
    old = _json_object(record.old_image) if record.old_image is not None else {}
    stamp = new.get(TOUCH_ATTRIBUTE) if isinstance(new, dict) else None
    return stamp is not None and (not isinstance(old, dict) or old.get(TOUCH_ATTRIBUTE) != stamp)


def item_event(
    entity: EntityKey, item: Item, source: Source, where: str = "Item"
) -> ReceiptEvent | Skipped:
    """The event an item's current state means: one code path for a stream record's NewImage
    and a row a backfill read (SPEC §11), so both give the same event for the same state."""
    if isinstance(entity, OtherEntity | MarkerKey | ReceiptKey | LineKey | WordKey):
        return Skipped(entity.kind)  # only their removal is an event
    if isinstance(entity, CompactionRunKey):
        return _embeddings_published(entity, item, source, where)
    if isinstance(entity, PlaceKey):
        fields = _place_fields(item, entity, where)
        return PlaceChanged(
            source=source,
            image_id=entity.image_id,
            receipt_id=entity.receipt_id,
            entity=entity.kind,
            merchant_name=fields["merchant_name"],
            canonical_merchant_name=fields["canonical_merchant_name"],
            merchant_category=fields["merchant_category"],
            address=fields["address"],
            phone_number=fields["phone_number"],
            place_id=fields["place_id"],
        )
    return WordLabelSet(
        source=source,
        image_id=entity.image_id,
        receipt_id=entity.receipt_id,
        line_id=entity.line_id,
        word_id=entity.word_id,
        label=entity.label,
        **_label_fields(item, where),
    )


def _same_as_before(entity: EntityKey, record: StreamRecord, detected: Event | Skipped) -> bool:
    """Whether a MODIFY's OldImage means the same event (no relevant field changed).

    An OldImage that does not decode, or holds values we cannot read, only disables the check:
    the MODIFY counts as a change.
    """
    old = _old_image(record)
    if old is None:
        return False
    try:
        before = item_event(entity, old, record.source, "OldImage")
    except ChangeError:
        return False
    return before == detected


def _item_removed(entity: PlaceKey | LabelKey, source: EventSource) -> Event:
    if isinstance(entity, PlaceKey):
        return PlaceRemoved(
            source=source,
            image_id=entity.image_id,
            receipt_id=entity.receipt_id,
            entity=entity.kind,
        )
    return WordLabelRemoved(
        source=source,
        image_id=entity.image_id,
        receipt_id=entity.receipt_id,
        line_id=entity.line_id,
        word_id=entity.word_id,
        label=entity.label,
    )


def _removal(entity: ReceiptKey | LineKey | WordKey, source: EventSource) -> Event:
    common: dict[str, Any] = {
        "source": source,
        "image_id": entity.image_id,
        "receipt_id": entity.receipt_id,
    }
    if isinstance(entity, WordKey):
        return WordRemoved(**common, line_id=entity.line_id, word_id=entity.word_id)
    if isinstance(entity, LineKey):
        return LineRemoved(**common, line_id=entity.line_id)
    return ReceiptRemoved(**common)


def _new_image(record: StreamRecord, kind: str) -> Item:
    if record.new_image is None:
        raise ChangeError(
            f"{record.source.event_name} of {kind} has no NewImage "
            "(the stream must use NEW_AND_OLD_IMAGES or NEW_IMAGE)"
        )
    return decode_item(_json_object(record.new_image), "NewImage")


def _old_image(record: StreamRecord) -> Item | None:
    """The OldImage if it decodes; an undecodable one only disables the "unchanged" check."""
    if record.old_image is None:
        return None
    try:
        return decode_item(_json_object(record.old_image), "OldImage")
    except AttributeValueError:
        return None


def _json_object(raw: bytes) -> Any:
    """An image's JSON (already checked to be well-formed by the envelope decoder)."""
    return msgspec.json.decode(raw)


def _text(image: Item, name: str, where: str) -> str | None:
    value: Value = image.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ChangeError(f"{where}.{name}: expected a string or NULL, got {_type_name(value)}")
    return value


def _place_fields(image: Item, entity: PlaceKey, where: str) -> dict[str, str | None]:
    fields = {name: _text(image, name, where) for name in PLACE_FIELDS}
    if entity.kind == "RECEIPT_PLACE" and "formatted_address" in image:
        fields["address"] = _text(image, "formatted_address", where)
    return fields


def _label_fields(image: Item, where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        name: _text(image, name, where) for name in LABEL_FIELDS if name != "validation_status"
    }
    fields["validation_status"] = _validation_status(image, where)
    return fields


def _validation_status(image: Item, where: str) -> ValidationStatus:
    status = _text(image, "validation_status", where)
    if status is None:
        return "NONE"
    for known in VALIDATION_STATUSES:
        if status == known:
            return known
    raise ChangeError(
        f"{where}.validation_status: {status[:40]!r} is not one of {', '.join(VALIDATION_STATUSES)}"
    )


def _embeddings_published(
    entity: CompactionRunKey, item: Item, source: Source, where: str
) -> ReceiptEvent:
    deltas = {}
    for name in ("lines_delta_prefix", "words_delta_prefix"):
        location = _text(item, name, where)
        if location is None:
            raise ChangeError(f"compaction run {entity.run_id}: {where}.{name} is missing or empty")
        deltas[name] = location
    return EmbeddingsPublished(
        source=source,
        image_id=entity.image_id,
        receipt_id=entity.receipt_id,
        run_id=entity.run_id,
        lines_delta=deltas["lines_delta_prefix"],
        words_delta=deltas["words_delta_prefix"],
    )


def _type_name(value: Value) -> str:
    names = {bool: "BOOL", bytes: "B", list: "L", dict: "M", frozenset: "a set"}
    for python_type, name in names.items():
        if isinstance(value, python_type):
            return name
    return "N"
