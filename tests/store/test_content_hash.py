"""Content hashes: what tells a redelivered copy from a different record under the same key.

The hash must not change with an encoding of the same content (a payload's key order or
spacing, an event stored under the older schema), and must change with anything else.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from receipt_events.store import ParkedRecord, open_store
from receipt_events.store.content import content_hash
from tests.store.helpers import label_set

V2_SOURCE = b',"schema_version":2,"source":{"origin":"stream",'
V1_SOURCE = b',"schema_version":1,"source":{'


def parked(payload: bytes, *, error: str = "bad", origin: str = "file:1") -> ParkedRecord:
    return ParkedRecord(parked_id="id", origin=origin, error=error, payload=payload)


def test_a_parked_payload_hashes_alike_whatever_its_key_order_and_spacing() -> None:
    document = {"eventID": "e-1", "dynamodb": {"Keys": {"PK": {"S": "IMAGE#1"}}, "x": [1, 2.5]}}
    compact = json.dumps(document, separators=(",", ":")).encode()
    spaced = json.dumps(dict(reversed(list(document.items()))), indent=2).encode()
    assert compact != spaced
    assert content_hash(parked(compact)) == content_hash(parked(spaced, error="other", origin="b"))


def test_a_parked_payload_with_other_content_hashes_differently() -> None:
    one = parked(b'{"eventID":"e-1","eventName":"INSERT"}')
    other = parked(b'{"eventID":"e-1","eventName":"REMOVE"}')
    assert content_hash(one) != content_hash(other)


def test_a_payload_that_is_not_json_is_hashed_as_its_bytes() -> None:
    assert content_hash(parked(b"not json {")) != content_hash(parked(b"not json  {"))
    assert content_hash(parked(b"\xff\xfe")) == content_hash(parked(b"\xff\xfe"))


def test_an_event_hash_follows_its_content() -> None:
    event = label_set("e-1", status="VALID")
    assert content_hash(event) == content_hash(label_set("e-1", status="VALID"))
    assert content_hash(event) != content_hash(label_set("e-1", status="INVALID"))
    assert content_hash(event) != content_hash(label_set("e-1", status="VALID", reasoning="x"))


def _old_file(path: Path, event_json: bytes, topic: str) -> None:
    """A store file as written before content hashes (no column), holding one v1 event."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
            "state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
        connection.execute("INSERT INTO events VALUES (?, 1, ?, ?)", ("ddb:e-1", topic, event_json))


def test_an_event_stored_before_hashes_under_the_old_schema_is_still_a_copy(
    tmp_path: Path,
) -> None:
    """A replay of an old stream file into an upgraded store: the same record is a duplicate
    (hashed again from the stored, upcast event), a different one a conflict."""
    event = label_set("e-1", status="VALID")
    v2 = msgspec.json.encode(event)
    assert V2_SOURCE in v2
    v1 = v2.replace(V2_SOURCE, V1_SOURCE)
    path = tmp_path / "old.db"
    _old_file(path, v1, "receipt_events.WordLabelSet.v1")
    with open_store(f"sqlite:///{path}") as store:
        assert [recorded.event for recorded in store.iter_events()] == [event]
        assert store.append([event]) == [None]
        assert store.parked_records() == []
        assert store.append([label_set("e-1", status="INVALID")]) == [None]
        (conflict,) = store.parked_records()
    assert "already stored at position 1" in conflict.error
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(events)")]
    assert "content_hash" in columns


def test_a_backfilled_item_read_again_later_is_a_duplicate_not_a_conflict() -> None:
    """An item is backfilled at most once: a later pass's read of it (another read time,
    maybe other content) is a plain duplicate; a stream record's eventID is compared."""
    from receipt_events.events import BackfillSource

    def backfilled(read_at: float, status: str) -> Any:
        event = label_set("unused", status=status)
        source = BackfillSource(via="scan", table="receipts", read_at=read_at)
        return msgspec.structs.replace(event, source=source)

    first, later = backfilled(1.0, "VALID"), backfilled(2.0, "INVALID")
    assert first.originator_id == later.originator_id
    with open_store("memory://") as store:
        assert store.append_outcomes([first]) == [1]
        assert store.append_outcomes([later]) == [None]
        assert store.parked_records() == []
        stream = label_set("e-9", status="VALID")
        store.append([stream])
        assert store.append([label_set("e-9", status="INVALID")]) == [None]
        assert len(store.parked_records()) == 1
