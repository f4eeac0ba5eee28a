"""Compaction: lock → restore the latest snapshot → catch up with the log → publish → release.

The local copy (the *cache*) is reused when it is at or past the published snapshot, so a
warm compactor downloads nothing. Nothing new means nothing published. Publishing is fenced
twice: the lock must still be ours (with the token we acquired) just before the pointer
swap, and the swap itself is conditional on the pointer we started from; a compactor that
loses the swap starts again from the new pointer.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec

from projections.publish import publish_directory
from projections.runner import ProjectionConflict, catch_up, check_same_log
from projections.snapshot_dir import open_snapshot
from projections.state import STATE_FILE
from receipt_chroma.deltas import DeltaSource
from receipt_chroma.lease import LeaseKeeper, Locks
from receipt_chroma.snapshots import Pointer, PointerConflict, SnapshotStore
from receipt_events.store import EventStore

DEFAULT_LOCK_TTL = 300.0
DEFAULT_KEEP = 5
MAX_ATTEMPTS = 5


class CompactResult(msgspec.Struct, kw_only=True):
    published: bool
    position: int
    applied: int
    key: str | None
    token: int
    attempts: int
    reused_cache: bool
    deleted: list[str] = msgspec.field(default_factory=list)


class CompactionGaveUp(Exception):
    """Every attempt lost the pointer swap to another publisher."""


def lock_name(snapshots: SnapshotStore) -> str:
    return f"compaction:{snapshots.url}"


def compact(
    store: EventStore,
    snapshots: SnapshotStore,
    locks: Locks,
    deltas: DeltaSource,
    cache: Path,
    *,
    to: int | None = None,
    ttl: float = DEFAULT_LOCK_TTL,
    keep: int = DEFAULT_KEEP,
    max_attempts: int = MAX_ATTEMPTS,
) -> CompactResult:
    lease = locks.acquire(lock_name(snapshots), ttl=ttl)
    try:
        with LeaseKeeper(lease) as keeper:
            for attempt in range(1, max_attempts + 1):
                pointer, version = snapshots.pointer()
                reused = _prepare_cache(snapshots, pointer, cache, store)
                with open_snapshot(cache) as snapshot:
                    applied = catch_up(store, snapshot, deltas, to=to).applied
                    position = snapshot.state.checkpoint
                base = pointer.position if pointer else 0
                if position <= base:
                    return CompactResult(
                        published=False,
                        position=base,
                        applied=applied,
                        key=pointer.key if pointer else None,
                        token=lease.token,
                        attempts=attempt,
                        reused_cache=reused,
                    )
                keeper.check()
                try:
                    manifest, _ = publish_directory(
                        cache,
                        snapshots,
                        token=lease.token,
                        parent=pointer.key if pointer else None,
                        expected=version,
                        before_swap=keeper.check,
                    )
                except PointerConflict:
                    continue  # someone published first: start again from their snapshot
                return CompactResult(
                    published=True,
                    position=manifest.position,
                    applied=applied,
                    key=manifest.key,
                    token=lease.token,
                    attempts=attempt,
                    reused_cache=reused,
                    deleted=snapshots.retain(keep),
                )
    finally:
        lease.release()
    raise CompactionGaveUp(
        f"{snapshots.url}: lost the pointer swap {max_attempts} times; another publisher is active"
    )


def _prepare_cache(
    snapshots: SnapshotStore, pointer: Pointer | None, cache: Path, store: EventStore
) -> bool:
    """Reuse the cache if it is at or past the pointer (and of this log), else pull."""
    if (cache / STATE_FILE).is_file():
        try:
            with open_snapshot(cache, create=False) as snapshot:
                check_same_log(store, snapshot)
                if pointer is None or snapshot.state.checkpoint >= pointer.position:
                    return True
        except ProjectionConflict:
            pass  # a cache of another log: replace it
        shutil.rmtree(cache)
    elif cache.exists():
        shutil.rmtree(cache)
    if pointer is not None:
        snapshots.download(pointer.key, cache)
    return False
