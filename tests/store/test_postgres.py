"""What only the PostgreSQL backend has: schemas, table prefixes, a connection pool, id gaps."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from psycopg import sql

from receipt_events.store import Recorded, open_store
from tests.store.helpers import numbered, parked, read_all
from tests.support.postgres import postgres_connect

pytestmark = pytest.mark.postgres

TABLES = {"receipt_events", "receipt_parked_records", "receipt_progress"}


def url_for(server: str, schema: str, **options: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in {"schema": schema, **options}.items())
    return f"{server}?{query}"


def schema_exists(schema: str) -> bool:
    with postgres_connect() as connection:
        row = connection.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
    return bool(row and row[0])


def tables_in(schema: str) -> set[str]:
    with postgres_connect() as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {row[0] for row in rows}


def test_a_schema_that_does_not_exist_yet_is_created(
    postgres_url: str, postgres_schema: str
) -> None:
    assert not schema_exists(postgres_schema)
    with open_store(postgres_url) as store:
        assert schema_exists(postgres_schema)
        assert tables_in(postgres_schema) == TABLES
        assert store.head() == 0
        assert store.append(numbered("e", 2)) == [1, 2]
    with open_store(postgres_url) as store:  # opening again changes nothing
        assert tables_in(postgres_schema) == TABLES
        assert [r.position for r in read_all(store)] == [1, 2]


def test_stores_in_different_schemas_are_isolated(
    postgres_server: str, new_postgres_schema: Callable[[], str]
) -> None:
    first_schema, second_schema = new_postgres_schema(), new_postgres_schema()
    events = numbered("e", 3)
    with (
        open_store(url_for(postgres_server, first_schema)) as first,
        open_store(url_for(postgres_server, second_schema)) as second,
    ):
        assert first.append(events) == [1, 2, 3]
        first.park([parked("p1")])
        assert second.head() == 0
        assert second.parked_records() == []
        # the same events are new to the other store: dedup is per store
        assert second.append(events[1:]) == [1, 2]
        assert first.append(events) == [None, None, None]
        assert [r.event for r in read_all(first)] == events
        assert [r.event for r in read_all(second)] == events[1:]
    assert tables_in(first_schema) == tables_in(second_schema) == TABLES


def test_stores_with_different_table_prefixes_in_one_schema_are_isolated(
    postgres_server: str, postgres_schema: str
) -> None:
    with (
        open_store(url_for(postgres_server, postgres_schema)) as default,
        open_store(url_for(postgres_server, postgres_schema, table_prefix="other_")) as other,
    ):
        default.append(numbered("d", 2))
        assert other.head() == 0
        assert other.append(numbered("d", 2)) == [1, 2]
    assert tables_in(postgres_schema) == TABLES | {
        "other_events",
        "other_parked_records",
        "other_progress",
    }


def connections_named(application_name: str) -> int:
    with postgres_connect() as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


def backends_gone(application_name: str, timeout: float = 5.0) -> bool:
    """Whether the server's backends for these connections exit (soon after the client closes)."""
    deadline = time.monotonic() + timeout
    while connections_named(application_name) > 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # the server ends a backend shortly after its client goes: poll
    return True


def test_closing_and_reopening_the_pool(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # libpq names the store's connections from $PGAPPNAME, so they can be counted
    application_name = f"receipt-events-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("PGAPPNAME", application_name)
    appended = []
    for cycle in range(3):
        store = open_store(postgres_url)
        assert connections_named(application_name) > 0
        assert [r.event for r in read_all(store)] == appended
        events = numbered(f"cycle{cycle}", 2)
        assert store.append(appended + events) == [None] * len(appended) + [
            2 * cycle + 1,
            2 * cycle + 2,
        ]
        appended += events
        store.close()
        assert backends_gone(application_name), "close() left connections open"
        store.close()  # closing twice is harmless


def test_the_password_is_redacted_from_the_store_url(postgres_schema: str) -> None:
    url = f"postgresql://postgres:not-a-real-secret@127.0.0.1:5432/test?schema={postgres_schema}"
    with open_store(url) as store:  # the server trusts local connections: the password is unused
        assert "not-a-real-secret" not in store.url
        assert store.url == url.replace(":not-a-real-secret@", ":***@")


def test_reads_step_over_gaps_in_positions(postgres_url: str, postgres_schema: str) -> None:
    """Postgres ids are a sequence: a rolled-back insert leaves a gap. Readers must not care."""
    events = numbered("g", 6)
    with open_store(postgres_url) as store:
        store.append(events[:2])
        with postgres_connect() as connection:
            table = sql.Identifier(postgres_schema, "receipt_events").as_string(connection)
            row = connection.execute(
                "SELECT pg_get_serial_sequence(%s, 'notification_id')", (table,)
            ).fetchone()
            assert row is not None
            for _ in range(5):  # what rolled-back transactions would have used
                connection.execute("SELECT nextval(%s)", (row[0],))
        store.append(events[2:4])
        store.append(events[4:])
        log = read_all(store)
        positions = [r.position for r in log]
        assert positions == [1, 2, 8, 9, 10, 11]
        assert [r.event for r in log] == events
        assert store.head() == 11
        for page_size in (1, 2, 4):
            assert list(store.iter_events(page_size=page_size)) == log
        for after in range(12):
            for to in range(12):
                expected = [r for r in log if after < r.position <= to]
                assert store.read(after=after, to=to) == expected
                assert store.read(after=after, to=to, limit=1) == expected[:1]
                assert list(store.iter_events(after=after, to=to, page_size=1)) == expected
        assert store.read(after=2, limit=1) == [Recorded(8, events[2])]
