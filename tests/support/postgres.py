"""The PostgreSQL test database: where it is, and plain connections to it for setup and checks.

The ``postgres_*`` fixtures in ``tests/conftest.py`` hand out store URLs on it (one schema per
test); tests that look at the server directly (its sessions, its schemas) or put something
between it and the store (a proxy) use these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_DBNAME = "test"
POSTGRES_USER = "postgres"
POSTGRES_URL = f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{POSTGRES_DBNAME}"
POSTGRES_CONNINFO = (
    f"host={POSTGRES_HOST} port={POSTGRES_PORT} dbname={POSTGRES_DBNAME} user={POSTGRES_USER} "
    "application_name=receipt-events-test-fixtures"
)


def postgres_connect(**kwargs: Any) -> psycopg.Connection[Any]:
    """A plain psycopg connection to the test database (autocommit), for setup and checks."""
    import psycopg

    return psycopg.connect(POSTGRES_CONNINFO, autocommit=True, connect_timeout=5, **kwargs)


def drop_postgres_schema(schema: str) -> None:
    """Drop a test's schema and everything in it."""
    from psycopg import sql

    with postgres_connect() as connection:
        connection.execute("SET lock_timeout = '20s'")
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
