"""Store URLs: ``sqlite:///path/events.db``, ``postgresql://user@host:port/db``,
``dynamodb://TABLE``, ``memory://``."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

DEFAULT_STORE_URL = "sqlite:///./.receipt-events/events.db"
STORE_ENV = "RECEIPT_EVENTS_STORE"


class StoreURLError(ValueError):
    """A store URL this product cannot open; the message says what forms it takes."""


class SQLiteTarget(msgspec.Struct, frozen=True):
    path: str
    kind: Literal["sqlite"] = "sqlite"


class PostgresTarget(msgspec.Struct, frozen=True):
    dbname: str
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    schema: str = "public"
    table_prefix: str = "receipt_"
    lock_timeout: int = 0
    connect_timeout: float = 10.0
    pool_size: int = 2
    kind: Literal["postgres"] = "postgres"


class DynamoDBTarget(msgspec.Struct, frozen=True):
    """A DynamoDB table; region, endpoint and credentials come from the AWS variables."""

    table: str
    max_attempts: int = 5  # botocore's own retries of one request
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    kind: Literal["dynamodb"] = "dynamodb"


class MemoryTarget(msgspec.Struct, frozen=True):
    name: str = ""
    kind: Literal["memory"] = "memory"


StoreTarget = SQLiteTarget | PostgresTarget | DynamoDBTarget | MemoryTarget

_FORMS = (
    "expected sqlite:///PATH (relative) or sqlite:////ABSOLUTE/PATH, "
    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?schema=NAME], dynamodb://TABLE, "
    "or memory://[NAME]"
)
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def parse_store_url(url: str) -> StoreTarget:
    """Parse a store URL; raises :class:`StoreURLError` with the accepted forms."""
    if url.startswith("sqlite:///"):
        path = unquote(url[len("sqlite:///") :])
        if not path:
            raise StoreURLError(f"store URL {url!r} has no database path; {_FORMS}")
        return SQLiteTarget(path=path)
    if url.startswith("memory://"):
        return MemoryTarget(name=url[len("memory://") :])
    if url.startswith(("postgresql://", "postgres://")):
        return _parse_postgres(url)
    if url.startswith("dynamodb://"):
        return _parse_dynamodb(url)
    hint = ""
    if ":" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        hint = f" (did you mean sqlite:///{url}?)"
    raise StoreURLError(f"unsupported store URL {url!r}{hint}; {_FORMS}")


def _parse_postgres(url: str) -> PostgresTarget:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise StoreURLError(f"store URL {redact(url)!r} names no database; {_FORMS}")
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    known = {"schema", "table_prefix", "lock_timeout", "connect_timeout", "pool_size"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise StoreURLError(
            f"store URL {redact(url)!r}: unknown option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    try:
        return PostgresTarget(
            dbname=dbname,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            schema=options.get("schema", "public"),
            table_prefix=options.get("table_prefix", "receipt_"),
            lock_timeout=int(options.get("lock_timeout", "0")),
            connect_timeout=float(options.get("connect_timeout", "10")),
            pool_size=int(options.get("pool_size", "2")),
        )
    except ValueError as error:
        raise StoreURLError(f"store URL {redact(url)!r}: {error}") from None


def _parse_dynamodb(url: str) -> DynamoDBTarget:
    parts = urlsplit(url)
    table = unquote(parts.netloc + parts.path).rstrip("/")
    if not _TABLE_NAME.fullmatch(table):
        raise StoreURLError(
            f"store URL {url!r}: {table!r} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 "
            f"_ . -); {_FORMS}"
        )
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    known = {"max_attempts", "connect_timeout", "read_timeout"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise StoreURLError(
            f"store URL {url!r}: unknown option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))} (region and endpoint come from the AWS "
            "variables, e.g. AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB)"
        )
    try:
        return DynamoDBTarget(
            table=table,
            max_attempts=int(options.get("max_attempts", "5")),
            connect_timeout=float(options.get("connect_timeout", "5")),
            read_timeout=float(options.get("read_timeout", "20")),
        )
    except ValueError as error:
        raise StoreURLError(f"store URL {url!r}: {error}") from None


def redact(url: str) -> str:
    """The URL with any password (user:password@ or ?password=) replaced, for messages."""
    parts = urlsplit(url)
    has_query_password = "password" in parse_qs(parts.query)
    if not parts.password and not has_query_password:
        return url  # untouched: rebuilding would normalise away sqlite:////'s slashes
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    if has_query_password:
        query = "&".join(
            "password=***" if pair.split("=", 1)[0] == "password" else pair
            for pair in parts.query.split("&")
        )
        parts = parts._replace(query=query)
    return parts.geturl()
