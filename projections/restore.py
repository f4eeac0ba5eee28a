"""Restore a snapshot directory at a log position: the newest snapshot at or below it, plus
the log between the two. ``pull`` and ``rebuild --from-snapshot`` both come here."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec

from projections.errors import ProjectionConflict
from projections.runner import catch_up, check_same_log
from projections.snapshot_dir import open_snapshot
from projections.state import STATE_FILE
from receipt_chroma.deltas import DeltaSource
from receipt_chroma.snapshots import Pointer, SnapshotStore
from receipt_events.store import EventStore


class RestoreResult(msgspec.Struct, kw_only=True):
    position: int
    digest: str
    counts: dict[str, int]
    from_key: str
    from_position: int
    applied: int


def restore(
    snapshots: SnapshotStore,
    target: Path,
    *,
    position: int | None = None,
    store: EventStore | None = None,
    deltas: DeltaSource | None = None,
) -> RestoreResult:
    """Pull the newest snapshot at or below ``position`` (default: the pointer's) into
    ``target`` and, given the log, catch it up to exactly ``position``."""
    manifest = snapshots.newest_at_or_below(position)
    snapshots.download(manifest.key, target)
    applied = 0
    with open_snapshot(target, create=False) as snapshot:
        if position is not None and position > manifest.position:
            if store is None or deltas is None:
                raise ValueError(
                    f"the newest snapshot is at {manifest.position}; reaching {position} "
                    "needs the event store and the deltas"
                )
            applied = catch_up(store, snapshot, deltas, to=position).applied
        digest = snapshot.state.digest()
    return RestoreResult(
        position=digest.position,
        digest=digest.digest,
        counts=digest.counts,
        from_key=manifest.key,
        from_position=manifest.position,
        applied=applied,
    )


def ensure_local_copy(
    snapshots: SnapshotStore, pointer: Pointer | None, path: Path, store: EventStore
) -> bool:
    """Make ``path`` a snapshot directory at or past ``pointer``: reuse it if it already is (and
    belongs to this log), else replace it with the pointer's snapshot (or leave it empty when
    nothing is published). Returns whether the existing copy was reused.

    The pointer's snapshot is downloaded (and checked) beside the old copy, which is replaced
    only then: a corrupt or missing snapshot is refused with the old copy left as it was."""
    if (path / STATE_FILE).is_file():
        try:
            with open_snapshot(path, create=False) as snapshot:
                check_same_log(store, snapshot)
                if pointer is None or snapshot.state.checkpoint >= pointer.position:
                    return True
        except ProjectionConflict:
            pass  # a copy of another log: replace it
    if pointer is not None:
        pulled = path.with_name(f".{path.name}.pulled")
        if pulled.exists():
            shutil.rmtree(pulled)  # left by a run that stopped between download and swap
        snapshots.download(pointer.key, pulled)
        if path.exists():
            shutil.rmtree(path)
        pulled.rename(path)
    elif path.exists():
        shutil.rmtree(path)
    return False
