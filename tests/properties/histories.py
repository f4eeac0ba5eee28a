"""A hypothesis strategy for event-level histories of a few receipts, with their deltas.

A history is what the log would hold after the stream processor ran: typed events with
unique event ids and increasing sequence numbers, appended in a few calls, some of them
redelivered (the same event appended again, which the store keeps once), plus the embedding
deltas the ``EmbeddingsPublished`` events point at (for a :class:`MemoryDeltaSource`).

Operations: embedding runs over some or all of a receipt's lines and words (a later run over
the same receipt is a re-embedding), a run published again under a new event id, place
changes of both place entities (random subsets of the fields, the rest ``None``), place
removals, label sets (a small label vocabulary, every status, equal or missing timestamps,
sometimes several labels of one word in a row) and removals, receipt/line/word removals,
and redeliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from receipt_chroma.deltas import MemoryDeltaSource
from receipt_chroma.records import ChromaRecord, embedding_bytes
from receipt_events.events import (
    PLACE_FIELDS,
    VALIDATION_STATUSES,
    EmbeddingsPublished,
    Event,
    EventSource,
    LineRemoved,
    PlaceChanged,
    PlaceRemoved,
    ReceiptRemoved,
    WordLabelRemoved,
    WordLabelSet,
    WordRemoved,
)
from receipt_events.keys import LineKey, WordKey
from receipt_events.store import EventStore, open_store
from synthetic.deltas import deterministic_vector
from tests.properties.profiles import Sizes

DIMENSION = 8
IMAGE_IDS = (
    "3f2a0d5e-0000-4000-8000-000000000001",
    "3f2a0d5e-0000-4000-8000-000000000002",
)
LABELS = ("TOTAL", "DATE", "MERCHANT_NAME", "TAX")
PROPOSERS = (None, "gpt-4o", "human", "rules")
TIMESTAMPS = (
    None,
    "2024-03-01T10:00:00+00:00",
    "2024-03-01T10:00:00+00:00",  # drawn twice as often: equal timestamps are common
    "2024-03-01T10:00:00Z",  # the same instant, written differently
    "2024-03-01T11:00:00+01:00",  # the same instant again
    "2024-03-02T09:30:00",  # naive (read as UTC)
    "2024-03-03T08:15:00.250000+00:00",
)
# Every status; PENDING and VALID (which decide label_status and the "newest" keys) twice.
STATUSES = (*VALIDATION_STATUSES, "PENDING", "VALID")
PLACE_ENTITIES = ("RECEIPT_PLACE", "RECEIPT_METADATA")


@dataclass(frozen=True)
class Receipt:
    image_id: str
    receipt_id: int
    lines: dict[int, tuple[int, ...]]  # line id → word ids

    @property
    def words(self) -> list[tuple[int, int]]:
        return [(line, word) for line, words in self.lines.items() for word in words]


@dataclass(repr=False)
class History:
    receipts: list[Receipt]
    events: list[Event]  # the log: each distinct event once, in append order
    appends: list[list[Event]]  # the append calls, redeliveries included
    deltas: dict[tuple[str, str], list[ChromaRecord]] = field(default_factory=dict)
    redeliveries: int = 0

    @property
    def head(self) -> int:
        return len(self.events)

    def delta_source(self) -> MemoryDeltaSource:
        source = MemoryDeltaSource()
        for (location, collection), records in self.deltas.items():
            source.put(location, collection, records)  # type: ignore[arg-type]
        return source

    def open_store(self) -> EventStore:
        """A fresh memory store holding the history (positions 1..head)."""
        store = open_store("memory://")
        positions: list[int] = []
        for chunk in self.appends:
            positions.extend(p for p in store.append(chunk) if p is not None)
        assert positions == list(range(1, self.head + 1)), positions
        return store

    def describe(self) -> str:
        """The log, one event per line, then the deltas (without vectors), for reports."""
        lines = [
            f"{position:3d} {describe_event(event)}"
            for position, event in enumerate(self.events, start=1)
        ]
        lines.append(f"appended in calls of {[len(chunk) for chunk in self.appends]} events")
        for (location, _), records in sorted(self.deltas.items()):
            lines.append(f"delta {location}:")
            lines.extend(
                f"    {short_id(r.id)} document={r.document!r} metadata={r.metadata}"
                for r in records
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"History(\n{self.describe()}\n)"


def short_id(record_id: str) -> str:
    """A Chroma id with the image uuid replaced by its index in IMAGE_IDS."""
    for index, image_id in enumerate(IMAGE_IDS):
        record_id = record_id.replace(f"IMAGE#{image_id}#", f"IMAGE#{index}#")
    return record_id


def describe_event(event: Event) -> str:
    fields: dict[str, Any] = {
        name: getattr(event, name)
        for name in event.__struct_fields__
        if name not in ("source", "schema_version", "image_id")
    }
    image = IMAGE_IDS.index(event.image_id) if event.image_id in IMAGE_IDS else event.image_id
    fields = {k: v for k, v in fields.items() if v is not None}
    return f"{type(event).__name__}(image={image}, {fields}) [{event.source.event_id}]"


# Operation kinds and their weights (a kind drawn with weight w appears w times).
OPS = {
    "publish": 4,
    "republish": 1,
    "place_changed": 3,
    "place_removed": 1,
    "label_set": 4,
    "label_burst": 2,  # several labels of one word, one event each
    "label_removed": 2,
    "receipt_removed": 1,
    "line_removed": 1,
    "word_removed": 1,
    "redeliver": 2,
}
OP_KINDS = [kind for kind, weight in OPS.items() for _ in range(weight)]


def _value(name: str) -> st.SearchStrategy[str | None]:
    return st.sampled_from([None, f"{name}-a", f"{name}-b"])


def delta_metadata(kind: str, receipt: Receipt, line: int, word: int | None) -> Any:
    """Delta metadata as embedding producers write it: ids, OCR fields, stale owned keys."""
    optional: dict[str, st.SearchStrategy[Any]] = {
        "image_id": st.just(receipt.image_id),
        "receipt_id": st.just(receipt.receipt_id),
        "line_id": st.just(line),
        "text": st.sampled_from(["TOTAL", "12.50", "Acme"]),
        "confidence": st.sampled_from([0.5, 0.97, 1.0]),
        "source": st.sampled_from(["openai_embedding_batch", "reembed"]),
        "is_noise": st.booleans(),
        "tags": st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2),
        # stale copies of keys the projection owns
        "merchant_name": st.sampled_from(["Stale Mart", "merchant_name-a"]),
        "address": st.just("1 Old Road"),
    }
    # label keys are the projection's on words only; a lines delta's copy is kept as it is
    optional["label_status"] = st.sampled_from(["unvalidated", "validated"])
    if kind == "words":
        optional["word_id"] = st.just(word)
        optional["valid_labels"] = st.just(["DATE"])
        optional["label_validated_at"] = st.just("2020-01-01T00:00:00+00:00")
    return st.fixed_dictionaries({}, optional=optional)


class _Builder:
    def __init__(self, draw: Any, receipts: list[Receipt]) -> None:
        self.draw = draw
        self.receipts = receipts
        self.events: list[Event] = []
        self.sequence: list[Event] = []  # every append, redeliveries included
        self.runs: list[EmbeddingsPublished] = []
        self.deltas: dict[tuple[str, str], list[ChromaRecord]] = {}
        self.redeliveries = 0

    def source(self, name: str) -> EventSource:
        number = len(self.events) + 1
        return EventSource(
            event_id=f"ev-{number:04d}",
            event_name=name,  # type: ignore[arg-type]
            sequence_number=f"{number:021d}",
            approximate_creation_date_time=1_700_000_000 + number,
            region="us-east-1",
        )

    def emit(self, cls: type[Any], name: str, receipt: Receipt, **fields: Any) -> None:
        event = cls(
            source=self.source(name),
            image_id=receipt.image_id,
            receipt_id=receipt.receipt_id,
            **fields,
        )
        self.events.append(event)
        self.sequence.append(event)

    # Half the draws go to the first receipt / word, so that events meet on one record
    # (several labels of one word, a label and a re-embedding) far more often than uniformly.
    def receipt(self) -> Receipt:
        return self.draw(st.sampled_from(self.receipts[:1]) | st.sampled_from(self.receipts))

    def word(self, receipt: Receipt) -> tuple[int, int]:
        return self.draw(st.sampled_from(receipt.words[:1]) | st.sampled_from(receipt.words))

    def op(self, kind: str) -> None:
        draw = self.draw
        if kind == "redeliver" and self.events:
            self.sequence.append(draw(st.sampled_from(self.events)))
            self.redeliveries += 1
        elif kind == "republish" and self.runs:
            run = draw(st.sampled_from(self.runs))
            receipt = next(
                r
                for r in self.receipts
                if (r.image_id, r.receipt_id) == (run.image_id, run.receipt_id)
            )
            self.emit(
                EmbeddingsPublished,
                "INSERT",
                receipt,
                run_id=run.run_id,
                lines_delta=run.lines_delta,
                words_delta=run.words_delta,
            )
        elif kind in ("publish", "redeliver", "republish"):
            self.publish(self.receipt())
        elif kind == "place_changed":
            fields = {name: draw(_value(name)) for name in PLACE_FIELDS}
            self.emit(
                PlaceChanged,
                draw(st.sampled_from(["INSERT", "MODIFY"])),
                self.receipt(),
                entity=draw(st.sampled_from(PLACE_ENTITIES)),
                **fields,
            )
        elif kind == "place_removed":
            self.emit(
                PlaceRemoved,
                "REMOVE",
                self.receipt(),
                entity=draw(st.sampled_from(PLACE_ENTITIES)),
            )
        elif kind in ("label_set", "label_burst"):
            receipt = self.receipt()
            line, word = self.word(receipt)
            count = draw(st.integers(2, 3)) if kind == "label_burst" else 1
            for label in draw(st.lists(st.sampled_from(LABELS), min_size=count, unique=True)):
                self.emit(
                    WordLabelSet,
                    draw(st.sampled_from(["INSERT", "MODIFY"])),
                    receipt,
                    line_id=line,
                    word_id=word,
                    label=label,
                    validation_status=draw(st.sampled_from(STATUSES)),
                    label_proposed_by=draw(st.sampled_from(PROPOSERS)),
                    reasoning=draw(st.sampled_from([None, "looks like a total"])),
                    timestamp_added=draw(st.sampled_from(TIMESTAMPS)),
                )
        elif kind == "label_removed":
            receipt = self.receipt()
            line, word = self.word(receipt)
            self.emit(
                WordLabelRemoved,
                "REMOVE",
                receipt,
                line_id=line,
                word_id=word,
                label=draw(st.sampled_from(LABELS)),
            )
        elif kind == "receipt_removed":
            self.emit(ReceiptRemoved, "REMOVE", self.receipt())
        elif kind == "line_removed":
            receipt = self.receipt()
            self.emit(
                LineRemoved, "REMOVE", receipt, line_id=draw(st.sampled_from(list(receipt.lines)))
            )
        elif kind == "word_removed":
            receipt = self.receipt()
            line, word = self.word(receipt)
            self.emit(WordRemoved, "REMOVE", receipt, line_id=line, word_id=word)
        else:  # pragma: no cover
            raise AssertionError(kind)

    def publish(self, receipt: Receipt) -> None:
        draw = self.draw
        run_id = f"run-{len(self.runs) + 1}"
        # Usually the whole receipt, as embedding runs do; sometimes part of it, or nothing.
        every_line, every_word = sorted(receipt.lines), receipt.words
        lines = draw(st.just(every_line) | st.lists(st.sampled_from(every_line), unique=True))
        words = draw(st.just(every_word) | st.lists(st.sampled_from(every_word), unique=True))
        line_records = [
            self.record(
                run_id,
                LineKey(receipt.image_id, receipt.receipt_id, line).chroma_id,
                f"line {line}",
                draw(delta_metadata("lines", receipt, line, None)),
            )
            for line in lines
        ]
        word_records = [
            self.record(
                run_id,
                WordKey(receipt.image_id, receipt.receipt_id, line, word).chroma_id,
                f"word {line}.{word}",
                draw(delta_metadata("words", receipt, line, word)),
            )
            for line, word in words
        ]
        lines_delta = f"deltas/{run_id}/lines"
        words_delta = f"deltas/{run_id}/words"
        self.deltas[(lines_delta, "lines")] = line_records
        self.deltas[(words_delta, "words")] = word_records
        self.emit(
            EmbeddingsPublished,
            "INSERT",
            receipt,
            run_id=run_id,
            lines_delta=lines_delta,
            words_delta=words_delta,
        )
        self.runs.append(self.events[-1])  # type: ignore[arg-type]

    def record(self, run_id: str, record_id: str, text: str, metadata: Any) -> ChromaRecord:
        # A delta record may lack a document (a Chroma delta can hold one without).
        document = self.draw(st.sampled_from([text, text, f"{text} ({run_id})", None]))
        vector = deterministic_vector(run_id, record_id, DIMENSION)
        return ChromaRecord(record_id, document, metadata, embedding_bytes(vector))


@st.composite
def receipts(draw: Any, sizes: Sizes) -> list[Receipt]:
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(IMAGE_IDS), st.integers(1, 2)),
            min_size=1,
            max_size=sizes.max_receipts,
            unique=True,
        )
    )
    found = []
    for image_id, receipt_id in keys:
        line_ids = draw(st.integers(1, sizes.max_lines))
        lines = {
            line: tuple(range(1, draw(st.integers(1, sizes.max_words)) + 1))
            for line in range(1, line_ids + 1)
        }
        found.append(Receipt(image_id, receipt_id, lines))
    return found


@st.composite
def histories(draw: Any, sizes: Sizes) -> History:
    builder = _Builder(draw, draw(receipts(sizes)))
    kinds = draw(
        st.lists(st.sampled_from(OP_KINDS), min_size=sizes.min_ops, max_size=sizes.max_ops)
    )
    if "publish" not in kinds:  # a history without embeddings projects nothing
        kinds.insert(draw(st.integers(0, len(kinds))), "publish")
    for kind in kinds:
        builder.op(kind)
    # Split the appends into a few calls; a redelivery may fall in the same call or a later one.
    cuts = draw(st.sets(st.integers(1, max(1, len(builder.sequence) - 1)), max_size=3))
    appends: list[list[Event]] = []
    start = 0
    for cut in [*sorted(cuts), len(builder.sequence)]:
        if cut > start:
            appends.append(builder.sequence[start:cut])
            start = cut
    return History(
        receipts=builder.receipts,
        events=builder.events,
        appends=appends,
        deltas=builder.deltas,
        redeliveries=builder.redeliveries,
    )


def positions(head: int) -> st.SearchStrategy[int]:
    """A log position in [0, head], drawn uniformly (``integers`` favours the small end)."""
    return st.sampled_from(range(head + 1))


def cut_points(draw: Any, head: int, max_cuts: int = 4) -> Sequence[int]:
    """Increasing positions in [0, head] (a partition of the log), ending at head."""
    cuts = draw(st.lists(positions(head), max_size=max_cuts))
    return [*sorted(set(cuts) - {head}), head]
