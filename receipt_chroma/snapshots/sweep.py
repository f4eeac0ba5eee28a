"""Sweeping a snapshot store: deleting what interrupted publishes left behind.

A publish uploads every file of its snapshot under ``snapshots/<key>/files/``, then the
manifest ``snapshots/<key>/manifest.json``, then moves the pointer. A publisher killed before
the manifest leaves files under a key no manifest names (an *orphan*): never read (readers only
go through the pointer or a readable manifest) but paid for. So do a retention stopped between
deleting a manifest and deleting its files, and, on S3, multipart uploads that were never
completed (invisible to a listing of objects, billed all the same).

:func:`sweep_orphans` finds those keys and, with ``apply=True``, deletes them. It never
touches a key that has a manifest (readable or not: a published snapshot, or a damaged one to
look at), nor the key the pointer names, nor a key that is not named like a snapshot. A
publish in progress is an orphan too until its manifest lands, so a key is only swept when its
newest file is older than ``older_than`` (default an hour: far longer than a publish takes,
and than a lease lasts, so a publisher paused that long can no longer move the pointer), and
each key is checked again (no manifest, not the pointer's, nothing new written) just before
it is deleted.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable

import msgspec

from receipt_chroma.snapshots.backend import SnapshotMissing, StoredObject
from receipt_chroma.snapshots.store import SNAPSHOTS, SnapshotStore

DEFAULT_OLDER_THAN = 3600.0
SNAPSHOT_KEY = re.compile(r"^[0-9]{20}-[0-9a-f]{16}-t[0-9]+$")  # as manifest.snapshot_key names
MANIFEST = "manifest.json"


class Orphan(msgspec.Struct, frozen=True):
    """A snapshot key holding files but no manifest."""

    key: str
    files: int  # objects (and incomplete uploads) under it
    bytes: int
    age_s: float  # since its newest file was written


class SweepResult(msgspec.Struct, kw_only=True):
    orphans: list[Orphan]  # old enough: deleted (``applied``) or to delete
    kept: list[Orphan]  # younger than ``older_than_s`` (maybe a publish in progress), or
    # found changed when checked again just before deleting it
    deleted: int  # files deleted (0 on a dry run)
    bytes: int  # the bytes of ``orphans``
    applied: bool
    older_than_s: float


def sweep_orphans(
    snapshots: SnapshotStore,
    *,
    apply: bool = False,
    older_than: float = DEFAULT_OLDER_THAN,
    now: float | None = None,
) -> SweepResult:
    """Find (and with ``apply``, delete) the orphaned snapshot keys of a store.

    Raises :class:`SnapshotCorrupt` if the pointer cannot be read: without knowing which key
    it names, nothing is swept.
    """
    if older_than < 0:
        raise ValueError(f"older_than must be 0 or more seconds, not {older_than}")
    clock: Callable[[], float] = time.time if now is None else (lambda: now)
    pointer, _ = snapshots.pointer()
    protected = {pointer.key} if pointer is not None else set()
    orphans: list[Orphan] = []
    kept: list[Orphan] = []
    for key, objects in _by_key(snapshots.backend.list_objects(f"{SNAPSHOTS}/")).items():
        if key in protected or not SNAPSHOT_KEY.match(key) or _has_manifest(key, objects):
            continue
        orphan = _orphan(key, objects, clock())
        (orphans if orphan.age_s >= older_than else kept).append(orphan)
    deleted = 0
    if apply:
        swept: list[Orphan] = []
        for orphan in orphans:
            count = _delete_if_still_orphaned(snapshots, orphan.key, older_than, clock)
            (swept if count else kept).append(orphan)  # kept: it changed since the listing
            deleted += count
        orphans = swept
    return SweepResult(
        orphans=orphans,
        kept=kept,
        deleted=deleted,
        bytes=sum(orphan.bytes for orphan in orphans),
        applied=apply,
        older_than_s=older_than,
    )


def _by_key(objects: list[StoredObject]) -> dict[str, list[StoredObject]]:
    """``snapshots/<key>/...`` grouped by key (anything else under ``snapshots/`` is ignored)."""
    grouped: dict[str, list[StoredObject]] = defaultdict(list)
    for stored in objects:
        parts = stored.key.split("/")
        if len(parts) >= 3 and parts[0] == SNAPSHOTS and parts[1]:
            grouped[parts[1]].append(stored)
    return dict(sorted(grouped.items()))


def _has_manifest(key: str, objects: list[StoredObject]) -> bool:
    name = f"{SNAPSHOTS}/{key}/{MANIFEST}"
    return any(stored.key == name and stored.upload is None for stored in objects)


def _orphan(key: str, objects: list[StoredObject], now: float) -> Orphan:
    newest = max(stored.modified for stored in objects)
    return Orphan(
        key=key,
        files=len(objects),
        bytes=sum(stored.size for stored in objects),
        age_s=round(max(0.0, now - newest), 3),
    )


def _delete_if_still_orphaned(
    snapshots: SnapshotStore, key: str, older_than: float, clock: Callable[[], float]
) -> int:
    """Delete a key's files after checking once more that it is an old orphan; the count."""
    backend = snapshots.backend
    try:
        backend.get_bytes(f"{SNAPSHOTS}/{key}/{MANIFEST}")
        return 0  # its manifest landed since the listing: a publish finished
    except SnapshotMissing:
        pass
    pointer, _ = snapshots.pointer()
    if pointer is not None and pointer.key == key:
        return 0
    objects = backend.list_objects(f"{SNAPSHOTS}/{key}/")
    if not objects or _has_manifest(key, objects):
        return 0
    if clock() - max(stored.modified for stored in objects) < older_than:
        return 0  # written to since the listing: a publisher is still at it
    backend.remove(objects)
    return len(objects)
