"""Fixtures of the backfill tests: cold stream-processor containers, the store it appends to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import lambdas.stream_processor
from receipt_events.store import STORE_ENV
from tests.support.warm_store import drop_warm_store


@pytest.fixture
def stream_store(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The store both the stream processor (by its environment) and the backfill use."""
    drop_warm_store(lambdas.stream_processor)
    monkeypatch.setenv(STORE_ENV, sqlite_url)
    yield sqlite_url
    drop_warm_store(lambdas.stream_processor)


@pytest.fixture
def dynamodb_stream_store(dynamodb_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``stream_store`` on a DynamoDB event store (a table of its own on DynamoDB Local)."""
    drop_warm_store(lambdas.stream_processor)
    monkeypatch.setenv(STORE_ENV, dynamodb_url)
    yield dynamodb_url
    drop_warm_store(lambdas.stream_processor)
