"""Builders for projection tests: events in a store, deltas in memory, snapshots on disk.

:class:`Log` builds domain events directly (no stream parsing), each with its own
:class:`EventSource` (unique ``event_id``, increasing ``sequence_number``), and keeps the
embedding deltas of the runs it publishes in a :class:`MemoryDeltaSource`. Every delta record
carries a small deterministic 8-d float32 vector and the stale creation-time values the old
system wrote (``merchant_name``, ``label_status``), which the projection must override.

The expected metadata of a record is always the full dict: the delta's own keys
(:func:`line_meta` / :func:`word_meta`, which are exactly the non-managed keys of the delta)
plus the place and label keys a test spells out.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from projections.runner import CatchUpResult, catch_up, snapshot_digest
from projections.snapshot_dir import open_snapshot
from projections.state import STATE_FILE
from receipt_chroma.deltas import DeltaSource, MemoryDeltaSource
from receipt_chroma.digest import dump
from receipt_chroma.records import ChromaRecord, embedding_bytes
from receipt_events.events import (
    EmbeddingsPublished,
    Event,
    EventSource,
    LineRemoved,
    PlaceChanged,
    PlaceEntity,
    PlaceRemoved,
    ReceiptRemoved,
    StreamEventName,
    ValidationStatus,
    WordLabelRemoved,
    WordLabelSet,
    WordRemoved,
)
from receipt_events.keys import LineKey, WordKey
from receipt_events.store import EventStore
from synthetic.deltas import Layout, deterministic_vector, write_delta

IMAGE = "3f2b1c9e-8d4a-4e6f-9b1a-2c3d4e5f6a7b"
OTHER_IMAGE = "a1b2c3d4-0000-4000-8000-00000000beef"
DIM = 8
SEQUENCE_BASE = 10**30  # DynamoDB sequence numbers are far beyond 64 bits
STALE_MERCHANT = "Stale Mart (at embedding time)"


def line_id(line: int, *, receipt: int = 1, image: str = IMAGE) -> str:
    return LineKey(image, receipt, line).chroma_id


def word_id(line: int, word: int, *, receipt: int = 1, image: str = IMAGE) -> str:
    return WordKey(image, receipt, line, word).chroma_id


def vector(run_id: str, record_id: str, dim: int = DIM) -> npt.NDArray[np.float32]:
    return deterministic_vector(run_id, record_id, dim)


def line_meta(run_id: str, line: int, text: str) -> dict[str, Any]:
    """The delta metadata of a line that the projection keeps as it is."""
    return {"line_id": line, "text": text, "run": run_id, "confidence": 0.5}


def word_meta(run_id: str, line: int, word: int, text: str) -> dict[str, Any]:
    """The delta metadata of a word that the projection keeps as it is."""
    return {"line_id": line, "word_id": word, "text": text, "run": run_id, "confidence": 0.5}


def line_record(
    run_id: str,
    line: int,
    text: str,
    *,
    receipt: int = 1,
    image: str = IMAGE,
    dim: int = DIM,
    record_id: str | None = None,
) -> ChromaRecord:
    record_id = record_id or line_id(line, receipt=receipt, image=image)
    metadata = {**line_meta(run_id, line, text), "merchant_name": STALE_MERCHANT}
    return ChromaRecord(record_id, text, metadata, embedding_bytes(vector(run_id, record_id, dim)))


def word_record(
    run_id: str,
    line: int,
    word: int,
    text: str,
    *,
    receipt: int = 1,
    image: str = IMAGE,
    dim: int = DIM,
    record_id: str | None = None,
) -> ChromaRecord:
    record_id = record_id or word_id(line, word, receipt=receipt, image=image)
    metadata = {
        **word_meta(run_id, line, word, text),
        "merchant_name": STALE_MERCHANT,  # creation-time values the projection owns
        "label_status": "unvalidated",
    }
    return ChromaRecord(record_id, text, metadata, embedding_bytes(vector(run_id, record_id, dim)))


class Log:
    """Builds events (each with a fresh source) and appends them to an event store."""

    def __init__(
        self,
        store: EventStore,
        deltas: MemoryDeltaSource | None = None,
        *,
        prefix: str = "ev",
        created: int = 1_717_000_000,
    ) -> None:
        self.store = store
        self.deltas = deltas if deltas is not None else MemoryDeltaSource()
        self.prefix = prefix
        self.created = created
        self._counter = itertools.count(1)

    # -- sources -----------------------------------------------------------------------

    def source(self, name: StreamEventName = "INSERT") -> EventSource:
        n = next(self._counter)
        return EventSource(
            event_id=f"{self.prefix}-{n:05d}",
            event_name=name,
            sequence_number=str(SEQUENCE_BASE + n),
            approximate_creation_date_time=self.created + n,
            region="eu-west-1",
        )

    # -- event builders (not appended) ---------------------------------------------------

    def label(
        self,
        line: int,
        word: int,
        label: str = "TOTAL",
        status: ValidationStatus = "VALID",
        *,
        by: str | None = None,
        at: str | None = None,
        receipt: int = 1,
        image: str = IMAGE,
    ) -> WordLabelSet:
        return WordLabelSet(
            source=self.source("INSERT"),
            image_id=image,
            receipt_id=receipt,
            line_id=line,
            word_id=word,
            label=label,
            validation_status=status,
            label_proposed_by=by,
            timestamp_added=at,
        )

    def unlabel(
        self, line: int, word: int, label: str = "TOTAL", *, receipt: int = 1, image: str = IMAGE
    ) -> WordLabelRemoved:
        return WordLabelRemoved(
            source=self.source("REMOVE"),
            image_id=image,
            receipt_id=receipt,
            line_id=line,
            word_id=word,
            label=label,
        )

    def place(
        self,
        entity: PlaceEntity = "RECEIPT_PLACE",
        *,
        receipt: int = 1,
        image: str = IMAGE,
        **fields: str | None,
    ) -> PlaceChanged:
        return PlaceChanged(
            source=self.source("MODIFY"),
            image_id=image,
            receipt_id=receipt,
            entity=entity,
            **fields,
        )

    def unplace(
        self, entity: PlaceEntity = "RECEIPT_PLACE", *, receipt: int = 1, image: str = IMAGE
    ) -> PlaceRemoved:
        return PlaceRemoved(
            source=self.source("REMOVE"), image_id=image, receipt_id=receipt, entity=entity
        )

    def run(
        self,
        run_id: str,
        *,
        lines: Mapping[int, str] | None = None,
        words: Mapping[tuple[int, int], str] | None = None,
        receipt: int = 1,
        image: str = IMAGE,
        dim: int = DIM,
        store_deltas: bool = True,
    ) -> EmbeddingsPublished:
        """An embedding run's event; its two deltas go into ``self.deltas`` unless told not."""
        lines_location, words_location = f"{run_id}/lines", f"{run_id}/words"
        if store_deltas:
            self.deltas.put(
                lines_location,
                "lines",
                [
                    line_record(run_id, line, text, receipt=receipt, image=image, dim=dim)
                    for line, text in (lines or {}).items()
                ],
            )
            self.deltas.put(
                words_location,
                "words",
                [
                    word_record(run_id, line, word, text, receipt=receipt, image=image, dim=dim)
                    for (line, word), text in (words or {}).items()
                ],
            )
        return EmbeddingsPublished(
            source=self.source("INSERT"),
            image_id=image,
            receipt_id=receipt,
            run_id=run_id,
            lines_delta=lines_location,
            words_delta=words_location,
        )

    def remove_receipt(self, *, receipt: int = 1, image: str = IMAGE) -> ReceiptRemoved:
        return ReceiptRemoved(source=self.source("REMOVE"), image_id=image, receipt_id=receipt)

    def remove_line(self, line: int, *, receipt: int = 1, image: str = IMAGE) -> LineRemoved:
        return LineRemoved(
            source=self.source("REMOVE"), image_id=image, receipt_id=receipt, line_id=line
        )

    def remove_word(
        self, line: int, word: int, *, receipt: int = 1, image: str = IMAGE
    ) -> WordRemoved:
        return WordRemoved(
            source=self.source("REMOVE"),
            image_id=image,
            receipt_id=receipt,
            line_id=line,
            word_id=word,
        )

    # -- the store -----------------------------------------------------------------------

    def add(self, *events: Event) -> list[int]:
        """Append events in order; return their positions (none may be a duplicate)."""
        positions = self.store.append(list(events))
        assert None not in positions, f"duplicate events appended: {positions}"
        return [p for p in positions if p is not None]


