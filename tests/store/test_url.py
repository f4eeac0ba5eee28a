"""Store URLs: the forms accepted, what they open, and errors that say what to write instead."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from receipt_events.store import (
    DEFAULT_STORE_URL,
    STORE_ENV,
    StoreURLError,
    open_store,
    redact,
    resolve_store_url,
)
from receipt_events.store.url import (
    DynamoDBTarget,
    MemoryTarget,
    PostgresTarget,
    SQLiteTarget,
    parse_store_url,
)
from tests.store.helpers import numbered

FORMS = ("sqlite:///", "postgresql://", "dynamodb://", "memory://")


def parse_error(url: str, *, names_forms: bool = True) -> str:
    with pytest.raises(StoreURLError) as raised:
        parse_store_url(url)
    message = str(raised.value)
    if names_forms:  # an error about the URL's form names the forms that do work
        for form in FORMS:
            assert form in message, message
    return message


# -- SQLite --------------------------------------------------------------------------------


def test_sqlite_relative_path() -> None:
    assert parse_store_url("sqlite:///./x.db") == SQLiteTarget(path="./x.db")
    assert parse_store_url("sqlite:///data/events.db") == SQLiteTarget(path="data/events.db")


def test_sqlite_absolute_path() -> None:
    assert parse_store_url("sqlite:////tmp/x.db") == SQLiteTarget(path="/tmp/x.db")


def test_sqlite_path_is_percent_decoded() -> None:
    assert parse_store_url("sqlite:////tmp/my%20dir/x.db") == SQLiteTarget(path="/tmp/my dir/x.db")


def test_the_default_url_is_sqlite_in_the_working_directory() -> None:
    assert parse_store_url(DEFAULT_STORE_URL) == SQLiteTarget(path="./.receipt-events/events.db")


def test_sqlite_without_a_path_is_an_error() -> None:
    message = parse_error("sqlite:///")
    assert "no database path" in message
    assert "'sqlite:///'" in message


def test_sqlite_relative_url_opens_a_file_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///./nested/dir/events.db") as store:
        store.append(numbered("e", 1))
    assert (tmp_path / "nested" / "dir" / "events.db").is_file()


# -- PostgreSQL ----------------------------------------------------------------------------


def test_postgres_with_every_part() -> None:
    url = (
        "postgresql://alice:s%40cr%3At@db.example.com:6543/receipts"
        "?schema=events_v2&table_prefix=rx_&lock_timeout=5&connect_timeout=2.5&pool_size=4"
    )
    assert parse_store_url(url) == PostgresTarget(
        dbname="receipts",
        host="db.example.com",
        port=6543,
        user="alice",
        password="s@cr:t",
        schema="events_v2",
        table_prefix="rx_",
        lock_timeout=5,
        connect_timeout=2.5,
        pool_size=4,
    )


def test_postgres_defaults() -> None:
    assert parse_store_url("postgresql://db.example.com/receipts") == PostgresTarget(
        dbname="receipts",
        host="db.example.com",
        port=5432,
        user="postgres",
        password="",
        schema="public",
        table_prefix="receipt_",
        lock_timeout=0,
    )
    assert parse_store_url("postgresql:///receipts") == PostgresTarget(dbname="receipts")


def test_postgres_alias() -> None:
    assert parse_store_url("postgres://bob@localhost:5433/test?schema=s") == PostgresTarget(
        dbname="test", host="localhost", port=5433, user="bob", schema="s"
    )


def test_postgres_ipv6_host() -> None:
    target = parse_store_url("postgresql://[::1]:5433/test")
    assert isinstance(target, PostgresTarget)
    assert (target.host, target.port) == ("::1", 5433)


@pytest.mark.parametrize("url", ["postgresql://localhost", "postgresql://u:pw@localhost:5432/"])
def test_postgres_without_a_database_name_is_an_error(url: str) -> None:
    message = parse_error(url)
    assert "names no database" in message
    assert "pw" not in message


def test_postgres_unknown_option_is_an_error_naming_the_known_ones() -> None:
    message = parse_error(
        "postgresql://u:hunter2@localhost/test?schema=s&shcema=t&sslmode=x", names_forms=False
    )
    assert "unknown option(s) shcema, sslmode" in message
    for known in ("schema", "table_prefix", "lock_timeout", "connect_timeout", "pool_size"):
        assert known in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://u:hunter2@localhost/test?pool_size=many", "many"),
        ("postgresql://u:hunter2@localhost/test?lock_timeout=1.5", "1.5"),
        ("postgresql://u:hunter2@localhost:port/test", "port"),
    ],
)
def test_postgres_bad_values_are_errors(url: str, problem: str) -> None:
    with pytest.raises(StoreURLError, match=re.escape(problem)) as raised:
        parse_store_url(url)
    assert "hunter2" not in str(raised.value)
    assert "u:***@localhost" in str(raised.value)


# -- DynamoDB ------------------------------------------------------------------------------


def test_dynamodb_table_with_defaults() -> None:
    assert parse_store_url("dynamodb://receipt-events-log") == DynamoDBTarget(
        table="receipt-events-log", max_attempts=5, connect_timeout=5.0, read_timeout=20.0
    )


def test_dynamodb_table_name_keeps_its_case_and_every_allowed_character() -> None:
    target = parse_store_url("dynamodb://My_Events.v2-Log")
    assert target == DynamoDBTarget(table="My_Events.v2-Log")
    assert parse_store_url("dynamodb://abc/") == DynamoDBTarget(table="abc")
    longest = "t" * 255
    assert parse_store_url(f"dynamodb://{longest}") == DynamoDBTarget(table=longest)


def test_dynamodb_with_every_option() -> None:
    url = "dynamodb://events?max_attempts=2&connect_timeout=1.5&read_timeout=3"
    assert parse_store_url(url) == DynamoDBTarget(
        table="events", max_attempts=2, connect_timeout=1.5, read_timeout=3.0
    )


@pytest.mark.parametrize(
    "url",
    [
        "dynamodb://",
        "dynamodb://ab",
        "dynamodb://bad name",
        "dynamodb://bad%20name",
        "dynamodb://a/b/c",
        "dynamodb://table:8000",
        "dynamodb://user@table",
        "dynamodb://" + "t" * 256,
    ],
)
def test_dynamodb_bad_table_names_are_errors(url: str) -> None:
    message = parse_error(url)
    assert "is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)" in message
    assert repr(url) in message


def test_dynamodb_unknown_option_names_the_known_ones_and_the_aws_variables() -> None:
    message = parse_error(
        "dynamodb://events?region=eu-west-1&endpoint=http://localhost:8000", names_forms=False
    )
    assert "unknown option(s) endpoint, region" in message
    for known in ("max_attempts", "connect_timeout", "read_timeout"):
        assert known in message
    assert "AWS_REGION" in message
    assert "AWS_ENDPOINT_URL_DYNAMODB" in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("dynamodb://events?max_attempts=many", "many"),
        ("dynamodb://events?max_attempts=2.5", "2.5"),
        ("dynamodb://events?read_timeout=soon", "soon"),
    ],
)
def test_dynamodb_bad_option_values_are_errors(url: str, problem: str) -> None:
    with pytest.raises(StoreURLError, match=re.escape(problem)) as raised:
        parse_store_url(url)
    assert repr(url) in str(raised.value)


def test_dynamodb_options_configure_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from receipt_events.store.dynamodb import dynamodb_client

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    target = parse_store_url("dynamodb://events?max_attempts=2&connect_timeout=1.5&read_timeout=3")
    assert isinstance(target, DynamoDBTarget)
    config = dynamodb_client(target).meta.config
    # botocore's max_attempts counts retries: the first request and then 2 more
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (config.connect_timeout, config.read_timeout) == (1.5, 3.0)


# -- memory --------------------------------------------------------------------------------


def test_memory_urls() -> None:
    assert parse_store_url("memory://") == MemoryTarget(name="")
    assert parse_store_url("memory://shared") == MemoryTarget(name="shared")


def test_a_named_memory_store_is_the_same_store_within_a_process(memory_url: str) -> None:
    first = open_store(memory_url)
    positions = first.append(numbered("m", 3))
    second = open_store(memory_url)
    assert [r.position for r in second.read()] == positions
    assert second.append(numbered("m", 3)) == [None, None, None]
    other = open_store(memory_url + "-other")
    assert other.head() == 0


def test_an_unnamed_memory_store_is_new_each_time() -> None:
    first = open_store("memory://")
    first.append(numbered("m", 2))
    assert first.head() > 0
    assert open_store("memory://").head() == 0


# -- errors for other input ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["events.db", "./data/events.sqlite", "/var/lib/events.sqlite3"])
def test_a_plain_path_gets_a_did_you_mean_hint(path: str) -> None:
    message = parse_error(path)
    assert f"did you mean sqlite:///{path}?" in message


def test_a_sqlite_url_with_too_few_slashes_gets_no_nonsense_hint() -> None:
    for url in ("sqlite:x.db", "sqlite://x.db"):
        message = parse_error(url)
        assert "sqlite:///sqlite" not in message
        assert repr(url) in message


@pytest.mark.parametrize("url", ["mysql://localhost/test", "s3://bucket/events", "", "memory"])
def test_an_unknown_scheme_is_an_error(url: str) -> None:
    message = parse_error(url)
    assert "unsupported store URL" in message
    assert repr(url) in message


def test_open_store_raises_the_same_error() -> None:
    with pytest.raises(StoreURLError, match=re.escape("did you mean sqlite:///events.db?")):
        open_store("events.db")


# -- redaction and resolution ----------------------------------------------------------------


def test_redact_hides_the_password() -> None:
    url = "postgresql://alice:hunter2@db.example.com:5432/receipts?schema=s"
    assert redact(url) == "postgresql://alice:***@db.example.com:5432/receipts?schema=s"
    assert "hunter2" not in redact("postgres://alice:hunter2@h/db")
    assert redact("postgresql://alice:p%40ss@h/db") == "postgresql://alice:***@h/db"


def test_redact_leaves_urls_without_a_password_alone() -> None:
    for url in (
        "postgresql://alice@h:5432/db?schema=s",
        "postgresql://h/db",
        "sqlite:////tmp/x.db",
        "memory://name",
    ):
        assert redact(url) == url


def test_resolve_store_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    assert resolve_store_url(None) == DEFAULT_STORE_URL
    monkeypatch.setenv(STORE_ENV, "memory://from-env")
    assert resolve_store_url(None) == "memory://from-env"
    assert resolve_store_url("sqlite:///flag.db") == "sqlite:///flag.db"
