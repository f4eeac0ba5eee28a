"""Publishing and pulling snapshots, on top of a storage backend (local directory or S3).

Publish uploads every file, then the manifest, and only then moves the pointer, with a
compare-and-swap on the version read when the publisher started: forward only (a higher
position), never past a newer fencing token. A loser gets :class:`PointerConflict` or
:class:`FencedOut`, never a silent overwrite. Pull downloads into a scratch directory, checks
every file against the manifest, and only then moves it into place: a corrupt or partial
snapshot is refused and whatever was there before is untouched.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from receipt_chroma.snapshots.backend import PointerConflict, SnapshotBackend, SnapshotMissing
from receipt_chroma.snapshots.manifest import (
    SETTLED_NS,
    CachedHash,
    FileEntry,
    Manifest,
    Pointer,
    is_hash_cache,
    remember_verified,
    sha256_file,
    write_hash_cache,
)
from receipt_events import faults

SNAPSHOTS = "snapshots"
TRANSFER_THREADS = 4


class SnapshotCorrupt(Exception):
    """A snapshot whose files do not match its manifest."""


class FencedOut(Exception):
    """A holder of a newer lease token has already published: this publisher is stale."""


class NoSnapshot(Exception):
    """Nothing published (yet), or nothing at or below the position asked for."""


class SnapshotStore:
    def __init__(self, backend: SnapshotBackend) -> None:
        self.backend = backend

    @property
    def url(self) -> str:
        return self.backend.url

    # -- reading -------------------------------------------------------------------------

    def pointer(self) -> tuple[Pointer | None, str | None]:
        """The current pointer and its version (for the compare-and-swap), or (None, None)."""
        found = self.backend.read_pointer()
        if found is None:
            return None, None
        data, version = found
        try:
            return msgspec.json.decode(data, type=Pointer), version
        except msgspec.DecodeError as error:
            raise SnapshotCorrupt(
                f"{self.url}/latest.json is not a valid pointer: {error}"
            ) from None

    def manifest(self, key: str) -> Manifest:
        data = self.backend.get_bytes(f"{SNAPSHOTS}/{key}/manifest.json")
        try:
            return msgspec.json.decode(data, type=Manifest)
        except msgspec.DecodeError as error:
            raise SnapshotCorrupt(f"snapshot {key}: manifest does not decode: {error}") from None

    def manifests(self) -> list[Manifest]:
        """Every snapshot with a readable manifest, oldest first."""
        keys = [
            key.split("/")[1]
            for key in self.backend.list_keys(f"{SNAPSHOTS}/")
            if key.endswith("/manifest.json") and key.count("/") == 2
        ]
        found = []
        for key in keys:
            try:
                found.append(self.manifest(key))
            except (SnapshotMissing, SnapshotCorrupt):
                continue  # being deleted, or never completed: not a snapshot
        return sorted(found, key=lambda manifest: (manifest.position, manifest.key))

    def newest_at_or_below(self, position: int | None) -> Manifest:
        """The snapshot to restore from: the pointer's, or the newest at or below ``position``."""
        if position is None:
            pointer, _ = self.pointer()
            if pointer is None:
                raise NoSnapshot(f"{self.url} has no published snapshot (no latest.json)")
            return self.manifest(pointer.key)
        candidates = [m for m in self.manifests() if m.position <= position]
        if not candidates:
            raise NoSnapshot(f"{self.url} has no snapshot at or below position {position}")
        return candidates[-1]

    def download(self, key: str, target: Path) -> Manifest:
        """Fetch a snapshot into ``target`` (new or empty), every file checked.

        The hashes just checked seed the directory's hash cache, so the first publish after a
        restore hashes only the files changed since (see :func:`file_entries`).
        """
        if target.exists() and any(target.iterdir()):
            raise FileExistsError(f"{target} is not empty")
        manifest = self.manifest(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        settled = time.time_ns() - SETTLED_NS
        try:
            verified: dict[str, CachedHash] = {}
            with ThreadPoolExecutor(TRANSFER_THREADS) as pool:
                for entry, found in zip(
                    manifest.files,
                    pool.map(
                        lambda entry: self._fetch(key, entry, scratch, settled), manifest.files
                    ),
                    strict=True,
                ):
                    if isinstance(found, str):
                        raise SnapshotCorrupt(found)
                    verified[entry.path] = found
            write_hash_cache(scratch, verified)
            if target.exists():
                target.rmdir()
            scratch.rename(target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return manifest

    def _fetch(self, key: str, entry: FileEntry, scratch: Path, settled: int) -> str | CachedHash:
        """Download one file and check it: its hash cache entry, or what is wrong."""
        destination = scratch / entry.path
        if is_hash_cache(entry.path) or not destination.resolve().is_relative_to(scratch.resolve()):
            return f"snapshot {key}: unsafe path {entry.path!r} in its manifest"
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.backend.get_file(f"{SNAPSHOTS}/{key}/files/{entry.path}", destination)
        except SnapshotMissing:
            return f"snapshot {key}: {entry.path} is missing (partial or being deleted)"
        size = destination.stat().st_size
        if size != entry.size or sha256_file(destination) != entry.sha256:
            return f"snapshot {key}: {entry.path} does not match its manifest (corrupt)"
        return remember_verified(destination, entry.sha256, settled)

    # -- writing -------------------------------------------------------------------------

    def upload(self, directory: Path, manifest: Manifest) -> int:
        """Upload every file listed in the manifest, then the manifest itself.

        A file identical to the parent snapshot's (same path and sha256: Chroma's vector
        files after a metadata-only catch-up) is copied inside the store instead of sent
        again. Returns the bytes actually sent.
        """
        prefix = f"{SNAPSHOTS}/{manifest.key}"
        inherited = self._parent_files(manifest)

        def send(entry: FileEntry) -> int:
            target = f"{prefix}/files/{entry.path}"
            if inherited.get(entry.path) == entry.sha256 and manifest.parent is not None:
                try:
                    self.backend.copy(f"{SNAPSHOTS}/{manifest.parent}/files/{entry.path}", target)
                    return 0
                except SnapshotMissing:
                    pass  # the parent was deleted meanwhile: send the file itself
            self.backend.put_file(target, directory / entry.path)
            faults.point("publish.mid_upload")
            return entry.size

        with ThreadPoolExecutor(TRANSFER_THREADS) as pool:
            sent = sum(pool.map(send, manifest.files))
        self.backend.put_bytes(f"{prefix}/manifest.json", msgspec.json.encode(manifest))
        return sent

    def _parent_files(self, manifest: Manifest) -> dict[str, str]:
        if manifest.parent is None:
            return {}
        try:
            parent = self.manifest(manifest.parent)
        except (SnapshotMissing, SnapshotCorrupt):
            return {}
        return {entry.path: entry.sha256 for entry in parent.files}

    def publish(
        self,
        directory: Path,
        manifest: Manifest,
        *,
        expected: str | None,
        before_swap: Callable[[], None] = lambda: None,
    ) -> Pointer:
        """Upload a snapshot and move the pointer to it, if nobody moved it since ``expected``.

        ``before_swap`` runs just before the swap (the lease check); if it raises, nothing moves.
        """
        current, version = self.pointer()
        if version != expected:
            raise PointerConflict(f"{self.url}/latest.json changed since it was read")
        if current is not None and current.position >= manifest.position:
            raise PointerConflict(
                f"{self.url} already holds position {current.position}, "
                f"not behind {manifest.position}"
            )
        if current is not None and current.token > manifest.token:
            raise FencedOut(
                f"{self.url} was published by lease token {current.token}; "
                f"this publisher holds the older token {manifest.token}"
            )
        self.upload(directory, manifest)
        pointer = Pointer(
            key=manifest.key,
            position=manifest.position,
            digest=manifest.digest,
            token=manifest.token,
        )
        before_swap()
        faults.point("publish.before_pointer")
        self.backend.write_pointer(msgspec.json.encode(pointer), expected)
        faults.point("publish.after_pointer")
        return pointer

    def retain(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` snapshots, never the one the pointer names."""
        pointer, _ = self.pointer()
        manifests = self.manifests()
        kept = {manifest.key for manifest in manifests[-keep:]} if keep > 0 else set()
        if pointer is not None:
            kept.add(pointer.key)
        deleted = []
        for manifest in manifests:
            if manifest.key in kept:
                continue
            prefix = f"{SNAPSHOTS}/{manifest.key}"
            self.backend.delete([f"{prefix}/manifest.json"])  # first: no longer listed
            self.backend.delete(self.backend.list_keys(f"{prefix}/"))
            deleted.append(manifest.key)
        return deleted


def open_snapshot_store(url: str) -> SnapshotStore:
    """A snapshot store from a local path or an ``s3://bucket/prefix`` URL."""
    if url.startswith("s3://"):
        from receipt_chroma.snapshots.s3 import S3SnapshotBackend

        return SnapshotStore(S3SnapshotBackend(url))
    from receipt_chroma.snapshots.local import LocalSnapshotBackend

    return SnapshotStore(LocalSnapshotBackend(Path(url)))
