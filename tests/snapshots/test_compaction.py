"""Compaction: lock → restore latest (or reuse the cache) → catch up → publish → release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from projections.compaction import compact, lock_name
from projections.publish import publish_directory
from projections.runner import rebuild
from receipt_chroma.lease import FileLocks, LockBusy, LockLost
from receipt_chroma.snapshots import SnapshotStore
from tests.projection.helpers import Log, digest, project
from tests.snapshots.conftest import History


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def locks(tmp_path: Path, clock: Clock) -> FileLocks:
    return FileLocks(tmp_path / "locks", clock=clock)


def run(log: Log, snapshots: SnapshotStore, locks: Any, cache: Path, **options: Any) -> Any:
    return compact(log.store, snapshots, locks, log.deltas, cache, **options)


def test_the_first_compaction_builds_from_the_log_and_publishes(
    history: History, log: Log, snapshots: SnapshotStore, locks: FileLocks, tmp_path: Path
) -> None:
    result = run(log, snapshots, locks, tmp_path / "cache")
    head = log.store.head()
    assert (result.published, result.position, result.applied) == (True, head, head)
    assert result.reused_cache is False
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.key == result.key
    assert pointer.digest == rebuild(log.store, tmp_path / "rebuilt", log.deltas).digest


def test_nothing_new_publishes_nothing(
    history: History, log: Log, snapshots: SnapshotStore, locks: FileLocks, tmp_path: Path
) -> None:
    first = run(log, snapshots, locks, tmp_path / "cache")
    listed = [m.key for m in snapshots.manifests()]
    again = run(log, snapshots, locks, tmp_path / "cache")
    assert (again.published, again.applied, again.key) == (False, 0, first.key)
    assert [m.key for m in snapshots.manifests()] == listed


def test_a_warm_cache_is_reused_and_a_cold_one_pulls_the_latest(
    history: History, log: Log, snapshots: SnapshotStore, locks: FileLocks, tmp_path: Path
) -> None:
    run(log, snapshots, locks, tmp_path / "cache", to=history.positions[1])
    log.add(log.label(2, 1, "CASH", "VALID"))
    downloads: list[str] = []
    fetch = snapshots.backend.get_file
    snapshots.backend.get_file = lambda key, target: (downloads.append(key), fetch(key, target))[1]  # type: ignore[method-assign]
    warm = run(log, snapshots, locks, tmp_path / "cache")
    assert (warm.reused_cache, warm.published, warm.applied) == (
        True,
        True,
        log.store.head() - history.positions[1],
    )
    assert downloads == []
    log.add(log.label(2, 1, "CASH", "INVALID"))
    cold = run(log, snapshots, locks, tmp_path / "elsewhere")
    assert (cold.reused_cache, cold.published, cold.applied) == (False, True, 1)
    assert downloads
    assert all(key.startswith(f"snapshots/{warm.key}/") for key in downloads)
    assert (
        digest(tmp_path / "elsewhere")
        == rebuild(log.store, tmp_path / "rebuilt", log.deltas).digest
    )


def test_a_cache_behind_the_store_is_replaced_by_the_latest(
    history: History, log: Log, snapshots: SnapshotStore, locks: FileLocks, tmp_path: Path
) -> None:
    run(log, snapshots, locks, tmp_path / "old-cache", to=history.positions[0])
    run(log, snapshots, locks, tmp_path / "other", to=history.positions[2])
    result = run(log, snapshots, locks, tmp_path / "old-cache")
    assert result.reused_cache is False  # at positions[0], behind the pointer at positions[2]
    assert result.applied == log.store.head() - history.positions[2]


def test_losing_the_pointer_swap_retries_from_the_new_base(
    history: History, log: Log, snapshots: SnapshotStore, locks: FileLocks, tmp_path: Path
) -> None:
    """Another publisher lands between our read of the pointer and our swap: we start again
    from its snapshot, and the end state holds both its changes and ours."""
    run(log, snapshots, locks, tmp_path / "cache", to=history.positions[0])
    rival = history.snapshot_at(history.positions[2])
    write_pointer = snapshots.backend.write_pointer
    interfered: list[int] = []

    def publish_first_then_ours(data: bytes, expected: str | None) -> None:
        if not interfered:
            interfered.append(1)
            pointer, version = snapshots.pointer()
            publish_directory(
                rival,
                snapshots,
                token=1,  # an older holder, sneaking in while we work
                parent=pointer.key if pointer else None,
                expected=version,
            )
        write_pointer(data, expected)

    snapshots.backend.write_pointer = publish_first_then_ours  # type: ignore[method-assign]
    result = run(log, snapshots, locks, tmp_path / "cache")
    assert result.attempts == 2
    assert result.published
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.position == log.store.head()
    assert snapshots.manifest(pointer.key).parent is not None
    assert (
        snapshots.manifest(snapshots.manifest(pointer.key).parent or "").position
        == history.positions[2]
    )
    assert pointer.digest == rebuild(log.store, tmp_path / "rebuilt", log.deltas).digest


def test_a_second_compactor_is_refused_while_the_lock_is_held(
    history: History, log: Log, snapshots: SnapshotStore, locks: FileLocks, tmp_path: Path
) -> None:
    held = locks.acquire(lock_name(snapshots), ttl=60)
    with pytest.raises(LockBusy):
        run(log, snapshots, locks, tmp_path / "cache")
    held.release()
    assert run(log, snapshots, locks, tmp_path / "cache").published


def test_an_expired_holder_cannot_publish_after_a_newer_one(
    history: History,
    log: Log,
    snapshots: SnapshotStore,
    locks: FileLocks,
    clock: Clock,
    tmp_path: Path,
) -> None:
    """A's lease expires while it works; B takes the lock (a newer token) and publishes; A's
    publish is refused and the store keeps B's snapshot."""
    stale = locks.acquire(lock_name(snapshots), ttl=30)
    project(log.store, tmp_path / "a", log.deltas, to=history.positions[1])
    clock.now += 31
    newer = run(log, snapshots, locks, tmp_path / "b")
    assert newer.token > stale.token
    pointer, version = snapshots.pointer()
    with pytest.raises(LockLost):
        stale.check()
    from receipt_chroma.snapshots import FencedOut, PointerConflict

    with pytest.raises((FencedOut, PointerConflict)):
        publish_directory(
            tmp_path / "a",
            snapshots,
            token=stale.token,
            parent=None,
            expected=version,
            before_swap=stale.check,
        )
    assert snapshots.pointer()[0] == pointer
