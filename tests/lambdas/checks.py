"""Checks shared by the Lambda tests: the log against a reference, a snapshot against the table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from receipt_chroma.client import open_chroma
from receipt_chroma.digest import dump
from receipt_chroma.records import ChromaRecord
from receipt_events.store import EventStore
from tests.support.expected_projection import Expected, assert_records_match, expected_projection
from tests.support.lambda_pipeline import DIMENSION, Pipeline


def log_ids(store: EventStore) -> list[str]:
    """The stream eventIDs of the log's events, in log order."""
    return [recorded.event.source.event_id for recorded in store.iter_events()]


def assert_stored_once(store: EventStore, reference: EventStore) -> None:
    """Every event of the reference log is in ``store`` exactly once, in the same order."""
    ids = log_ids(store)
    repeated = [event_id for event_id, n in Counter(ids).items() if n > 1]
    assert not repeated, f"events stored more than once: {repeated}"
    assert ids == log_ids(reference)


def dump_snapshot(path: Path) -> dict[str, list[ChromaRecord]]:
    with open_chroma(path / "chroma", create=False) as chroma:
        return dump(chroma)


def by_id(records: dict[str, list[ChromaRecord]]) -> dict[str, dict[str, ChromaRecord]]:
    return {name: {record.id: record for record in found} for name, found in records.items()}


def assert_matches_table(
    records: dict[str, list[ChromaRecord]], pipeline: Pipeline
) -> dict[str, dict[str, Expected]]:
    """The collections hold exactly what the table implies (by the rules of
    docs/projection.md): ids, documents, embeddings and full metadata. Returns the expectation
    for further checks."""
    expected = expected_projection(pipeline.table, pipeline.history.runs, dimension=DIMENSION)
    assert_records_match(by_id(records), expected)  # `verify`'s rebuild checks bytes
    return expected


def metadata_of(records: dict[str, list[ChromaRecord]], collection: str, record_id: str) -> Any:
    for record in records[collection]:
        if record.id == record_id:
            return record.metadata
    return None
