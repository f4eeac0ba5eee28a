"""Writing embedding deltas as the embedding producers do (for the demo, tests and benchmarks).

Embeddings here are deterministic stand-ins, not a model: each vector is drawn from a random
generator seeded by the run and record id, then normalised, so the same history always gives
the same bytes and a re-embedded record gets a new vector. Metadata follows the old system's
creation-time schema, including a stale ``merchant_name`` and ``label_status`` that the
projection must override from its own state.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from receipt_chroma.client import CollectionName, open_chroma
from receipt_chroma.deltas import TARBALL_NAME
from receipt_chroma.records import ChromaRecord, embedding_bytes
from receipt_events.keys import LineKey, WordKey
from synthetic.history import RunContent

Layout = Literal["directory", "tarball"]
DEFAULT_DIMENSION = 384


def deterministic_vector(run_id: str, record_id: str, dimension: int) -> npt.NDArray[np.float32]:
    seed = int.from_bytes(
        hashlib.sha256(f"{run_id}\x00{record_id}".encode()).digest()[:8], "little"
    )
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def run_records(
    run: RunContent, dimension: int = DEFAULT_DIMENSION
) -> dict[str, list[ChromaRecord]]:
    """The records a run's two deltas hold, sorted by id."""
    lines: list[ChromaRecord] = []
    for line in run.lines:
        record_id = LineKey(run.image_id, run.receipt_id, line.line_id).chroma_id
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
        vector = deterministic_vector(run.run_id, record_id, dimension)
        lines.append(ChromaRecord(record_id, line.text, metadata, embedding_bytes(vector)))
    words: list[ChromaRecord] = []
    for word in run.words:
        record_id = WordKey(run.image_id, run.receipt_id, word.line_id, word.word_id).chroma_id
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
        vector = deterministic_vector(run.run_id, record_id, dimension)
        words.append(ChromaRecord(record_id, word.text, metadata, embedding_bytes(vector)))
    return {
        "lines": sorted(lines, key=lambda r: r.id),
        "words": sorted(words, key=lambda r: r.id),
    }


def write_delta(
    target: Path, collection: CollectionName, records: Sequence[ChromaRecord], layout: Layout
) -> None:
    """Write one delta: a Chroma directory at ``target``, or ``target/delta.tar.gz``."""
    if layout == "directory":
        _write_chroma(target, collection, records)
        return
    with tempfile.TemporaryDirectory(prefix="receipt-events-delta-") as scratch:
        _write_chroma(Path(scratch) / "delta", collection, records)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(target / TARBALL_NAME, "w:gz") as archive:
            archive.add(Path(scratch) / "delta", arcname=".")


def _write_chroma(path: Path, collection: CollectionName, records: Sequence[ChromaRecord]) -> None:
    if path.exists():
        shutil.rmtree(path)
    with open_chroma(path, create=True) as chroma:
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
) -> None:
    """Write both deltas of a run under ``root`` at the run's (relative) locations."""
    records = run_records(run, dimension)
    write_delta(root / run.lines_delta, "lines", records["lines"], layout)
    write_delta(root / run.words_delta, "words", records["words"], layout)
