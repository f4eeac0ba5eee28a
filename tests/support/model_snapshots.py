"""Snapshots whose deltas were embedded by the local model (all-MiniLM-L6-v2), for the
``query`` and provenance tests: two receipts written as real Chroma delta directories created
with the model's embedding function, as a producer writes them, so the snapshot records the
model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from chromadb.api.types import Documents, EmbeddingFunction

from receipt_chroma import minilm
from receipt_chroma.client import CollectionName
from receipt_chroma.deltas import LocalDeltaSource
from receipt_chroma.provenance import Provenance
from receipt_chroma.records import ChromaRecord, embedding_bytes
from receipt_events.events import EmbeddingsPublished
from receipt_events.keys import LineKey, WordKey
from receipt_events.store import EventStore, open_store
from synthetic.deltas import write_delta
from tests.projection.helpers import IMAGE, OTHER_IMAGE, Log, project, vector
from tests.support.ci import in_ci

Vectors = npt.NDArray[np.float32]
Embed = Callable[[list[str]], Vectors]
MINILM = minilm.MiniLmEmbeddingFunction()
OTHER = Provenance(function="test_other_model", config={"model_name": "other"})

# -- building snapshots from real deltas ---------------------------------------------------


def model_vectors(texts: list[str]) -> Vectors:
    """The local model's vectors for ``texts`` (one call, as a producer embeds a delta)."""
    if not texts:
        return np.empty((0, minilm.DIMENSION), dtype=np.float32)
    return MINILM.embed(texts)


def stand_in_vectors(run_id: str) -> Embed:
    """Seeded 384-d stand-ins (not a model): for tests about what a delta records, not what
    its vectors mean."""

    def embed(texts: list[str]) -> Vectors:
        rows = [
            vector(run_id, f"{index}:{text}", minilm.DIMENSION) for index, text in enumerate(texts)
        ]
        return np.array(rows, dtype=np.float32).reshape(len(texts), minilm.DIMENSION)

    return embed


def delta_records(
    collection: CollectionName,
    image: str,
    receipt: int,
    texts: Mapping[Any, str],
    embed: Embed,
) -> list[ChromaRecord]:
    """A delta's records in the old system's creation-time metadata schema (the shape
    ``synthetic/deltas.py`` writes), including the stale ``label_status`` of words."""
    keys = list(texts)
    vectors = embed([texts[key] for key in keys])
    records = []
    for key, row in zip(keys, vectors, strict=True):
        metadata: dict[str, Any] = {
            "image_id": image,
            "receipt_id": receipt,
            "text": texts[key],
            "confidence": 0.99,
            "source": "openai_embedding_batch",
        }
        if collection == "lines":
            record_id = LineKey(image, receipt, key).chroma_id
            metadata["line_id"] = key
        else:
            line, word = key
            record_id = WordKey(image, receipt, line, word).chroma_id
            metadata |= {"line_id": line, "word_id": word, "label_status": "unvalidated"}
        records.append(ChromaRecord(record_id, texts[key], metadata, embedding_bytes(row)))
    return sorted(records, key=lambda record: record.id)


def write_run(
    log: Log,
    root: Path,
    run_id: str,
    *,
    lines: Mapping[int, str],
    words: Mapping[tuple[int, int], str],
    image: str = IMAGE,
    receipt: int = 1,
    function: EmbeddingFunction[Documents] | None = MINILM,
    words_function: EmbeddingFunction[Documents] | str | None = "same",
    embed: Embed = model_vectors,
) -> EmbeddingsPublished:
    """A run's event (not appended) and its two deltas written under ``root`` at the event's
    locations; ``words_function`` gives the words delta another function than ``function``."""
    event = log.run(run_id, image=image, receipt=receipt, store_deltas=False)
    chosen = function if words_function == "same" else words_function
    assert not isinstance(chosen, str)
    write_delta(
        root / event.lines_delta,
        "lines",
        delta_records("lines", image, receipt, lines, embed),
        "directory",
        embedding_function=function,
    )
    write_delta(
        root / event.words_delta,
        "words",
        delta_records("words", image, receipt, words, embed),
        "directory",
        embedding_function=chosen,
    )
    return event


# two receipts: a grocer's whose GRAND TOTAL word is validated, a bakery's whose TOTAL word's
# label is only suggested
GROCER: dict[str, Any] = {
    "image": IMAGE,
    "lines": {1: "SUBTOTAL 11.00", 2: "TAX 0.88", 3: "GRAND TOTAL 11.88"},
    "words": {
        (1, 1): "SUBTOTAL",
        (1, 2): "11.00",
        (2, 1): "TAX",
        (2, 2): "0.88",
        (3, 1): "GRAND",
        (3, 2): "TOTAL",
        (3, 3): "11.88",
    },
}
BAKERY: dict[str, Any] = {
    "image": OTHER_IMAGE,
    "lines": {1: "MILK 2.49", 2: "BREAD 3.10", 3: "TOTAL 5.59"},
    "words": {
        (1, 1): "MILK",
        (1, 2): "2.49",
        (2, 1): "BREAD",
        (2, 2): "3.10",
        (3, 1): "TOTAL",
        (3, 2): "5.59",
    },
}
GROCER_TOTAL = WordKey(IMAGE, 1, 3, 2).chroma_id
GROCER_SUBTOTAL = WordKey(IMAGE, 1, 1, 1).chroma_id
BAKERY_TOTAL = WordKey(OTHER_IMAGE, 1, 3, 1).chroma_id


@dataclass
class ModelWorld:
    url: str
    store: EventStore
    log: Log
    deltas: Path
    snap: Path
    root: Path


def model_log(log: Log, deltas: Path) -> None:
    """Append the two receipts' runs (deltas embedded by the model), places and labels."""
    log.add(
        write_run(log, deltas, "run-grocer", lines=GROCER["lines"], words=GROCER["words"]),
        write_run(
            log,
            deltas,
            "run-bakery",
            image=OTHER_IMAGE,
            lines=BAKERY["lines"],
            words=BAKERY["words"],
        ),
        log.place(merchant_name="Corner Grocer"),
        log.place(merchant_name="Bakery Bros", image=OTHER_IMAGE),
        log.label(3, 2, "GRAND_TOTAL", "VALID", at="2024-06-01T10:00:00Z"),
        log.label(1, 1, "SUBTOTAL", "VALID", at="2024-06-01T10:00:00Z"),
        log.label(3, 1, "GRAND_TOTAL", "PENDING", by="llm", image=OTHER_IMAGE),
    )


def build_model_world(root: Path) -> ModelWorld:
    """A SQLite store holding the two receipts, their deltas, and a snapshot projected to the
    head (``root/snap``)."""
    url = "sqlite:///" + str((root / "store" / "events.db").resolve())
    store = open_store(url)
    log = Log(store, prefix="model")
    deltas = root / "deltas"
    model_log(log, deltas)
    project(store, root / "snap", LocalDeltaSource(deltas))
    return ModelWorld(url, store, log, deltas, root / "snap", root)


def require_model() -> None:
    """The local model, loaded; skipped where it is not installed (failed under CI)."""
    try:
        MINILM.embed(["warm up"])
    except minilm.ModelUnavailable as error:
        if in_ci():
            pytest.fail(f"the local model must run under CI: {error}")
        pytest.skip(f"the local model is not installed: {error}")
