"""Writing embedding deltas as the embedding producers do (for the demo, tests and benchmarks).

What makes a run's vectors is a :class:`Vectors`:

* :class:`FakeVectors` (the default): deterministic stand-ins, not a model. Each vector is
  drawn from a random generator seeded by the run and record id, then normalised, so the same
  history always gives the same bytes and a re-embedded record gets a new vector. Its deltas
  name no embedding function, so their provenance is *unknown*, as the old system's were.
* :class:`ModelVectors`: the local model (:mod:`receipt_chroma.minilm`, 384-d). A run's line
  texts are embedded in one call and its word texts in another, and the deltas' collections
  are created with the model's embedding function, so they record it as their provenance.

Use one kind of vectors for every run of a history: the projection holds back a delta whose
recorded model differs from the one its collection already holds. Metadata follows the old
system's creation-time schema, including a stale ``merchant_name`` and ``label_status`` that
the projection must override from its own state.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
import numpy.typing as npt
from chromadb.api.types import Documents, EmbeddingFunction

from receipt_chroma import minilm
from receipt_chroma.client import CollectionName, open_chroma
from receipt_chroma.deltas import TARBALL_NAME
from receipt_chroma.provenance import Provenance
from receipt_chroma.records import ChromaRecord, embedding_bytes
from receipt_events.keys import LineKey, WordKey
from synthetic.history import RunContent

Layout = Literal["directory", "tarball"]
DEFAULT_DIMENSION = 384
Matrix = npt.NDArray[np.float32]


def deterministic_vector(run_id: str, record_id: str, dimension: int) -> npt.NDArray[np.float32]:
    seed = int.from_bytes(
        hashlib.sha256(f"{run_id}\x00{record_id}".encode()).digest()[:8], "little"
    )
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class Vectors(Protocol):
    """What makes a run's vectors, and the Chroma embedding function its deltas record."""

    @property
    def dimension(self) -> int: ...

    @property
    def provenance(self) -> Provenance:
        """What the deltas record (``Provenance()``, unknown, when they name no function)."""
        ...

    def embedding_function(self) -> EmbeddingFunction[Documents] | None:
        """The function to create the deltas' collections with; None records nothing."""
        ...

    def embed(self, run_id: str, ids: Sequence[str], texts: Sequence[str]) -> Matrix:
        """One float32 vector per record of a run, in order: shape ``(len(ids), dimension)``."""
        ...


class FakeVectors:
    """Seeded random unit vectors (:func:`deterministic_vector`); the deltas record no model."""

    def __init__(self, dimension: int = DEFAULT_DIMENSION) -> None:
        if dimension < 1:
            raise ValueError("dimension must be at least 1")
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def provenance(self) -> Provenance:
        return Provenance()

    def embedding_function(self) -> EmbeddingFunction[Documents] | None:
        return None

    def embed(self, run_id: str, ids: Sequence[str], texts: Sequence[str]) -> Matrix:
        result = np.empty((len(ids), self._dimension), dtype=np.float32)
        for row, record_id in enumerate(ids):
            result[row] = deterministic_vector(run_id, record_id, self._dimension)
        return result


