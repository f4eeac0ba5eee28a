"""The hash cache of a snapshot directory: a publish reads only the files changed since the last
publish or restore, and never trusts a stat that could hide a change.

``file_entries`` remembers each file's sha256 with its stat (device, inode, size, mtime and
ctime in ns) in ``.file-hashes.json`` beside the files (never published). A file is hashed
again whenever its stat differs, and a hash is only remembered for a file last modified at
least ``SETTLED_NS`` before it was read (a write in the same timestamp tick as the read could
leave the stat unchanged). A download seeds the cache with the hashes it checked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

import receipt_chroma.snapshots.manifest as manifest_module
from projections.restore import restore
from receipt_chroma.directory_lock import LOCK_FILE
from receipt_chroma.snapshots import SnapshotStore
from receipt_chroma.snapshots.manifest import (
    HASH_CACHE,
    SETTLED_NS,
    file_entries,
    read_hash_cache,
)
from tests.projection.helpers import Log, digest, project
from tests.support.snapshot_history import publish_next

BIG = 1100  # past Chroma's HNSW sync threshold (1000): below it, every read rewrites the index
EXCLUDE = frozenset({LOCK_FILE})


class Hashed(list[str]):
    """The files ``file_entries`` read (relative paths), in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        super().__init__()
        real = manifest_module.sha256_file

        def counting(path: Path) -> str:
            self.append(path.relative_to(root).as_posix())
            return real(path)

        monkeypatch.setattr(manifest_module, "sha256_file", counting)


def settle(directory: Path, seconds: float = 60.0) -> None:
    """Make every file look last modified ``seconds`` ago (as if written long before)."""
    past = time.time_ns() - int(seconds * 1e9)
    for path in directory.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(past, past))


def stats(directory: Path) -> dict[str, tuple[int, int, int, int]]:
    return {
        path.relative_to(directory).as_posix(): (
            path.stat().st_ino,
            path.stat().st_size,
            path.stat().st_mtime_ns,
            path.stat().st_ctime_ns,
        )
        for path in directory.rglob("*")
        if path.is_file() and path.name not in (LOCK_FILE, HASH_CACHE)
    }


def true_hashes(directory: Path) -> dict[str, str]:
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in directory.rglob("*")
        if path.is_file() and path.name not in (LOCK_FILE, HASH_CACHE)
    }


def plain_directory(root: Path) -> Path:
    root.mkdir()
    (root / "sub").mkdir()
    (root / "a.bin").write_bytes(b"a" * 1000)
    (root / "sub" / "b.bin").write_bytes(b"b" * 1000)
    (root / "c.bin").write_bytes(b"c" * 10)
    return root


def test_unchanged_files_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = plain_directory(tmp_path / "d")
    settle(directory)
    hashed = Hashed(monkeypatch, directory)
    first = file_entries(directory)
    assert sorted(hashed) == ["a.bin", "c.bin", "sub/b.bin"]
    assert {entry.path: entry.sha256 for entry in first} == true_hashes(directory)
    assert set(read_hash_cache(directory)) == {"a.bin", "c.bin", "sub/b.bin"}
    hashed.clear()
    assert file_entries(directory) == first
    assert hashed == []


def test_a_file_rewritten_in_place_with_the_same_size_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = plain_directory(tmp_path / "d")
    settle(directory)
    file_entries(directory)
    hashed = Hashed(monkeypatch, directory)
    with (directory / "a.bin").open("r+b") as handle:  # same inode, same size: a new mtime
        handle.write(b"A")
    entries = {entry.path: entry.sha256 for entry in file_entries(directory)}
    assert hashed == ["a.bin"]
    assert entries == true_hashes(directory)


def test_a_rewrite_whose_mtime_is_put_back_is_caught_by_its_ctime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = plain_directory(tmp_path / "d")
    settle(directory)
    file_entries(directory)
    before = (directory / "sub" / "b.bin").stat()
    time.sleep(0.05)  # past the file system's timestamp tick
    (directory / "sub" / "b.bin").write_bytes(b"B" * 1000)  # same size
    os.utime(directory / "sub" / "b.bin", ns=(before.st_atime_ns, before.st_mtime_ns))
    hashed = Hashed(monkeypatch, directory)
    entries = {entry.path: entry.sha256 for entry in file_entries(directory)}
    assert hashed == ["sub/b.bin"]
    assert entries == true_hashes(directory)


def test_a_file_modified_just_before_it_is_read_is_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write in the same timestamp tick as the read could leave its stat unchanged, so a hash
    is only remembered once the file's mtime is SETTLED_NS old: it is read again next time."""
    directory = plain_directory(tmp_path / "d")
    settle(directory)
    (directory / "c.bin").write_bytes(b"C" * 10)  # modified now
    file_entries(directory)
    assert set(read_hash_cache(directory)) == {"a.bin", "sub/b.bin"}
    hashed = Hashed(monkeypatch, directory)
    file_entries(directory)
    assert hashed == ["c.bin"]
    # once its mtime is old enough when read, it is remembered
    old = time.time_ns() - SETTLED_NS - 10**9
    os.utime(directory / "c.bin", ns=(old, old))
    hashed.clear()
    file_entries(directory)
    assert hashed == ["c.bin"]  # its ctime changed with the utime: read once more
    hashed.clear()
    file_entries(directory)
    assert hashed == []


