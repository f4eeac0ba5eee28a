"""Publishing a snapshot directory to a snapshot store: manifest → upload → pointer swap.

The manifest is built from the directory itself (checkpoint, canonical digest, counts,
dimensions, each collection's model, every file's sha256) while the directory is sealed under
its writer lock, so the files uploaded are exactly the files hashed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from projections.errors import StateError
from projections.snapshot_dir import open_snapshot
from projections.state import PROJECTION_VERSION
from receipt_chroma.client import COLLECTIONS
from receipt_chroma.digest import DIGEST_VERSION
from receipt_chroma.directory_lock import LOCK_FILE
from receipt_chroma.provenance import Provenance
from receipt_chroma.snapshots import Manifest, Pointer, SnapshotStore, snapshot_key
from receipt_chroma.snapshots.manifest import file_entries


def publish_directory(
    path: Path,
    snapshots: SnapshotStore,
    *,
    token: int,
    parent: str | None,
    expected: str | None,
    before_swap: Callable[[], None] = lambda: None,
) -> tuple[Manifest, Pointer]:
    """Publish the snapshot directory at ``path``; see :meth:`SnapshotStore.publish`."""
    with open_snapshot(path, create=False) as snapshot:
        state = snapshot.state
        if state.inflight_to is not None:
            raise StateError(f"{path} has a batch in flight; finish it before publishing")
        position = state.checkpoint
        digest = state.digest()  # kept as records were written: O(1), not a dump
        dimensions: dict[str, int] = {
            name: dimension
            for name in COLLECTIONS
            if (dimension := state.dimension(name)) is not None
        }
        provenance: dict[str, Provenance] = {
            name: model for name in COLLECTIONS if (model := state.provenance(name)) is not None
        }
        snapshot.seal()
        manifest = Manifest(
            key=snapshot_key(position, digest.digest, token),
            position=position,
            projection_version=PROJECTION_VERSION,
            digest=digest.digest,
            digest_version=DIGEST_VERSION,
            counts=digest.counts,
            dimensions=dimensions,
            provenance=provenance,
            parent=parent,
            token=token,
            files=file_entries(path, exclude=frozenset({LOCK_FILE})),
        )
        pointer = snapshots.publish(path, manifest, expected=expected, before_swap=before_swap)
    return manifest, pointer
