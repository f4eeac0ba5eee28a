"""Fixtures local to the projection tests: a fresh in-memory log, a snapshot path, spies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromadb.api.models.Collection import Collection

from receipt_events.store import EventStore, open_store
from tests.projection.helpers import ChromaCalls, Log, Writes


@pytest.fixture
def event_store() -> Iterator[EventStore]:
    """A fresh in-memory event store, closed after the test."""
    store = open_store(f"memory://projection-{uuid.uuid4().hex}")
    yield store
    store.close()


@pytest.fixture
def log(event_store: EventStore) -> Log:
    return Log(event_store)


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    """Where the test's snapshot directory goes (created by the first catch-up)."""
    return tmp_path / "snapshot"


@pytest.fixture
def writes() -> Writes:
    return Writes()


@pytest.fixture
def chroma_calls(monkeypatch: pytest.MonkeyPatch) -> ChromaCalls:
    """Spy on Collection.add/upsert/update/delete: what really reached Chroma, and whether
    embeddings were sent with it."""
    calls = ChromaCalls()
    for method in ("add", "upsert", "update", "delete"):
        original = getattr(Collection, method)

        def spy(
            self: Collection,
            *args: Any,
            __original: Any = original,
            __method: str = method,
            **kwargs: Any,
        ) -> Any:
            ids = kwargs.get("ids", args[0] if args else None)
            count = 1 if isinstance(ids, str) else len(ids or ())
            calls.append((__method, self.name, count, kwargs.get("embeddings") is not None))
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(Collection, method, spy)
    return calls
