"""Chroma's default embedding function is never used: a write without vectors fails at once,
with no network attempt (Chroma's default would fetch a model to embed the text; see
docs/chromadb.md), in this process and in a fresh one."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chromadb
import pytest

from receipt_chroma.client import NoEmbeddingFunction, open_chroma, settings
from tests.projection.helpers import Log, project, records, word_id

ROOT = Path(__file__).resolve().parents[2]
REFUSAL = "receipt-events writes explicit embeddings only; something asked Chroma to embed text"


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every name lookup and socket connect made during the test."""
    attempts: list[str] = []

    def refuse(what: str) -> Callable[..., Any]:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what} {args[1:] if what == 'connect' else args}")
            raise OSError(f"network disabled by the test ({what})")

        return attempt

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    return attempts


WRITES: list[Any] = [
    pytest.param(lambda c: c.add(ids=[word_id(5, 5)], documents=["new"]), "add", id="add"),
    pytest.param(lambda c: c.upsert(ids=[word_id(1, 1)], documents=["x"]), "upsert", id="upsert"),
    pytest.param(
        lambda c: c.update(ids=[word_id(1, 1)], documents=["x"]), "update", id="update-document"
    ),
    pytest.param(lambda c: c.query(query_texts=["TOTAL"]), "query", id="query-text"),
]


@pytest.mark.parametrize(("write", "operation"), WRITES)
def test_a_write_without_embeddings_to_a_projected_collection_is_refused_offline(
    log: Log, snap: Path, network: list[str], write: Callable[[Any], Any], operation: str
) -> None:
    log.add(log.run("run-1", words={(1, 1): "TOTAL"}, lines={1: "TOTAL"}))
    project(log.store, snap, log.deltas)
    before = records(snap)
    with open_chroma(snap / "chroma", create=False) as chroma:
        words = chroma.collection("words")
        with pytest.raises(RuntimeError) as raised:
            write(words)
    assert str(raised.value) == f"{REFUSAL} in {operation}."
    assert network == []
    assert records(snap) == before


def test_a_plain_chromadb_client_gets_the_refusing_function_from_the_stored_config(
    log: Log, snap: Path, network: list[str]
) -> None:
    log.add(log.run("run-1", words={(1, 1): "TOTAL"}))
    project(log.store, snap, log.deltas)
    client = chromadb.PersistentClient(path=str(snap / "chroma"), settings=settings())
    try:
        words = client.get_collection("words")  # no embedding_function passed
        # the stored configuration names the refusing function; Chroma rebuilds it from there
        assert isinstance(words.configuration["embedding_function"], NoEmbeddingFunction)
        with pytest.raises(RuntimeError) as raised:
            words.add(ids=[word_id(5, 5)], documents=["new"])
        assert str(raised.value) == f"{REFUSAL} in add."
        assert words.count() == 1
    finally:
        client.close()  # type: ignore[attr-defined]
    assert network == []


FRESH_PROCESS = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network disabled by the test")
    socket.getaddrinfo = refuse
    socket.create_connection = refuse
    socket.socket.connect = refuse
    import chromadb
    from chromadb.config import Settings
    client = chromadb.PersistentClient(
        path=sys.argv[1], settings=Settings(anonymized_telemetry=False, is_persistent=True)
    )
    words = client.get_collection("words")
    try:
        words.add(ids=["x"], documents=["new"])
        outcome = "written"
    except Exception as error:
        outcome = f"{type(error).__name__}: {error}"
    print(json.dumps({
        "outcome": outcome,
        "count": words.count(),
        "attempts": attempts,
        "imported": sorted(m for m in sys.modules if m.startswith("receipt_")),
    }))
    """
)


def test_a_fresh_process_without_this_package_cannot_embed_either(
    log: Log, snap: Path, tmp_path: Path
) -> None:
    log.add(log.run("run-1", words={(1, 1): "TOTAL"}))
    project(log.store, snap, log.deltas)
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(snap / "chroma")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=tmp_path,  # not the project root: receipt_chroma is not importable by accident
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "outcome": "ValueError: Embedding function receipt-events-no-embeddings not found. "
        "Add @register_embedding_function decorator to the class definition. in add.",
        "count": 1,
        "attempts": [],
        "imported": [],
    }
    assert not (home / ".cache" / "chroma").exists()  # no model download was started
