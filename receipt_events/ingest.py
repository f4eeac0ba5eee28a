"""Records → events → append: the ingest path shared by the CLI and the stream Lambda.

Every input record ends in exactly one bucket: appended, duplicate (already stored, as an
event or as a parked record), unchanged, skipped (by kind) or parked. Nothing that goes wrong
with one record escapes as an exception: it is parked with the reason and the records around
it carry on. Only the store itself failing stops an ingest, with :class:`IngestInterrupted`
saying how far the input is durably stored, so a caller (Lambda) can retry from there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence

import msgspec

from receipt_events.attributes import AttributeValueError
from receipt_events.changes import (
    ChangeError,
    Detected,
    Skipped,
    Unchanged,
    detect,
    entity_of,
    skipped_by_key,
)
from receipt_events.events import Event, EventSource
from receipt_events.keys import KeyFormatError
from receipt_events.markers import MARKER_KIND, MarkerSeen
from receipt_events.records import (
    MAX_EVENT_ID_LENGTH,
    MAX_SEQUENCE_NUMBER_DIGITS,
    InputRecord,
    LambdaRecord,
    RecordFormatError,
    SourceRecord,
    envelope_of_decoded,
    parse_record,
)
from receipt_events.store import (
    CONFLICT_ORIGIN,
    Conflict,
    EventStore,
    ParkedRecord,
    ParkedResolved,
    parked_id_for,
)
from receipt_events.store.parked import Resolution

DEFAULT_BATCH_SIZE = 500
BACKFILL_ORIGIN = "backfill:"  # the origin of rows a backfill parked
BACKFILLED = 10**MAX_SEQUENCE_NUMBER_DIGITS  # above any SequenceNumber we accept
_EXPECTED_ERRORS = (RecordFormatError, AttributeValueError, KeyFormatError, ChangeError)

Outcome = Event | Skipped | Unchanged | MarkerSeen | ParkedRecord


class IngestSummary(msgspec.Struct, kw_only=True):
    """What happened to each input record; the five counts add up to ``records``."""

    records: int = 0
    appended: int = 0
    duplicates: int = 0
    unchanged: int = 0
    skipped: int = 0
    parked: int = 0
    skipped_by_kind: dict[str, int] = msgspec.field(default_factory=dict)
    unchanged_by_kind: dict[str, int] = msgspec.field(default_factory=dict)
    head: int = 0


class IngestInterrupted(Exception):
    """The store failed mid-ingest; input records before ``stored_through`` are durably handled."""

    def __init__(self, summary: IngestSummary, stored_through: int, cause: BaseException) -> None:
        super().__init__(f"the event store failed after {stored_through} records: {cause}")
        self.summary = summary
        self.stored_through = stored_through
        self.cause = cause


def classify(record: SourceRecord) -> Outcome:
    """What one input record means: an event, a skip, unchanged, or a parked record.

    Its key decides first: no record that its key skips has its images decoded, and such a
    record as Lambda decoded it is not parsed again from its bytes.
    """
    try:
        if isinstance(record, LambdaRecord):
            return _detect_decoded(record)
        return detect(parse_record(record.raw))
    except _EXPECTED_ERRORS as error:
        return park_record(record, str(error))
    except Exception as error:  # a bug must not block the batch: park it, keep it for redrive
        return park_record(record, f"internal error ({type(error).__name__}): {error}")


def _detect_decoded(record: LambdaRecord) -> Detected:
    """``detect(parse_record(record.raw))`` for a record as Lambda decoded it, but one its key
    skips is classified from the decoded record, never decoded again from its bytes.
    """
    if _may_be_an_event(record.decoded):
        return detect(parse_record(record.raw))
    envelope = envelope_of_decoded(record.decoded)
    if envelope is None:
        return detect(parse_record(record.raw))  # something unusual: the bytes path names it
    try:
        entity = entity_of(envelope)
    except KeyFormatError:
        return detect(parse_record(record.raw))  # parked, with the bytes path's message
    skipped = skipped_by_key(entity, envelope.source.event_name)
    # A record JSON cannot carry (a lone surrogate anywhere) is parked, whatever its key.
    if skipped is None or not record.is_json():
        return detect(parse_record(record.raw))
    return skipped


def _may_be_an_event(decoded: object) -> bool:
    """A quick look at a decoded record's SK: True sends it straight to the full parse, as its
    key would (labels, places, runs). Routing only: either way the outcome is the same."""
    try:
        sk = decoded["dynamodb"]["Keys"]["SK"]["S"]  # type: ignore[index]
    except (KeyError, TypeError, IndexError):
        return True
    if type(sk) is not str:
        return True
    return "#LABEL#" in sk or "#PLACE" in sk or "#METADATA" in sk or "#COMPACTION_RUN#" in sk


def park_record(record: SourceRecord, error: str) -> ParkedRecord:
    event_id, sequence_number = _identify(record.raw)
    return ParkedRecord(
        parked_id=parked_id_for(record.raw, event_id),
        origin=record.origin,
        error=error,
        payload=record.raw,
        event_id=event_id,
        sequence_number=sequence_number,
    )


def _identify(raw: bytes) -> tuple[str | None, str | None]:
    """Best-effort eventID and SequenceNumber of a record that failed to parse.

    An eventID the store could not index (over-long, or holding a NUL) is not used, since it
    would be the parked record's identity: the record is parked under the hash of its bytes.
    """
    try:
        document = msgspec.json.decode(raw)
    except Exception:
        return None, None
    if not isinstance(document, dict):
        return None, None
    event_id = document.get("eventID")
    body = document.get("dynamodb")
    sequence = body.get("SequenceNumber") if isinstance(body, dict) else None
    return (
        event_id
        if isinstance(event_id, str)
        and 0 < len(event_id) <= MAX_EVENT_ID_LENGTH
        and "\x00" not in event_id
        else None,
        sequence if isinstance(sequence, str) and sequence else None,
    )


def ingest(
    store: EventStore,
    records: Iterable[SourceRecord],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Classify records in order and append their events (and parked records) in batches."""
    summary = IngestSummary()
    events: list[Event] = []
    event_records: list[SourceRecord] = []  # the record each event came from
    parked: list[ParkedRecord] = []
    markers: list[MarkerSeen] = []
    handled = 0  # records whose outcome is durable

    def flush() -> None:
        nonlocal handled
        try:
            # A parked record is older than anything appended after the head it is stamped
            # with, including this batch's events: take the head before appending them.
            head_before = store.head() if parked else 0
            outcomes = store.append_outcomes(events)
            conflicts = [
                _conflicting(record, outcome)
                for record, outcome in zip(event_records, outcomes, strict=True)
                if isinstance(outcome, Conflict)
            ]
            to_park = _stamped(parked, head_before) + conflicts
            newly_parked = store.park(to_park) if to_park else []
            if markers:  # after the events before them: a seen marker vouches for those
                store.record_progress(markers)
        except Exception as error:
            raise IngestInterrupted(summary, handled, error) from error
        appended = sum(isinstance(outcome, int) for outcome in outcomes)
        summary.appended += appended
        summary.duplicates += sum(outcome is None for outcome in outcomes)
        summary.parked += sum(newly_parked)
        summary.duplicates += len(newly_parked) - sum(newly_parked)
        events.clear()
        event_records.clear()
        parked.clear()
        markers.clear()
        handled = summary.records
        if progress is not None:
            progress(handled)

    for record in records:
        summary.records += 1
        outcome = classify(record)
        if isinstance(outcome, Skipped):
            summary.skipped += 1
            _count(summary.skipped_by_kind, outcome.kind)
        elif isinstance(outcome, Unchanged):
            summary.unchanged += 1
            _count(summary.unchanged_by_kind, outcome.kind)
        elif isinstance(outcome, ParkedRecord):
            parked.append(outcome)
        elif isinstance(outcome, MarkerSeen):
            summary.skipped += 1
            _count(summary.skipped_by_kind, MARKER_KIND)
            markers.append(outcome)
        else:
            events.append(outcome)
            event_records.append(record)
        if len(events) + len(parked) + len(markers) >= batch_size:
            flush()
    flush()
    summary.head = store.head()
    return summary


