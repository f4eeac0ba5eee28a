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
from pathlib import Path

import msgspec

MANIFEST_VERSION = 1


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
    """Every file under a directory with its sha256, sorted by path."""
    entries = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative in exclude or path.name in exclude:
            continue
        entries.append(FileEntry(relative, sha256_file(path), path.stat().st_size))
    return entries


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()