# -- snapshots ---------------------------------------------------------------------------


class Writes(list[tuple[str, str, int]]):
    """An ``on_write`` hook that records (operation, collection, records) per Chroma call."""

    def __call__(self, operation: str, collection: str, records: int) -> None:
        self.append((operation, collection, records))


class ChromaCalls(list[tuple[str, str, int, bool]]):
    """Every write call that reached a Chroma collection: (method, collection, ids, vectors?)."""


def project(store: EventStore, path: Path, deltas: DeltaSource, **options: Any) -> CatchUpResult:
    """Catch the snapshot directory at ``path`` up (creating it), then close it."""
    with open_snapshot(path) as snapshot:
        return catch_up(store, snapshot, deltas, **options)


def records(path: Path) -> dict[str, dict[str, ChromaRecord]]:
    """Every record of a snapshot directory: collection → id → record."""
    with open_snapshot(path, create=False) as snapshot:
        dumped = dump(snapshot.chroma)
    return {name: {r.id: r for r in found} for name, found in dumped.items()}


def metadatas(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """collection → id → metadata, for exact comparisons."""
    return {
        name: {record_id: dict(r.metadata) for record_id, r in found.items()}
        for name, found in records(path).items()
    }


def digest(path: Path) -> str:
    return snapshot_digest(path).digest


def checkpoint(path: Path) -> tuple[int, int | None]:
    """(checkpoint, inflight_to) of a snapshot directory."""
    with open_snapshot(path, create=False) as snapshot:
        return snapshot.state.checkpoint, snapshot.state.inflight_to


def write_deltas(deltas: MemoryDeltaSource, root: Path, layout: Layout = "directory") -> None:
    """Write every delta held in memory as a real delta under ``root`` at its location."""
    for (location, collection), held in deltas.deltas.items():
        write_delta(root / location, collection, held, layout)  # type: ignore[arg-type]


def all_metadata_values(dumped: Iterable[ChromaRecord]) -> list[Any]:
    values: list[Any] = []
    for record in dumped:
        for value in record.metadata.values():
            values.extend(value if isinstance(value, list) else [value])
    return values


def make_v1(path: Path) -> None:
    """Turn a snapshot's state into what receipt-events wrote before digest v2."""
    with sqlite3.connect(path / STATE_FILE) as db:
        db.execute("DELETE FROM meta WHERE key = 'digest_version'")
        db.execute("DROP TABLE collection_hashes")
        db.execute("ALTER TABLE records DROP COLUMN record_hash")
        db.execute("ALTER TABLE records DROP COLUMN stored_sha")