class ModelVectors:
    """The local model's vectors (all-MiniLM-L6-v2, 384-d); the deltas record it. Embedding
    raises :class:`receipt_chroma.minilm.ModelUnavailable` when the model is not installed."""

    def __init__(self) -> None:
        self._function = minilm.MiniLmEmbeddingFunction()

    @property
    def dimension(self) -> int:
        return minilm.DIMENSION

    @property
    def provenance(self) -> Provenance:
        return minilm.PROVENANCE

    def embedding_function(self) -> EmbeddingFunction[Documents] | None:
        return self._function

    def embed(self, run_id: str, ids: Sequence[str], texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.empty((0, minilm.DIMENSION), dtype=np.float32)
        return self._function.embed(texts)


def run_records(
    run: RunContent, dimension: int = DEFAULT_DIMENSION, *, vectors: Vectors | None = None
) -> dict[str, list[ChromaRecord]]:
    """The records a run's two deltas hold, sorted by id. ``vectors`` makes the embeddings
    (default: :class:`FakeVectors` of ``dimension``; ``dimension`` is ignored otherwise)."""
    maker = vectors if vectors is not None else FakeVectors(dimension)
    line_ids = [LineKey(run.image_id, run.receipt_id, line.line_id).chroma_id for line in run.lines]
    line_vectors = maker.embed(run.run_id, line_ids, [line.text for line in run.lines])
    lines: list[ChromaRecord] = []
    for line, record_id, vector in zip(run.lines, line_ids, line_vectors, strict=True):
        metadata: dict[str, Any] = {
            "image_id": run.image_id,
            "receipt_id": run.receipt_id,
            "line_id": line.line_id,
            "text": line.text,
            "confidence": line.confidence,
            "x": line.x,
            "y": line.y,
            "width": line.width,
            "height": line.height,
            "source": "openai_embedding_batch",
        }
        lines.append(ChromaRecord(record_id, line.text, metadata, embedding_bytes(vector)))
    word_ids = [
        WordKey(run.image_id, run.receipt_id, word.line_id, word.word_id).chroma_id
        for word in run.words
    ]
    word_vectors = maker.embed(run.run_id, word_ids, [word.text for word in run.words])
    words: list[ChromaRecord] = []
    for word, record_id, vector in zip(run.words, word_ids, word_vectors, strict=True):
        metadata = {
            "image_id": run.image_id,
            "receipt_id": run.receipt_id,
            "line_id": word.line_id,
            "word_id": word.word_id,
            "text": word.text,
            "confidence": word.confidence,
            "x": word.x,
            "y": word.y,
            "width": word.width,
            "height": word.height,
            "label_status": "unvalidated",  # creation-time value; the projection owns this key
            "source": "openai_embedding_batch",
        }
        words.append(ChromaRecord(record_id, word.text, metadata, embedding_bytes(vector)))
    return {
        "lines": sorted(lines, key=lambda r: r.id),
        "words": sorted(words, key=lambda r: r.id),
    }


def write_delta(
    target: Path,
    collection: CollectionName,
    records: Sequence[ChromaRecord],
    layout: Layout,
    *,
    embedding_function: EmbeddingFunction[Documents] | None = None,
) -> None:
    """Write one delta: a Chroma directory at ``target``, or ``target/delta.tar.gz``. A
    collection created with ``embedding_function`` records it as the vectors' model."""
    if layout == "directory":
        _write_chroma(target, collection, records, embedding_function)
        return
    with tempfile.TemporaryDirectory(prefix="receipt-events-delta-") as scratch:
        _write_chroma(Path(scratch) / "delta", collection, records, embedding_function)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(target / TARBALL_NAME, "w:gz") as archive:
            archive.add(Path(scratch) / "delta", arcname=".")


def _write_chroma(
    path: Path,
    collection: CollectionName,
    records: Sequence[ChromaRecord],
    embedding_function: EmbeddingFunction[Documents] | None,
) -> None:
    if path.exists():
        shutil.rmtree(path)
    with open_chroma(path, create=True, embedding_function=embedding_function) as chroma:
        target = chroma.collection(collection)
        if records:
            target.upsert(
                ids=[r.id for r in records],
                embeddings=np.stack([r.vector() for r in records]),
                documents=[r.document or "" for r in records],
                metadatas=[cast(Any, dict(r.metadata)) for r in records],
            )


def write_run_deltas(
    run: RunContent,
    root: Path,
    *,
    dimension: int = DEFAULT_DIMENSION,
    layout: Layout = "directory",
    vectors: Vectors | None = None,
) -> None:
    """Write both deltas of a run under ``root`` at the run's (relative) locations, with
    ``vectors`` (default: :class:`FakeVectors` of ``dimension``)."""
    maker = vectors if vectors is not None else FakeVectors(dimension)
    records = run_records(run, vectors=maker)
    function = maker.embedding_function()
    write_delta(
        root / run.lines_delta, "lines", records["lines"], layout, embedding_function=function
    )
    write_delta(
        root / run.words_delta, "words", records["words"], layout, embedding_function=function
    )
