"""Position-addressed snapshots on a local directory or S3, published with a conditional pointer."""

from receipt_chroma.snapshots.backend import BucketMissing, PointerConflict, SnapshotMissing
from receipt_chroma.snapshots.manifest import FileEntry, Manifest, Pointer, snapshot_key
from receipt_chroma.snapshots.store import (
    FencedOut,
    NoSnapshot,
    SnapshotCorrupt,
    SnapshotStore,
    open_snapshot_store,
)

__all__ = [
    "BucketMissing",
    "FencedOut",
    "FileEntry",
    "Manifest",
    "NoSnapshot",
    "Pointer",
    "PointerConflict",
    "SnapshotCorrupt",
    "SnapshotMissing",
    "SnapshotStore",
    "open_snapshot_store",
    "snapshot_key",
]
