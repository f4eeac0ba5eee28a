"""Position-addressed snapshots on a local directory or S3, published with a conditional pointer."""

from receipt_chroma.snapshots.backend import (
    BucketMissing,
    PointerConflict,
    SnapshotMissing,
    StoredObject,
)
from receipt_chroma.snapshots.manifest import FileEntry, Manifest, Pointer, snapshot_key
from receipt_chroma.snapshots.store import (
    FencedOut,
    NoSnapshot,
    SnapshotCorrupt,
    SnapshotStore,
    open_snapshot_store,
)
from receipt_chroma.snapshots.sweep import Orphan, SweepResult, sweep_orphans

__all__ = [
    "BucketMissing",
    "FencedOut",
    "FileEntry",
    "Manifest",
    "NoSnapshot",
    "Orphan",
    "Pointer",
    "PointerConflict",
    "SnapshotCorrupt",
    "SnapshotMissing",
    "SnapshotStore",
    "StoredObject",
    "SweepResult",
    "open_snapshot_store",
    "snapshot_key",
    "sweep_orphans",
]
