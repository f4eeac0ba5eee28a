"""Checks against the log: ``verify`` (rebuild elsewhere, compare by content) and ``diff``.

Verify compares three digests of a snapshot: of a full dump of its Chroma collections, the one
its state kept as records were written (what a publish writes in the manifest), and of a
rebuild of the log up to its checkpoint in a scratch directory. On a mismatch it lists each
differing record and what differs (document, embedding, missing, the metadata keys, or the
hash the state kept). The rebuild is told the delta digests the snapshot recorded, so a delta
changed since it was merged is named as such. Diff is a dry run: what
applying the tail of the log would add, update and delete, with nothing written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import msgspec

from projections.chroma import fold_events
from projections.errors import StateError
from projections.fold import DeltaPolicy
from projections.runner import check_same_log, rebuild
from projections.snapshot_dir import open_snapshot
from receipt_chroma.client import COLLECTIONS, open_chroma
from receipt_chroma.deltas import DeltaSource
from receipt_chroma.digest import digest_records, dump, hash_of
from receipt_chroma.records import ChromaRecord
from receipt_events.store import EventStore

MAX_LISTED_DIFFERENCES = 100


class Difference(msgspec.Struct, frozen=True):
    collection: str
    id: str
    # "document", "embedding", "metadata.<key>", "missing from ...", or "hash kept in the state"
    fields: list[str]


class VerifyResult(msgspec.Struct, kw_only=True):
    ok: bool
    position: int
    digest: str  # of a full dump of the snapshot's collections
    manifest_digest: str  # kept by the state as records were written; what publish writes
    rebuilt_digest: str
    counts: dict[str, int]
    rebuilt_counts: dict[str, int]
    differences: list[Difference]
    differing_records: int


def verify(
    store: EventStore, path: Path, deltas: DeltaSource, *, limit: int = MAX_LISTED_DIFFERENCES
) -> VerifyResult:
    """Rebuild to the snapshot's checkpoint in a scratch directory and compare contents."""
    with open_snapshot(path, create=False) as snapshot:
        state = snapshot.state
        if state.inflight_to is not None:
            raise StateError(
                f"{path} has a batch in flight; run `receipt-events project` on it first"
            )
        state.require_digest_v2()
        check_same_log(store, snapshot)
        position = state.checkpoint
        known = state.known_delta_digests()
        kept = state.digest()
        kept_hashes: dict[str, dict[str, bytes | None]] = {
            name: state.record_hashes(name) for name in COLLECTIONS
        }
        ours = dump(snapshot.chroma)
    with tempfile.TemporaryDirectory(prefix="receipt-events-verify-") as scratch:
        rebuilt_path = Path(scratch) / "rebuilt"
        rebuild(store, rebuilt_path, deltas, to=position, known_digests=known)
        with open_chroma(rebuilt_path / "chroma", create=False) as chroma:
            theirs = dump(chroma)
    digest = digest_records(ours, position)
    rebuilt = digest_records(theirs, position)
    differences = compare(ours, theirs)
    if kept != digest:  # the state's hashes disagree with Chroma: name the records not
        listed = {(d.collection, d.id) for d in differences}  # already differing from a rebuild
        differences += [
            d for d in compare_kept(ours, kept_hashes) if (d.collection, d.id) not in listed
        ]
        differences.sort(key=lambda d: (d.collection, d.id))
    return VerifyResult(
        ok=digest.digest == rebuilt.digest == kept.digest,
        position=position,
        digest=digest.digest,
        manifest_digest=kept.digest,
        rebuilt_digest=rebuilt.digest,
        counts=digest.counts,
        rebuilt_counts=rebuilt.counts,
        differences=differences[:limit],
        differing_records=len(differences),
    )


def compare(
    ours: dict[str, list[ChromaRecord]], theirs: dict[str, list[ChromaRecord]]
) -> list[Difference]:
    """Per-record differences between a snapshot's dump and a rebuild's, sorted by id."""
    differences: list[Difference] = []
    for collection in sorted(set(ours) | set(theirs)):
        mine = {record.id: record for record in ours.get(collection, [])}
        rebuilt = {record.id: record for record in theirs.get(collection, [])}
        for record_id in sorted(set(mine) | set(rebuilt)):
            a, b = mine.get(record_id), rebuilt.get(record_id)
            if a is None:
                fields = ["missing from the snapshot"]
            elif b is None:
                fields = ["missing from the rebuild"]
            else:
                fields = _differing_fields(a, b)
            if fields:
                differences.append(Difference(collection, record_id, fields))
    return differences


def compare_kept(
    ours: dict[str, list[ChromaRecord]], kept: dict[str, dict[str, bytes | None]]
) -> list[Difference]:
    """Records whose hash the state kept is not the hash of what Chroma holds."""
    differences: list[Difference] = []
    for collection in COLLECTIONS:
        hashes = dict(kept.get(collection, {}))
        for record in ours.get(collection, []):
            if record.id not in hashes:
                differences.append(Difference(collection, record.id, ["missing from the state"]))
            elif hashes.pop(record.id) != hash_of(record):
                differences.append(Difference(collection, record.id, ["hash kept in the state"]))
        differences += [
            Difference(collection, record_id, ["missing from the snapshot's Chroma"])
            for record_id in sorted(hashes)
        ]
    return differences


def _differing_fields(a: ChromaRecord, b: ChromaRecord) -> list[str]:
    fields = []
    if a.document != b.document:
        fields.append("document")
    if a.embedding != b.embedding:
        fields.append("embedding")
    for key in sorted(set(a.metadata) | set(b.metadata)):
        if a.metadata.get(key) != b.metadata.get(key):
            fields.append(f"metadata.{key}")
    return fields


class DiffRecord(msgspec.Struct, frozen=True):
    collection: str
    id: str
    operation: Literal["add", "update", "delete"]


class DiffResult(msgspec.Struct, kw_only=True):
    from_position: int
    to_position: int
    events: int
    add: int
    update: int
    delete: int
    records: list[DiffRecord]
    stopped: str | None = None  # a delta problem that would stop the projection


def diff(
    store: EventStore,
    path: Path,
    deltas: DeltaSource,
    *,
    to: int | None = None,
    policy: DeltaPolicy = "stop",
) -> DiffResult:
    """What applying the log after the snapshot's checkpoint would change; writes nothing."""
    with open_snapshot(path, create=False) as snapshot:
        if snapshot.state.inflight_to is not None:
            raise StateError(
                f"{path} has a batch in flight; run `receipt-events project` on it first"
            )
        check_same_log(store, snapshot)
        start = snapshot.state.checkpoint
        events = list(store.iter_events(after=start, to=store.head() if to is None else to))
        fold, problem = fold_events(snapshot, events, deltas.read, policy=policy)
        plan = fold.plan()
    records: list[DiffRecord] = []
    for collection, collection_plan in plan.collections.items():
        added = set(collection_plan.added_ids)
        records += [
            DiffRecord(collection, item.record.id, "add" if item.record.id in added else "update")
            for item in collection_plan.upserts
        ]
        records += [DiffRecord(collection, item.id, "update") for item in collection_plan.updates]
        records += [
            DiffRecord(collection, record_id, "delete") for record_id in collection_plan.deletes
        ]
    records.sort(key=lambda record: (record.collection, record.id))
    return DiffResult(
        from_position=start,
        to_position=fold.last.position if fold.last else start,
        events=fold.applied,
        add=sum(r.operation == "add" for r in records),
        update=sum(r.operation == "update" for r in records),
        delete=sum(r.operation == "delete" for r in records),
        records=records,
        stopped=str(problem) if problem else None,
    )