def test_a_copied_directory_is_read_again_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy keeps the cache file and (copy2) the mtimes, but not the inodes."""
    directory = plain_directory(tmp_path / "d")
    settle(directory)
    file_entries(directory)
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    assert (copy / HASH_CACHE).is_file()
    hashed = Hashed(monkeypatch, copy)
    entries = {entry.path: entry.sha256 for entry in file_entries(copy)}
    assert sorted(hashed) == ["a.bin", "c.bin", "sub/b.bin"]
    assert entries == true_hashes(copy)


@pytest.mark.parametrize("damage", [b"", b"not json", b'{"version": 99, "files": {}}'])
def test_an_unreadable_hash_cache_is_ignored_and_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes
) -> None:
    directory = plain_directory(tmp_path / "d")
    settle(directory)
    file_entries(directory)
    (directory / HASH_CACHE).write_bytes(damage)
    hashed = Hashed(monkeypatch, directory)
    entries = {entry.path: entry.sha256 for entry in file_entries(directory)}
    assert sorted(hashed) == ["a.bin", "c.bin", "sub/b.bin"]
    assert entries == true_hashes(directory)
    assert set(read_hash_cache(directory)) == {"a.bin", "c.bin", "sub/b.bin"}


def test_the_cache_and_excluded_files_are_never_listed(tmp_path: Path) -> None:
    directory = plain_directory(tmp_path / "d")
    (directory / LOCK_FILE).write_text("123")
    (directory / f"{HASH_CACHE}.abc.tmp").write_text("left by a crash")
    settle(directory)
    paths = [entry.path for entry in file_entries(directory, exclude=EXCLUDE)]
    assert paths == ["a.bin", "c.bin", "sub/b.bin"]
    assert (directory / HASH_CACHE).is_file()
    assert LOCK_FILE not in read_hash_cache(directory)
    assert not (directory / f"{HASH_CACHE}.abc.tmp").exists()  # a killed writer's, cleaned up


# -- in a publish and a restore, on every backend ---------------------------------------------


def big_log(log: Log) -> tuple[int, int]:
    lines = {line: f"L{line}" for line in range(1, BIG + 1)}
    before = log.add(log.run("big", lines=lines, words={(1, 1): "TOTAL", (2, 1): "CASH"}))[-1]
    after = log.add(log.label(1, 1, "TOTAL", "VALID"))[-1]
    return before, after


def test_a_publish_reads_only_the_files_changed_since_the_last_one(
    snapshots: SnapshotStore, log: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after = big_log(log)
    work = tmp_path / "work"
    project(log.store, work, log.deltas, to=before)
    settle(work)  # written long ago
    first = publish_next(snapshots, work, token=1)
    assert HASH_CACHE not in {entry.path for entry in snapshots.manifest(first).files}
    assert (work / HASH_CACHE).is_file()
    old = stats(work)
    project(log.store, work, log.deltas, to=after)  # one label: metadata only
    changed = {path for path, stat in stats(work).items() if old.get(path) != stat}

    hashed = Hashed(monkeypatch, work)
    key = publish_next(snapshots, work, token=2)
    manifest = snapshots.manifest(key)
    assert set(hashed) == changed
    assert {"state.sqlite3", "chroma/chroma.sqlite3"} <= changed
    unread = {entry.path for entry in manifest.files} - changed
    assert any(path.endswith("/data_level0.bin") for path in unread), sorted(unread)
    assert {entry.path: entry.sha256 for entry in manifest.files} == true_hashes(work)

    pulled = restore(snapshots, tmp_path / "pulled")  # every file checked
    assert pulled.digest == manifest.digest == digest(work)


def test_a_download_seeds_the_cache_so_nothing_is_read_again(
    snapshots: SnapshotStore, log: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after = big_log(log)
    work = tmp_path / "work"
    project(log.store, work, log.deltas, to=before)
    key = publish_next(snapshots, work, token=1)
    manifest = snapshots.manifest(key)

    pulled = tmp_path / "pulled"
    snapshots.download(key, pulled)
    hashed = Hashed(monkeypatch, pulled)
    assert file_entries(pulled, exclude=EXCLUDE) == manifest.files
    assert hashed == []

    # the first publish after a restore reads only what changed since the download
    downloaded = stats(pulled)
    project(log.store, pulled, log.deltas, to=after)
    changed = {path for path, stat in stats(pulled).items() if downloaded.get(path) != stat}
    second = snapshots.manifest(publish_next(snapshots, pulled, token=2))
    assert set(hashed) == changed
    assert len(changed) < len(second.files)
    assert {entry.path: entry.sha256 for entry in second.files} == true_hashes(pulled)
    restored = restore(snapshots, tmp_path / "again")
    assert restored.digest == second.digest == digest(pulled)
