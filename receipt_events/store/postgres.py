"""PostgreSQL backend (for scale): the library's recorder with an idempotent insert.

Each append takes the library's ``LOCK TABLE ... IN EXCLUSIVE MODE`` (readers are not blocked),
so positions are handed out in commit order and a reader tailing the log misses nothing.
Duplicates are filtered inside that lock and skipped by ``ON CONFLICT DO NOTHING``, which
also makes a retry after a connection drop (when the first attempt did commit) harmless.
Positions are strictly increasing but may have gaps (a rolled-back transaction uses ids).
Keep ``enable_db_functions`` off: that path takes no table lock (see docs/event-store.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from receipt_events import faults
from receipt_events.store.recorders import DedupKey, HeadMoved, Logged, Recorders
from receipt_events.store.url import PostgresTarget


class PostgresDedupRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.insert_new_statement = SQL(
            "INSERT INTO {schema}.{table} "
            "(originator_id, originator_version, topic, state, content_hash) "
            "SELECT u.originator_id, u.originator_version, u.topic, u.state, h.content_hash "
            "FROM unnest(%s::{schema}.{stored_event_type}[]) WITH ORDINALITY "
            "AS u(originator_id, originator_version, topic, state, ordinal) "
            "JOIN unnest(%s::text[]) WITH ORDINALITY AS h(content_hash, ordinal) USING (ordinal) "
            "WHERE NOT EXISTS (SELECT 1 FROM {schema}.{table} AS t "
            "WHERE t.originator_id = u.originator_id "
            "AND t.originator_version = u.originator_version) "
            "ORDER BY u.ordinal "
            "ON CONFLICT (originator_id, originator_version) DO NOTHING "
            "RETURNING originator_id, notification_id"
        ).format(
            schema=Identifier(datastore.schema),
            table=Identifier(events_table_name),
            stored_event_type=Identifier(self.stored_event_type_name),
        )
        self.logged_statement = SQL(
            "SELECT t.notification_id, t.originator_id, t.originator_version, t.content_hash "
            "FROM {schema}.{table} AS t JOIN unnest(%s::text[], %s::bigint[]) AS k(id, version) "
            "ON t.originator_id = k.id AND t.originator_version = k.version"
        ).format(schema=Identifier(datastore.schema), table=Identifier(events_table_name))
        self.add_hash_column_statement = SQL(
            "ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS content_hash text"
        ).format(schema=Identifier(datastore.schema), table=Identifier(events_table_name))

    def create_table(self) -> None:
        """The library's table, plus the content hash column (added to older tables)."""
        super().create_table()
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(self.add_hash_column_statement)

    @retry((InterfaceError, OperationalError), max_attempts=5, wait=0.2)
    def insert_new(
        self,
        stored_events: Sequence[StoredEvent],
        hashes: Sequence[str],
        *,
        expected_head: int | None = None,
    ) -> list[int | None]:
        if not stored_events:
            return []
        rows = [
            self.construct_pg_stored_event(s.originator_id, s.originator_version, s.topic, s.state)
            for s in stored_events
        ]
        with self.datastore.transaction(commit=True) as cursor:
            self._lock_table(cursor)
            if expected_head is not None:  # every writer holds the table lock: no race here
                cursor.execute(self.max_notification_id_statement)
                row = cursor.fetchone()
                head = (row["max"] if row else None) or 0
                if head != expected_head:
                    raise HeadMoved(expected_head, head)
            self._notify_channel(cursor)
            cursor.execute(self.insert_new_statement, (rows, list(hashes)))
            inserted = {row["originator_id"]: row["notification_id"] for row in cursor.fetchall()}
            faults.point("append.before_commit")
        return [inserted.get(str(s.originator_id)) for s in stored_events]

    @retry((InterfaceError, OperationalError), max_attempts=5, wait=0.2)
    def logged(self, keys: Sequence[DedupKey]) -> dict[DedupKey, Logged]:
        if not keys:
            return {}
        ids = [originator_id for originator_id, _ in keys]
        versions = [version for _, version in keys]
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(self.logged_statement, (ids, versions))
            rows = cursor.fetchall()
        return {
            (row["originator_id"], row["originator_version"]): Logged(
                row["notification_id"], row["content_hash"]
            )
            for row in rows
        }


def open_postgres(target: PostgresTarget) -> tuple[PostgresDatastore, Recorders]:
    datastore = PostgresDatastore(
        dbname=target.dbname,
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        connect_timeout=target.connect_timeout,
        lock_timeout=target.lock_timeout,
        schema=target.schema,
        pool_size=target.pool_size,
        max_overflow=2,
        pre_ping=True,
        originator_id_type="text",
        enable_db_functions=False,
    )
    log = PostgresDedupRecorder(datastore, events_table_name=f"{target.table_prefix}events")
    parked = PostgresDedupRecorder(
        datastore, events_table_name=f"{target.table_prefix}parked_records"
    )
    progress = PostgresDedupRecorder(datastore, events_table_name=f"{target.table_prefix}progress")
    # Opening runs DDL (schema, composite types, tables, the library's insert function), and
    # the same DDL run by several processes at once fails ("tuple concurrently updated",
    # duplicate pg_type rows): serialise it per schema with a session advisory lock.
    lock_key = f"receipt_events.open:{target.schema}"
    try:
        _create_tables(datastore, target, lock_key, (log, parked, progress))
    except BaseException:
        datastore.close()
        raise
    return datastore, Recorders(log, parked, progress)


def _create_tables(
    datastore: PostgresDatastore,
    target: PostgresTarget,
    lock_key: str,
    recorders: tuple[PostgresDedupRecorder, ...],
) -> None:
    with datastore.get_connection() as connection:
        connection.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock_key,))
        try:
            if target.schema != "public":
                connection.execute(
                    SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(Identifier(target.schema))
                )
            for recorder in recorders:
                recorder.create_table()
        finally:
            connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock_key,))
