"""Batched writes to a collection, each call at most the client's max batch size.

Records are written with ``upsert`` (new records, or a changed embedding), metadata-only
``update`` (everything else: ~20x cheaper than resending an embedding), and ``delete``.
``add`` is never used: it silently ignores ids that exist. A metadata key is removed by
writing it as ``None`` (Chroma merges metadata key by key). A document cannot be removed
that way (an upsert sending ``None`` keeps the old one), so such a record is replaced whole.

In cosine space Chroma normalises a vector as it stores it, so what a dump returns differs by
up to an ulp from what was written (deterministically; docs/chromadb.md). ``upsert`` reads the
stored vectors back and returns their hashes: the digest is of what Chroma holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
from chromadb.api.models.Collection import Collection

from receipt_chroma.records import ChromaRecord, embedding_bytes

MetadataPatch = dict[str, Any]  # values may be None: "remove this key"


class Upsert(msgspec.Struct, frozen=True):
    record: ChromaRecord
    removed_keys: tuple[str, ...] = ()  # keys the existing record has that must go


class MetadataUpdate(msgspec.Struct, frozen=True):
    id: str
    patch: MetadataPatch


def _chunks(count: int, size: int) -> Sequence[range]:
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def upsert(collection: Collection, upserts: Sequence[Upsert], batch_size: int) -> dict[str, bytes]:
    """Write the records; returns each one's sha256 of its vector as Chroma stored it."""
    # An upsert that sends no document keeps the existing record's one, so a record written
    # without a document is deleted first (deleting an id that does not exist is a no-op).
    undocumented = [item.record.id for item in upserts if item.record.document is None]
    if undocumented:
        delete(collection, undocumented, batch_size)
    stored: dict[str, bytes] = {}
    for chunk in _chunks(len(upserts), batch_size):
        batch = [upserts[index] for index in chunk]
        vectors = np.stack([item.record.vector() for item in batch])
        metadatas: list[Any] = []
        for item in batch:
            metadata: dict[str, Any] = dict(item.record.metadata)
            metadata.update(dict.fromkeys(item.removed_keys))
            metadatas.append(metadata or None)  # Chroma rejects {}; None means "no metadata"
        collection.upsert(
            ids=[item.record.id for item in batch],
            embeddings=vectors,
            documents=[item.record.document for item in batch],  # type: ignore[misc]
            metadatas=metadatas,
        )
        stored.update(stored_vector_hashes(collection, [item.record.id for item in batch]))
    return stored


def stored_vector_hashes(collection: Collection, ids: list[str]) -> dict[str, bytes]:
    """sha256 of each record's vector as a dump would return it (little-endian float32)."""
    found = collection.get(ids=ids, include=["embeddings"])
    embeddings = found["embeddings"]
    assert embeddings is not None
    return {
        record_id: hashlib.sha256(embedding_bytes(embeddings[index])).digest()
        for index, record_id in enumerate(found["ids"])
    }


def update_metadata(
    collection: Collection, updates: Sequence[MetadataUpdate], batch_size: int
) -> None:
    for chunk in _chunks(len(updates), batch_size):
        batch = [updates[index] for index in chunk]
        collection.update(
            ids=[item.id for item in batch],
            metadatas=[item.patch for item in batch],
        )


def delete(collection: Collection, ids: Sequence[str], batch_size: int) -> None:
    for chunk in _chunks(len(ids), batch_size):
        collection.delete(ids=[ids[index] for index in chunk])
