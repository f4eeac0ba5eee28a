"""SQLite backend (the embedded default): one database file, WAL, positions are SQLite rowids.

SQLite has one writer at a time, so rowids are handed out and committed in order and a reader
tailing the log cannot miss a row. The log is never deleted from, so rowids are never reused.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from eventsourcing.persistence import DatabaseError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from receipt_events import faults
from receipt_events.store.recorders import DedupKey, HeadMoved, Logged, Recorders

LOCK_TIMEOUT_SECONDS = 30  # other processes appending to the same file wait this long
WAL_RETRY_SECONDS = 0.02


class SQLiteDedupRecorder(SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore, events_table_name: str) -> None:
        super().__init__(datastore, events_table_name)
        self.insert_new_statement = (
            f"INSERT INTO {events_table_name} "
            "(originator_id, originator_version, topic, state, content_hash) VALUES (?,?,?,?,?) "
            "ON CONFLICT (originator_id, originator_version) DO NOTHING"
        )
        self.logged_statement = (
            f"SELECT rowid, content_hash FROM {events_table_name} "
            "WHERE originator_id = ? AND originator_version = ?"
        )

    def create_table(self) -> None:
        """The library's table, plus the content hash column (added to older files)."""
        super().create_table()
        # ALTER first, no read before it: a read would start a snapshot that could not be
        # upgraded to the write lock without failing at once when another process wrote.
        with self.datastore.transaction(commit=True) as cursor:
            try:
                cursor.sqlite_cursor.execute(
                    f"ALTER TABLE {self.events_table_name} ADD COLUMN content_hash TEXT"
                )
            except sqlite3.OperationalError as error:  # there already
                if "duplicate column" not in str(error):
                    raise

    def insert_new(
        self,
        stored_events: Sequence[StoredEvent],
        hashes: Sequence[str],
        *,
        expected_head: int | None = None,
    ) -> list[int | None]:
        if not stored_events:
            return []
        positions: list[int | None] = []
        with self.datastore.transaction(commit=True) as cursor:
            raw = cursor.sqlite_cursor
            for stored, content_hash in zip(stored_events, hashes, strict=True):
                raw.execute(
                    self.insert_new_statement,
                    (
                        stored.originator_id,
                        stored.originator_version,
                        stored.topic,
                        stored.state,
                        content_hash,
                    ),
                )
                positions.append(raw.lastrowid if raw.rowcount == 1 else None)
            if expected_head is not None:
                self._check_head(raw, positions, expected_head)
            faults.point("append.before_commit")
        return positions

    def logged(self, keys: Sequence[DedupKey]) -> dict[DedupKey, Logged]:
        found: dict[DedupKey, Logged] = {}
        with self.datastore.transaction(commit=False) as cursor:
            raw = cursor.sqlite_cursor
            for key in keys:
                raw.execute(self.logged_statement, key)
                row = raw.fetchone()
                if row is not None:
                    found[key] = Logged(row[0], row[1])
        return found

    def _check_head(
        self, raw: sqlite3.Cursor, positions: list[int | None], expected_head: int
    ) -> None:
        """Raise (rolling back) if a row committed after ``expected_head`` precedes ours.

        Checked after the inserts, which hold SQLite's write lock: reading the head first,
        in a deferred transaction, could meet a commit between the read and the write.
        """
        first = next((position for position in positions if position is not None), None)
        if first is None:
            return  # nothing inserted: nothing to order
        raw.execute(f"SELECT MAX(rowid) FROM {self.events_table_name} WHERE rowid < ?", (first,))
        head = raw.fetchone()[0] or 0
        if head != expected_head:
            raise HeadMoved(expected_head, head)


def use_wal(path: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> None:
    """Put the file in WAL mode before any pooled connection opens it.

    SQLite answers a journal-mode change it cannot make at once with "database is locked"
    without calling its busy handler, so processes opening the same new file at the same moment
    could fail there (eventsourcing switches the mode on its first connection). WAL mode is
    stored in the file: once set, later connections only read it.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with closing(sqlite3.connect(path, timeout=timeout)) as connection:
                (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() == "wal":
                return
            problem = f"journal mode stayed {mode!r}"
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            problem = str(error)
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError(f"could not switch to WAL mode: {problem}")
        time.sleep(WAL_RETRY_SECONDS)


def open_sqlite(path: str) -> tuple[SQLiteDatastore, Recorders]:
    """Open (creating if needed) the log, parked and progress tables in one SQLite file.

    A file that is not a SQLite database, or one that stays locked, is a ``DatabaseError``
    naming the file (a ``PersistenceError``, so the CLI reports it and the Lambda retries).
    """
    file = Path(path).expanduser()
    try:
        if path != ":memory:":
            file.parent.mkdir(parents=True, exist_ok=True)
            use_wal(file)
        datastore = SQLiteDatastore(
            str(file), lock_timeout=LOCK_TIMEOUT_SECONDS, originator_id_type="text"
        )
        log = SQLiteDedupRecorder(datastore, "events")
        parked = SQLiteDedupRecorder(datastore, "parked_records")
        progress = SQLiteDedupRecorder(datastore, "progress")
        for recorder in (log, parked, progress):
            recorder.create_table()
    except sqlite3.DatabaseError as error:
        raise DatabaseError(f"{file}: {error}") from error
    return datastore, Recorders(log, parked, progress)
