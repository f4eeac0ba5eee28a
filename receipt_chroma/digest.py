"""The canonical digest of a snapshot's records, version 2 (the format: docs/projection.md).

Snapshot files differ even when contents are equal (random segment ids, HNSW layout), so
snapshots are compared by content. Each record has a hash of its canonical bytes (id, document,
metadata as canonical JSON, sha256 of the embedding as little-endian float32); each collection
an :class:`~receipt_chroma.lthash.LtHash` of its records' hashes; the snapshot digest is sha256
over a version line, the log position and per collection its name, record count and lanes.
The multiset hash is what lets the projection keep the digest as it writes (O(changes) per
publish) and still equal the one computed here from a full dump. Dumps are paged: one ``get``
of more than 32,766 records with metadata fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from chromadb.api.models.Collection import Collection

from receipt_chroma.client import COLLECTIONS, ChromaDirectory
from receipt_chroma.lthash import LtHash
from receipt_chroma.records import ChromaRecord, records_from_get

DUMP_PAGE_SIZE = 5000
DIGEST_VERSION = 2
DIGEST_VERSION_LINE = b"receipt-events canonical digest v2\n"


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


def canonical_json(record_id: str, document: str | None, metadata: Mapping[str, Any]) -> bytes:
    """A record's id, document and metadata as canonical JSON (sorted keys)."""
    return msgspec.json.encode([record_id, document, metadata], order="sorted")


def canonical_line(record: ChromaRecord) -> bytes:
    return canonical_json(record.id, record.document, record.metadata)


def record_hash(
    record_id: str, document: str | None, metadata: Mapping[str, Any], embedding_sha256: bytes
) -> bytes:
    """sha256 of a record's canonical bytes: its canonical JSON, a newline, and the sha256 of
    its embedding (little-endian float32), which the projection keeps without the vector."""
    return hashlib.sha256(
        canonical_json(record_id, document, metadata) + b"\n" + embedding_sha256
    ).digest()


def hash_of(record: ChromaRecord) -> bytes:
    return record_hash(
        record.id, record.document, record.metadata, hashlib.sha256(record.embedding).digest()
    )


def snapshot_digest(collections: Mapping[str, LtHash], position: int) -> Digest:
    """The snapshot digest from each collection's multiset hash."""
    hasher = hashlib.sha256(DIGEST_VERSION_LINE)
    hasher.update(f"position {position}\n".encode())
    counts: dict[str, int] = {}
    for name in COLLECTIONS:
        lanes = collections.get(name) or LtHash()
        hasher.update(f"collection {name} {lanes.count}\n".encode())
        hasher.update(lanes.to_bytes())
        counts[name] = lanes.count
    return Digest(position=position, digest=f"sha256:{hasher.hexdigest()}", counts=counts)


def collection_hashes(records: Iterable[ChromaRecord]) -> LtHash:
    return LtHash.of(hash_of(record) for record in records)


def digest_records(collections: Mapping[str, Sequence[ChromaRecord]], position: int) -> Digest:
    """The digest of dumped records (any order)."""
    return snapshot_digest(
        {name: collection_hashes(collections.get(name, ())) for name in COLLECTIONS}, position
    )


def digest_directory(directory: ChromaDirectory, position: int) -> Digest:
    return digest_records(dump(directory), position)
