"""Snapshot store on a local directory (or a mounted file system).

Files are written to a temporary name and renamed into place, so a reader never sees half a
file. The pointer is replaced by an atomic rename under an exclusive ``flock``, after checking
that it is still the version the publisher read: a compare-and-swap, as S3's ``If-Match``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from receipt_chroma.snapshots.backend import PointerConflict, SnapshotMissing, StoredObject

POINTER = "latest.json"


class LocalSnapshotBackend:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the store")
        return path

    def put_file(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, data)

    def copy(self, source: str, target: str) -> None:
        origin, destination = self._path(source), self._path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
        try:
            os.link(origin, temporary)  # files are never modified in place: sharing is safe
        except FileNotFoundError:
            raise SnapshotMissing(f"{self.url}/{source} does not exist") from None
        except OSError:
            shutil.copyfile(origin, temporary)
        os.replace(temporary, destination)

    def get_file(self, key: str, target: Path) -> None:
        try:
            shutil.copyfile(self._path(key), target)
        except FileNotFoundError:
            raise SnapshotMissing(f"{self.url}/{key} does not exist") from None

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise SnapshotMissing(f"{self.url}/{key} does not exist") from None

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            path.relative_to(self.root.resolve()).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.endswith(".tmp")
        )

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        for key in keys:  # drop directories the deletes left empty
            parent = self._path(key).parent
            while parent != self.root.resolve() and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def list_objects(self, prefix: str) -> list[StoredObject]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        root = self.root.resolve()
        found = []
        for path in base.rglob("*"):
            try:
                stat = path.lstat()
            except FileNotFoundError:
                continue  # deleted (or renamed into place) meanwhile
            if path.is_file() and not path.is_symlink():
                key = path.relative_to(root).as_posix()
                found.append(StoredObject(key, stat.st_size, stat.st_mtime_ns / 1e9))
        return sorted(found, key=lambda stored: stored.key)

    def remove(self, objects: list[StoredObject]) -> None:
        self.delete([stored.key for stored in objects])

    def read_pointer(self) -> tuple[bytes, str] | None:
        try:
            data = self._path(POINTER).read_bytes()
        except FileNotFoundError:
            return None
        return data, _version(data)

    def write_pointer(self, data: bytes, expected: str | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._pointer_lock():
            current = self.read_pointer()
            found = None if current is None else current[1]
            if found != expected:
                raise PointerConflict(
                    f"{self.url}/{POINTER} changed since it was read (someone else published)"
                )
            _write_atomically(self._path(POINTER), data)

    @contextmanager
    def _pointer_lock(self) -> Iterator[None]:
        fd = os.open(self.root / ".pointer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomically(target: Path, data: bytes) -> None:
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(name, target)
