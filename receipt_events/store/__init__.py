"""The event store: open one from a URL (``sqlite:///``, ``postgresql://``, ``dynamodb://``,
``memory://``)."""

from __future__ import annotations

import os

from receipt_events.store.event_store import (
    CONFLICT_ORIGIN,
    DEFAULT_PAGE_SIZE,
    Conflict,
    EventStore,
    Recorded,
)
from receipt_events.store.parked import ParkedRecord, ParkedResolved, parked_id_for
from receipt_events.store.recorders import HeadMoved
from receipt_events.store.url import (
    DEFAULT_STORE_URL,
    STORE_ENV,
    DynamoDBTarget,
    MemoryTarget,
    PostgresTarget,
    SQLiteTarget,
    StoreURLError,
    parse_store_url,
    redact,
)

__all__ = [
    "CONFLICT_ORIGIN",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_STORE_URL",
    "STORE_ENV",
    "Conflict",
    "DynamoDBTarget",
    "EventStore",
    "HeadMoved",
    "ParkedRecord",
    "ParkedResolved",
    "Recorded",
    "StoreURLError",
    "open_store",
    "parked_id_for",
    "parse_store_url",
    "redact",
    "resolve_store_url",
]


def resolve_store_url(url: str | None) -> str:
    """The URL given, else ``$RECEIPT_EVENTS_STORE``, else the embedded SQLite default."""
    return url or os.environ.get(STORE_ENV) or DEFAULT_STORE_URL


def open_store(url: str | None = None) -> EventStore:
    """Open (creating tables if needed) the store a URL names."""
    resolved = resolve_store_url(url)
    target = parse_store_url(resolved)
    if isinstance(target, SQLiteTarget):
        from receipt_events.store.sqlite import open_sqlite

        datastore, recorders = open_sqlite(target.path)
        return EventStore(resolved, recorders, close=datastore.close)
    if isinstance(target, PostgresTarget):
        from receipt_events.store.postgres import open_postgres

        pg_datastore, pg_recorders = open_postgres(target)
        return EventStore(redact(resolved), pg_recorders, close=pg_datastore.close)
    if isinstance(target, DynamoDBTarget):
        from receipt_events.store.dynamodb import open_dynamodb

        client, ddb_recorders = open_dynamodb(target)
        return EventStore(resolved, ddb_recorders, close=client.close)
    assert isinstance(target, MemoryTarget)
    from receipt_events.store.memory import open_memory

    return EventStore(resolved, open_memory(target.name))
