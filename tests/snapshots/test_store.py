"""Snapshot stores: publish, verified pull, conditional forward-only pointer, fencing, retention,
restore-to-position. Run on every backend (a local directory and S3 on the moto server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from projections.publish import publish_directory
from projections.restore import restore
from projections.runner import rebuild
from receipt_chroma.snapshots import (
    FencedOut,
    NoSnapshot,
    PointerConflict,
    SnapshotCorrupt,
    SnapshotStore,
)
from receipt_chroma.snapshots.manifest import sha256_file
from tests.projection.helpers import Log, digest, project
from tests.snapshots.conftest import History


def publish(
    store: SnapshotStore, directory: Path, *, token: int = 1, expected: str | None = None
) -> str:
    pointer, version = store.pointer()
    manifest, _ = publish_directory(
        directory,
        store,
        token=token,
        parent=pointer.key if pointer else None,
        expected=version if expected is None else expected,
    )
    return manifest.key


def test_publish_then_pull_gives_the_same_snapshot(
    snapshots: SnapshotStore, history: History, tmp_path: Path
) -> None:
    source = history.snapshot_at(history.positions[-1])
    key = publish(snapshots, source)
    manifest = snapshots.manifest(key)
    # exactly the files as published (before anything reopens them: Chroma writes on open)
    for entry in manifest.files:
        assert entry.sha256 == sha256_file(source / entry.path)
        assert entry.size == (source / entry.path).stat().st_size
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert (pointer.key, pointer.position, pointer.token) == (key, history.positions[-1], 1)
    assert manifest.position == history.positions[-1]
    assert manifest.digest == pointer.digest == digest(history.snapshot_at(history.positions[-1]))
    assert key == f"{manifest.position:020d}-{manifest.digest.removeprefix('sha256:')[:16]}"
    assert manifest.counts == {"lines": 2, "words": 3}
    assert manifest.dimensions == {"lines": 8, "words": 8}
    assert manifest.parent is None
    paths = {entry.path for entry in manifest.files}
    assert "state.sqlite3" in paths
    assert "chroma/chroma.sqlite3" in paths
    assert ".writer.lock" not in paths

    pulled = restore(snapshots, tmp_path / "pulled")
    assert (pulled.position, pulled.digest) == (manifest.position, manifest.digest)
    assert pulled.from_key == key
    assert digest(tmp_path / "pulled") == manifest.digest


def test_the_pointer_moves_forward_only(snapshots: SnapshotStore, history: History) -> None:
    publish(snapshots, history.snapshot_at(history.positions[-1]))
    with pytest.raises(PointerConflict, match="already holds position"):
        publish(snapshots, history.snapshot_at(history.positions[1]))
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.position == history.positions[-1]


def test_two_publishers_from_the_same_base_one_wins(
    snapshots: SnapshotStore, history: History
) -> None:
    base = publish(snapshots, history.snapshot_at(history.positions[0]))
    _, version = snapshots.pointer()
    first = history.snapshot_at(history.positions[1])
    second = history.snapshot_at(history.positions[2])
    publish_directory(first, snapshots, token=2, parent=base, expected=version)
    with pytest.raises(PointerConflict):
        publish_directory(second, snapshots, token=3, parent=base, expected=version)
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.position == history.positions[1]
    # the loser retries from the new base, and its newer snapshot then lands
    publish(snapshots, second, token=3)
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.position == history.positions[2]
    assert (
        snapshots.manifest(pointer.key).parent
        == snapshots.manifest(
            f"{history.positions[1]:020d}-{digest(first).removeprefix('sha256:')[:16]}"
        ).key
    )


def test_a_stale_token_cannot_publish_over_a_newer_one(
    snapshots: SnapshotStore, history: History
) -> None:
    publish(snapshots, history.snapshot_at(history.positions[0]), token=6)
    with pytest.raises(FencedOut, match="token 6"):
        publish(snapshots, history.snapshot_at(history.positions[-1]), token=5)
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert (pointer.position, pointer.token) == (history.positions[0], 6)


def test_a_check_before_the_swap_can_stop_the_publish(
    snapshots: SnapshotStore, history: History
) -> None:
    class LockLostInTime(Exception):
        pass

    def lost() -> None:
        raise LockLostInTime

    with pytest.raises(LockLostInTime):
        publish_directory(
            history.snapshot_at(history.positions[0]),
            snapshots,
            token=1,
            parent=None,
            expected=None,
            before_swap=lost,
        )
    assert snapshots.pointer() == (None, None)


@pytest.mark.parametrize("damage", ["corrupt", "truncate", "delete"])
def test_a_damaged_snapshot_is_refused_and_nothing_is_left_behind(
    snapshots: SnapshotStore, history: History, tmp_path: Path, damage: str
) -> None:
    key = publish(snapshots, history.snapshot_at(history.positions[-1]))
    victim = f"snapshots/{key}/files/state.sqlite3"
    backend = snapshots.backend
    if damage == "delete":
        backend.delete([victim])
    else:
        data = backend.get_bytes(victim)
        backend.put_bytes(victim, data[:100] if damage == "truncate" else b"X" + data[1:])
    with pytest.raises(SnapshotCorrupt, match=rf"snapshot {key}: state\.sqlite3"):
        restore(snapshots, tmp_path / "pulled")
    assert not (tmp_path / "pulled").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pulled")]


def test_pulling_into_a_non_empty_directory_leaves_it_alone(
    snapshots: SnapshotStore, history: History, tmp_path: Path
) -> None:
    publish(snapshots, history.snapshot_at(history.positions[-1]))
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        restore(snapshots, target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_an_empty_store_is_not_an_empty_snapshot(snapshots: SnapshotStore, tmp_path: Path) -> None:
    with pytest.raises(NoSnapshot, match="no published snapshot"):
        restore(snapshots, tmp_path / "pulled")
    with pytest.raises(NoSnapshot, match="at or below position 3"):
        snapshots.newest_at_or_below(3)
    assert not (tmp_path / "pulled").exists()


def test_retention_keeps_the_newest_and_never_the_pointer_target(
    snapshots: SnapshotStore, history: History
) -> None:
    keys = [publish(snapshots, history.snapshot_at(p), token=1) for p in history.positions]
    deleted = snapshots.retain(2)
    assert deleted == keys[:-2]
    assert [m.key for m in snapshots.manifests()] == keys[-2:]
    for key in deleted:
        assert snapshots.backend.list_keys(f"snapshots/{key}/") == []
    # the pointer's snapshot survives even when it is not among the newest
    pointer = msgspec.json.encode(
        {"key": keys[-2], "position": history.positions[-2], "digest": "x", "token": 1}
    )
    _, version = snapshots.pointer()
    snapshots.backend.write_pointer(pointer, version)
    assert snapshots.retain(0) == [keys[-1]]
    assert [m.key for m in snapshots.manifests()] == [keys[-2]]


def test_restore_to_a_position_equals_rebuild_to_it(
    snapshots: SnapshotStore, history: History, log: Log, tmp_path: Path
) -> None:
    for position in history.positions[:2]:
        publish(snapshots, history.snapshot_at(position))
    target = history.positions[1] + 2  # between published snapshots and the head
    restored = restore(
        snapshots, tmp_path / "restored", position=target, store=log.store, deltas=log.deltas
    )
    rebuilt = rebuild(log.store, tmp_path / "rebuilt", log.deltas, to=target)
    assert restored.from_position == history.positions[1]
    assert restored.applied == target - history.positions[1]
    assert (restored.position, restored.digest) == (rebuilt.position, rebuilt.digest)
    # and below every snapshot there is nothing to restore from
    with pytest.raises(NoSnapshot):
        restore(snapshots, tmp_path / "nothing", position=history.positions[0] - 1)


def test_a_snapshot_pulled_and_caught_up_continues_the_log(
    snapshots: SnapshotStore, history: History, log: Log, tmp_path: Path
) -> None:
    publish(snapshots, history.snapshot_at(history.positions[0]))
    restore(snapshots, tmp_path / "pulled")
    project(log.store, tmp_path / "pulled", log.deltas)
    rebuilt = rebuild(log.store, tmp_path / "rebuilt", log.deltas)
    assert digest(tmp_path / "pulled") == rebuilt.digest
    shutil.rmtree(tmp_path / "rebuilt")