def _conflicting(record: SourceRecord, conflict: Conflict) -> ParkedRecord:
    """A record whose event conflicts with a stored one, parked whole beside it."""
    parked = park_record(record, conflict.describe())
    return msgspec.structs.replace(
        parked, parked_id=conflict.parked_id(parked.parked_id), log_head=conflict.position
    )


def _stamped(parked: list[ParkedRecord], head: int) -> list[ParkedRecord]:
    return [msgspec.structs.replace(record, log_head=head) for record in parked]


def _count(counter: dict[str, int], kind: str) -> None:
    counter[kind] = counter.get(kind, 0) + 1


class RedriveSummary(msgspec.Struct, kw_only=True):
    """What a redrive did with each parked record it retried."""

    retried: int = 0
    appended: int = 0
    duplicates: int = 0
    superseded: int = 0
    skipped: int = 0
    unchanged: int = 0
    still_parked: int = 0
    errors: dict[str, str] = msgspec.field(default_factory=dict)  # parked id → current reason


# Parked records a redrive keeps parked, by origin, and why: not stream records to re-parse.
_NOT_REDRIVEN = {
    CONFLICT_ORIGIN: "the payload is the conflicting event: compare it with the stored one, "
    "nothing to retry",
    BACKFILL_ORIGIN: "a row the backfill read: run `receipt-events backfill` again to retry it",
}


