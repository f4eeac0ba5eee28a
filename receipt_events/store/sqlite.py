"""SQLite backend (the embedded default): one database file, WAL, positions are SQLite rowids.

SQLite has one writer at a time, so rowids are handed out and committed in order and a reader
tailing the log cannot miss a row. The log is never deleted from, so rowids are never reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from receipt_events import faults

LOCK_TIMEOUT_SECONDS = 30  # other processes appending to the same file wait this long


class SQLiteDedupRecorder(SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore, events_table_name: str) -> None:
        super().__init__(datastore, events_table_name)
        self.insert_new_statement = (
            f"INSERT INTO {events_table_name} VALUES (?,?,?,?) "
            "ON CONFLICT (originator_id, originator_version) DO NOTHING"
        )

    def insert_new(self, stored_events: Sequence[StoredEvent]) -> list[int | None]:
        if not stored_events:
            return []
        positions: list[int | None] = []
        with self.datastore.transaction(commit=True) as cursor:
            raw = cursor.sqlite_cursor
            for stored in stored_events:
                raw.execute(
                    self.insert_new_statement,
                    (stored.originator_id, stored.originator_version, stored.topic, stored.state),
                )
                positions.append(raw.lastrowid if raw.rowcount == 1 else None)
            faults.point("append.before_commit")
        return positions


def open_sqlite(path: str) -> tuple[SQLiteDatastore, SQLiteDedupRecorder, SQLiteDedupRecorder]:
    """Open (creating if needed) the log and parked tables in one SQLite file."""
    if path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    datastore = SQLiteDatastore(
        str(Path(path).expanduser()),
        lock_timeout=LOCK_TIMEOUT_SECONDS,
        originator_id_type="text",
    )
    log = SQLiteDedupRecorder(datastore, "events")
    parked = SQLiteDedupRecorder(datastore, "parked_records")
    log.create_table()
    parked.create_table()
    return datastore, log, parked
