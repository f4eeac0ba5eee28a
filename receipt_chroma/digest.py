"""The canonical dump and digest of a Chroma directory (the format: docs/projection.md).

Snapshot files differ even when contents are equal (random segment ids, HNSW layout), so
snapshots are compared by content: sha256 over both collections' records sorted by id (id,
document, metadata as canonical JSON, embedding as little-endian float32 bytes) plus the log
position. Dumps are paged: one ``get`` of more than 32,766 records with metadata fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import msgspec
from chromadb.api.models.Collection import Collection

from receipt_chroma.client import COLLECTIONS, ChromaDirectory
from receipt_chroma.records import ChromaRecord, records_from_get

DUMP_PAGE_SIZE = 5000
DIGEST_VERSION = b"receipt-events canonical digest v1\n"


class Digest(msgspec.Struct, frozen=True):
    position: int
    digest: str  # "sha256:<hex>"
    counts: dict[str, int]


def dump_collection(collection: Collection, page_size: int = DUMP_PAGE_SIZE) -> list[ChromaRecord]:
    """Every record of a collection, sorted by id."""
    records: list[ChromaRecord] = []
    offset = 0
    while True:
        page = collection.get(
            include=["embeddings", "documents", "metadatas"], limit=page_size, offset=offset
        )
        records.extend(records_from_get(page))
        offset += len(page["ids"])
        if len(page["ids"]) < page_size:
            break
    records.sort(key=lambda record: record.id)
    return records


def dump(directory: ChromaDirectory) -> dict[str, list[ChromaRecord]]:
    return {name: dump_collection(directory.collection(name)) for name in COLLECTIONS}


def canonical_line(record: ChromaRecord) -> bytes:
    """The record's id, document and metadata as canonical JSON (sorted keys)."""
    return msgspec.json.encode([record.id, record.document, record.metadata], order="sorted")


def digest_records(collections: Mapping[str, Sequence[ChromaRecord]], position: int) -> Digest:
    """Digest of records already sorted by id, per collection."""
    hasher = hashlib.sha256(DIGEST_VERSION)
    hasher.update(f"position {position}\n".encode())
    counts: dict[str, int] = {}
    for name in COLLECTIONS:
        records = collections.get(name, ())
        count = 0
        hasher.update(f"collection {name}\n".encode())
        for record in records:
            hasher.update(canonical_line(record) + b"\n")
            hasher.update(len(record.embedding).to_bytes(4, "little") + record.embedding)
            count += 1
        counts[name] = count
    return Digest(position=position, digest=f"sha256:{hasher.hexdigest()}", counts=counts)


def digest_directory(directory: ChromaDirectory, position: int) -> Digest:
    return digest_records(dump(directory), position)