def redrive(store: EventStore, parked_ids: Collection[str] | None = None) -> RedriveSummary:
    """Retry parked records with the current parser; resolve those that now succeed.

    A redriven record is older than anything its item has logged since it was parked, so if
    the log already holds a later change of the same item (higher SequenceNumber), the
    redriven one is *superseded*: resolved without appending, since appending it would put a
    stale state after a newer one.
    """
    summary = RedriveSummary()
    waiting = [
        record
        for record in store.parked_records()
        if parked_ids is None or record.parked_id in parked_ids
    ]
    if not waiting:
        return summary
    newest = _newest_sequence_by_item(store, after=min(record.log_head for record in waiting))
    resolutions: list[ParkedResolved] = []
    outcomes: Counter[Resolution] = Counter()
    for record in waiting:
        summary.retried += 1
        kept = next(
            (why for origin, why in _NOT_REDRIVEN.items() if record.origin.startswith(origin)),
            None,
        )
        if kept is not None:
            summary.still_parked += 1
            summary.errors[record.parked_id] = f"{record.error} ({kept})"
            continue
        outcome = classify(InputRecord(record.origin, record.payload))
        if isinstance(outcome, ParkedRecord):
            summary.still_parked += 1
            summary.errors[record.parked_id] = outcome.error
            continue
        resolution, position = _redrive_one(store, outcome, newest)
        if isinstance(position, Conflict):
            summary.still_parked += 1
            summary.errors[record.parked_id] = position.describe()
            continue
        outcomes[resolution] += 1
        resolutions.append(
            ParkedResolved(parked_id=record.parked_id, outcome=resolution, position=position)
        )
    store.resolve_parked(resolutions)
    summary.appended = outcomes["appended"]
    summary.duplicates = outcomes["duplicate"]
    summary.superseded = outcomes["superseded"]
    summary.skipped = outcomes["skipped"]
    summary.unchanged = outcomes["unchanged"]
    return summary


def _redrive_one(
    store: EventStore,
    outcome: Event | Skipped | Unchanged | MarkerSeen,
    newest: dict[tuple[str, str], int],
) -> tuple[Resolution, int | Conflict | None]:
    if isinstance(outcome, Skipped | MarkerSeen):
        return "skipped", None
    if isinstance(outcome, Unchanged):
        return "unchanged", None
    item = (outcome.pk, outcome.sk)
    assert isinstance(outcome.source, EventSource)  # a parked record is a stream record
    sequence = int(outcome.source.sequence_number)
    if newest.get(item, -1) > sequence:
        return "superseded", None
    (position,) = store.append_outcomes([outcome])
    if isinstance(position, Conflict):
        return "duplicate", position  # not resolved: the caller keeps it parked
    if position is None:
        return "duplicate", None
    newest[item] = sequence
    return "appended", position


def _newest_sequence_by_item(store: EventStore, *, after: int) -> dict[tuple[str, str], int]:
    newest: dict[tuple[str, str], int] = {}
    for recorded in store.iter_events(after=after):
        event = recorded.event
        item = (event.pk, event.sk)
        source = event.source
        # A backfilled row was read, behind the backfill's barrier, after every stream record
        # then stored or parked: it is newer than any redriven record of its item.
        sequence = int(source.sequence_number) if isinstance(source, EventSource) else BACKFILLED
        if sequence > newest.get(item, -1):
            newest[item] = sequence
    return newest


def lowest_unstored_sequence(records: Sequence[SourceRecord], stored_through: int) -> str | None:
    """The lowest SequenceNumber among records an interrupted ingest did not store.

    What a stream Lambda reports as its batch item failure: Lambda retries from there, and
    records before it that were stored are harmless duplicates on the retry. None when no
    unstored record carries a readable sequence number.
    """
    numbers = [
        sequence
        for record in records[stored_through:]
        if (sequence := _identify(record.raw)[1]) is not None
        and sequence.isascii()
        and sequence.isdigit()
        and len(sequence) <= MAX_SEQUENCE_NUMBER_DIGITS
    ]
    return min(numbers, key=int) if numbers else None
