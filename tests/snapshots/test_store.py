"""Snapshot stores: publish, verified pull, conditional forward-only pointer, fencing, retention,
restore-to-position. Run on every backend (a local directory and S3 on the moto server)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from projections.publish import publish_directory
from projections.restore import restore
from projections.runner import rebuild
from receipt_chroma.snapshots import (
    FencedOut,
    Manifest,
    NoSnapshot,
    Pointer,
    PointerConflict,
    SnapshotCorrupt,
    SnapshotStore,
    open_snapshot_store,
)
from receipt_chroma.snapshots.manifest import sha256_file
from tests.projection.helpers import Log, digest, project
from tests.support.snapshot_history import History


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
    assert key == (
        f"{manifest.position:020d}-{manifest.digest.removeprefix('sha256:')[:16]}-t{manifest.token}"
    )
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
            f"{history.positions[1]:020d}-{digest(first).removeprefix('sha256:')[:16]}-t2"
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


# -- a real race on the pointer --------------------------------------------------------------

RACE_ROUNDS = 30


def manifest_of(directory: Path, scratch: Path, *, token: int) -> Manifest:
    """The manifest ``publish_directory`` makes for a directory (published to a scratch store)."""
    manifest, _ = publish_directory(
        directory, open_snapshot_store(str(scratch)), token=token, parent=None, expected=None
    )
    return manifest


def race(contenders: dict[int, tuple[SnapshotStore, Path, Manifest]]) -> dict[int, object]:
    """Each contender, on its own thread: read the pointer, then publish from that version.
    What each got: its new Pointer, or the exception it raised."""
    outcomes: dict[int, object] = {}

    def contend(token: int) -> None:
        store, directory, manifest = contenders[token]
        try:
            _, version = store.pointer()
            outcomes[token] = store.publish(directory, manifest, expected=version)
        except BaseException as error:
            outcomes[token] = error

    threads = [threading.Thread(target=contend, args=(token,)) for token in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_concurrent_publishers_from_one_base_exactly_one_wins_every_round(
    snapshots: SnapshotStore, history: History, tmp_path: Path
) -> None:
    """Two publishers (each with its own store handle, as two processes) read the same pointer
    version, upload, and swap at the same moment: a barrier inside ``write_pointer`` releases
    both into the real conditional write together. Every round exactly one swap succeeds and the
    other gets PointerConflict; the pointer names the winner. Even rounds race for the very first
    pointer (S3 ``If-None-Match``), odd rounds from a published base (``If-Match``)."""
    base_directory = history.snapshot_at(history.positions[0])
    base = manifest_of(base_directory, tmp_path / "scratch", token=1)
    barrier = threading.Barrier(2, timeout=60)
    contenders: dict[int, tuple[SnapshotStore, Path, Manifest]] = {}
    for token, position in ((2, history.positions[1]), (3, history.positions[2])):
        directory = history.snapshot_at(position)
        handle = open_snapshot_store(snapshots.url)
        write_pointer = handle.backend.write_pointer

        def at_the_same_moment(
            data: bytes, expected: str | None, write_pointer: Any = write_pointer
        ) -> None:
            barrier.wait()
            write_pointer(data, expected)

        handle.backend.write_pointer = at_the_same_moment  # type: ignore[method-assign]
        manifest = manifest_of(directory, tmp_path / f"scratch-{token}", token=token)
        contenders[token] = (handle, directory, manifest)

    snapshots.publish(base_directory, base, expected=None)  # uploaded once, pointed at often
    base_pointer = snapshots.backend.read_pointer()
    assert base_pointer is not None
    wins = dict.fromkeys(contenders, 0)
    for round_ in range(RACE_ROUNDS):
        snapshots.backend.delete(["latest.json"])
        parent = None
        if round_ % 2:
            snapshots.backend.write_pointer(base_pointer[0], None)
            parent = base.key
        racing = {
            token: (handle, directory, msgspec.structs.replace(manifest, parent=parent))
            for token, (handle, directory, manifest) in contenders.items()
        }
        outcomes = race(racing)
        assert not barrier.broken, f"round {round_}: {outcomes}"
        assert barrier.n_waiting == 0, f"round {round_}: {outcomes}"
        won = [token for token, outcome in outcomes.items() if isinstance(outcome, Pointer)]
        lost = [token for token, outcome in outcomes.items() if type(outcome) is PointerConflict]
        assert (len(won), len(lost)) == (1, 1), f"round {round_}: {outcomes}"
        winner = racing[won[0]][2]
        pointer, _ = snapshots.pointer()
        assert pointer == outcomes[won[0]]
        assert pointer is not None
        assert (pointer.key, pointer.position, pointer.token) == (
            winner.key,
            winner.position,
            won[0],
        )
        assert snapshots.manifest(winner.key).parent == parent
        wins[won[0]] += 1
    assert sum(wins.values()) == RACE_ROUNDS


# -- publishing only what changed ----------------------------------------------------------


class Transfers:
    """Spies on a store: the keys its backend sent and copied, and what ``upload`` returned."""

    def __init__(self, snapshots: SnapshotStore) -> None:
        self.sent: list[str] = []
        self.copied: list[tuple[str, str]] = []
        self.uploads: list[int] = []
        backend = snapshots.backend
        put_file, copy, upload = backend.put_file, backend.copy, snapshots.upload

        def spy_put_file(key: str, source: Path) -> None:
            self.sent.append(key)
            put_file(key, source)

        def spy_copy(source: str, target: str) -> None:
            copy(source, target)
            self.copied.append((source, target))  # only copies that happened

        def spy_upload(directory: Path, manifest: Manifest) -> int:
            self.uploads.append(upload(directory, manifest))
            return self.uploads[-1]

        backend.put_file = spy_put_file  # type: ignore[method-assign]
        backend.copy = spy_copy  # type: ignore[method-assign]
        snapshots.upload = spy_upload  # type: ignore[method-assign]


def files(key: str, paths: set[str]) -> list[str]:
    return sorted(f"snapshots/{key}/files/{path}" for path in paths)


BIG = 1100  # past Chroma's HNSW sync threshold (1000): below it, every read rewrites the index


def test_a_metadata_only_catch_up_publishes_only_the_changed_files(
    snapshots: SnapshotStore, log: Log, tmp_path: Path
) -> None:
    """A label changes word metadata only: Chroma's vector files (a persisted HNSW index, and
    every other unchanged file) are copied inside the store from the parent snapshot, not sent
    again; the snapshot pulled back still verifies file by file and equals a rebuild."""
    lines = {line: f"L{line}" for line in range(1, BIG + 1)}
    before = log.add(log.run("big", lines=lines, words={(1, 1): "TOTAL", (2, 1): "CASH"}))[-1]
    after = log.add(log.label(1, 1, "TOTAL", "VALID"))[-1]
    work = tmp_path / "work"
    project(log.store, work, log.deltas, to=before)
    parent_key = publish(snapshots, work)
    parent = {entry.path: entry.sha256 for entry in snapshots.manifest(parent_key).files}
    project(log.store, work, log.deltas, to=after)  # one label: metadata only

    transfers = Transfers(snapshots)
    key = publish(snapshots, work, token=2)
    manifest = snapshots.manifest(key)
    assert manifest.parent == parent_key
    unchanged = {entry.path for entry in manifest.files if parent.get(entry.path) == entry.sha256}
    changed = {entry.path for entry in manifest.files} - unchanged
    # the lines collection's whole persisted HNSW index is untouched; the databases changed
    index = {"data_level0.bin", "header.bin", "index_metadata.pickle", "length.bin"}
    untouched = {
        path.rsplit("/", 1)[0]
        for path in unchanged
        if path.endswith("/data_level0.bin")
        and {f"{path.rsplit('/', 1)[0]}/{name}" for name in index} <= unchanged
    }
    assert len(untouched) >= 1, sorted(unchanged)
    assert {"state.sqlite3", "chroma/chroma.sqlite3"} <= changed

    assert sorted(transfers.copied) == list(
        zip(files(parent_key, unchanged), files(key, unchanged), strict=True)
    )
    assert sorted(transfers.sent) == files(key, changed)
    sizes = {entry.path: entry.size for entry in manifest.files}
    assert transfers.uploads == [sum(sizes[path] for path in changed)]
    assert sum(sizes[path] for path in unchanged) > 100_000  # the vectors were not sent

    pulled = restore(snapshots, tmp_path / "pulled")
    assert (pulled.from_key, pulled.position) == (key, after)
    rebuilt = rebuild(log.store, tmp_path / "rebuilt", log.deltas, to=after)
    assert pulled.digest == manifest.digest == rebuilt.digest


@pytest.mark.parametrize("when", ["before the upload", "during the upload"])
def test_a_parent_deleted_by_retention_meanwhile_means_the_files_are_sent(
    snapshots: SnapshotStore, history: History, log: Log, tmp_path: Path, when: str
) -> None:
    """Our manifest names the parent it started from; a rival then publishes a newer snapshot
    and its retention deletes that parent, before our upload starts or after our upload read
    the parent's manifest. Every file we meant to copy is sent instead, the snapshot we
    uploaded is complete (it verifies), and our swap loses to the rival's newer pointer."""
    work = tmp_path / "work"
    project(log.store, work, log.deltas, to=history.positions[0])
    parent_key = publish(snapshots, work)
    project(log.store, work, log.deltas, to=history.positions[1])
    pointer, version = snapshots.pointer()
    assert pointer is not None

    rival = open_snapshot_store(snapshots.url)

    def rival_publishes_and_retains() -> None:
        rival_pointer, rival_version = rival.pointer()
        assert rival_pointer is not None
        publish_directory(
            history.snapshot_at(history.positions[2]),
            rival,
            token=3,
            parent=rival_pointer.key,
            expected=rival_version,
        )
        assert rival.retain(1) == [parent_key]

    transfers = Transfers(snapshots)
    if when == "before the upload":
        upload = snapshots.upload

        def retained_then_upload(directory: Path, manifest: Manifest) -> int:
            rival_publishes_and_retains()
            return upload(directory, manifest)

        snapshots.upload = retained_then_upload  # type: ignore[method-assign]
    else:
        parent_files = snapshots._parent_files

        def read_parent_then_retained(manifest: Manifest) -> dict[str, str]:
            inherited = parent_files(manifest)
            assert inherited, "the parent's manifest was read"
            rival_publishes_and_retains()
            return inherited

        snapshots._parent_files = read_parent_then_retained  # type: ignore[method-assign]

    with pytest.raises(PointerConflict):
        publish_directory(work, snapshots, token=2, parent=pointer.key, expected=version)
    ours = [m for m in snapshots.manifests() if m.position == history.positions[1]]
    assert len(ours) == 1
    manifest = ours[0]
    assert manifest.parent == parent_key
    assert transfers.copied == []
    assert sorted(transfers.sent) == files(manifest.key, {e.path for e in manifest.files})
    assert transfers.uploads == [sum(entry.size for entry in manifest.files)]

    snapshots.download(manifest.key, tmp_path / "ours")  # every file checked
    rebuilt = rebuild(log.store, tmp_path / "rebuilt", log.deltas, to=history.positions[1])
    assert digest(tmp_path / "ours") == manifest.digest == rebuilt.digest
    current, _ = snapshots.pointer()
    assert current is not None
    assert current.position == history.positions[2]
