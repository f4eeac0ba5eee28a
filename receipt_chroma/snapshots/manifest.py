"""What a published snapshot is: its manifest, and the ``latest`` pointer that names one.

A snapshot is stored under its own key, named by its log position, content digest and the
fencing token of the publisher (``00000000000000012345-3f2a9c01b7d4e6a8-t7``). The token is
what keeps two publishers apart: two builds of the same position have the same content but
not the same file bytes, and a fenced-out publisher still uploading must never write into the
key a newer publisher's pointer names. Its manifest lists every file with its sha256 and size,
so a reader can refuse a corrupt or partial snapshot. The pointer names the current snapshot
and carries the fencing token of the lease holder that published it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

import msgspec

from receipt_chroma.provenance import Provenance

MANIFEST_VERSION = 1
HASH_CACHE = ".file-hashes.json"  # beside a snapshot directory's files; never in a manifest
HASH_CACHE_VERSION = 1
# A hash is remembered only for a file last modified at least this long before it was looked
# at: a write within the same timestamp tick as the look (coarse clocks, 1 s or 2 s file
# systems) could leave its stat unchanged, but not a write this much later.
SETTLED_NS = 2_000_000_000


class FileEntry(msgspec.Struct, frozen=True):
    path: str  # relative, POSIX separators
    sha256: str
    size: int


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    manifest_version: int = MANIFEST_VERSION
    key: str
    position: int
    projection_version: int
    digest: str  # the canonical content digest ("sha256:<hex>"), not a hash of the files
    digest_version: int = 1  # of ``digest``; manifests written before version 2 name none
    counts: dict[str, int]
    dimensions: dict[str, int]
    # the model that made each collection's vectors (receipt_chroma/provenance.py); absent in
    # manifests from before provenance was kept, and for a collection no delta has reached
    provenance: dict[str, Provenance] = {}
    parent: str | None  # the snapshot the pointer named when this one was published
    token: int  # fencing token of the publisher's lease
    files: list[FileEntry]


class Pointer(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    position: int
    digest: str
    token: int


def snapshot_key(position: int, digest: str, token: int) -> str:
    return f"{position:020d}-{digest.removeprefix('sha256:')[:16]}-t{token}"


def file_entries(directory: Path, *, exclude: frozenset[str] = frozenset()) -> list[FileEntry]:
    """Every file under a directory with its sha256, sorted by path.

    A file whose stat (device, inode, size, mtime and ctime in ns) is the one remembered in the
    directory's hash cache (:data:`HASH_CACHE`, never listed itself) is not read again: a
    publish hashes only the files changed since the last publish or restore, not the snapshot.
    The cache is rewritten with what was found; ``exclude`` names paths or file names to skip.
    """
    remembered = read_hash_cache(directory)
    found: dict[str, CachedHash] = {}
    entries = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if is_hash_cache(relative) or relative in exclude or path.name in exclude:
            continue
        looked = time.time_ns()
        stat = path.stat()
        cached = remembered.get(relative)
        if cached is not None and cached.matches(stat):
            sha256 = cached.sha256
            found[relative] = cached
        else:
            sha256 = sha256_file(path)
            fresh = CachedHash.of(stat, sha256)
            if fresh.matches(path.stat()) and fresh.settled(looked):
                found[relative] = fresh  # unchanged while read, and not modified just before
        entries.append(FileEntry(relative, sha256, stat.st_size))
    if found != remembered:
        write_hash_cache(directory, found)
    return entries


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


# -- the hash cache ------------------------------------------------------------------------------


class CachedHash(msgspec.Struct, frozen=True, array_like=True):
    """A file's sha256 and the stat it had when it was read."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str

    @classmethod
    def of(cls, stat: os.stat_result, sha256: str) -> CachedHash:
        return cls(
            stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, sha256
        )

    def matches(self, stat: os.stat_result) -> bool:
        return (
            self.device == stat.st_dev
            and self.inode == stat.st_ino
            and self.size == stat.st_size
            and self.mtime_ns == stat.st_mtime_ns
            and self.ctime_ns == stat.st_ctime_ns
        )

    def settled(self, looked_ns: int) -> bool:
        """Last modified long enough before it was looked at (``looked_ns``, before its stat
        and its read) that any write since has a later mtime."""
        return self.mtime_ns <= looked_ns - SETTLED_NS


class _HashCacheFile(msgspec.Struct):
    version: int
    files: dict[str, CachedHash]


def is_hash_cache(relative: str) -> bool:
    """The hash cache or one of its temporary files (relative POSIX path)."""
    return relative == HASH_CACHE or (
        relative.startswith(f"{HASH_CACHE}.") and relative.endswith(".tmp")
    )


def read_hash_cache(directory: Path) -> dict[str, CachedHash]:
    """What the directory's hash cache remembers; nothing if it is missing or unreadable."""
    try:
        data = (directory / HASH_CACHE).read_bytes()
        cache = msgspec.json.decode(data, type=_HashCacheFile)
    except (OSError, msgspec.DecodeError):
        return {}
    return cache.files if cache.version == HASH_CACHE_VERSION else {}


def write_hash_cache(directory: Path, files: dict[str, CachedHash]) -> None:
    """Replace the directory's hash cache (atomically); a cache that cannot be written is
    only a cache, so failing to write it is not an error."""
    data = msgspec.json.encode(_HashCacheFile(HASH_CACHE_VERSION, dict(sorted(files.items()))))
    try:
        descriptor, name = tempfile.mkstemp(dir=directory, prefix=f"{HASH_CACHE}.", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(name, directory / HASH_CACHE)
    except OSError:
        Path(name).unlink(missing_ok=True)
        return
    for leftover in directory.glob(f"{HASH_CACHE}.*.tmp"):  # from a writer killed mid-write
        leftover.unlink(missing_ok=True)


def remember_verified(path: Path, sha256: str, mtime_ns: int) -> CachedHash:
    """The cache entry of a file just checked against ``sha256`` (a download).

    Its mtime is set back to ``mtime_ns``, at least :data:`SETTLED_NS` before now, so that
    the entry is settled at once: any later write sets the mtime to the present, which differs.
    """
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, mtime_ns))
    return CachedHash.of(path.stat(), sha256)
