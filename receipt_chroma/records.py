"""One Chroma record as this product handles it: id, document, metadata, float32 embedding."""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

MetadataValue: TypeAlias = (
    str | int | float | bool | list[str] | list[int] | list[float] | list[bool]
)
Metadata: TypeAlias = dict[str, MetadataValue]


class ChromaRecord(msgspec.Struct, frozen=True):
    """A record with its embedding as little-endian float32 bytes (exact, comparable, hashable)."""

    id: str
    document: str | None
    metadata: Metadata
    embedding: bytes

    def vector(self) -> npt.NDArray[np.float32]:
        return np.frombuffer(self.embedding, dtype="<f4")


def embedding_bytes(vector: Any) -> bytes:
    """Any vector (list, float64 array from Chroma, float32 array) as little-endian float32."""
    return np.asarray(vector, dtype="<f4").tobytes()


def records_from_get(result: Any) -> list[ChromaRecord]:
    """Records from a ``collection.get(include=[embeddings, documents, metadatas])`` result."""
    ids = result["ids"]
    embeddings = result["embeddings"]
    documents = result["documents"]
    metadatas = result["metadatas"]
    return [
        ChromaRecord(
            id=record_id,
            document=documents[index],
            metadata=dict(metadatas[index] or {}),
            embedding=embedding_bytes(embeddings[index]),
        )
        for index, record_id in enumerate(ids)
    ]
