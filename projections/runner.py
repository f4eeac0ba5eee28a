"""Catch a snapshot directory up with the log, or build one from zero or from a snapshot.

A snapshot directory is a pure function of the log up to its checkpoint: catching up reads
the log after the checkpoint in batches and applies each (see ``projections.chroma``);
rebuilding does the same into a fresh directory, optionally starting from a copy of an
existing snapshot. A snapshot is tied to the log it was built from: the event at its
checkpoint must be the one it recorded, or it refuses to go on.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import msgspec

from projections.chroma import BatchResult, WriteHook, apply_batch
from projections.errors import ProjectionConflict, ProjectionStopped, StateError
from projections.fold import DeltaPolicy, receipt_tombstone
from projections.snapshot_dir import SnapshotDirectory, open_snapshot
from projections.state import STATE_FILE
from receipt_chroma.client import CollectionName
from receipt_chroma.deltas import DeltaSource
from receipt_chroma.digest import Digest, digest_directory
from receipt_chroma.directory_lock import LOCK_FILE
from receipt_chroma.prefetch import PrefetchingDeltaSource
from receipt_events.events import (
    EmbeddingsAdopted,
    EmbeddingsPublished,
    LineRemoved,
    ReceiptRemoved,
    WordRemoved,
)
from receipt_events.store import EventStore, Recorded

CATCH_UP_BATCH = 1000  # events per batch when following the log
REBUILD_BATCH = 100_000  # one large batch when replaying: only final states are written

Progress = Callable[[int, int], None]  # (position reached, target position)


class CatchUpResult(msgspec.Struct, kw_only=True):
    from_position: int
    to_position: int
    applied: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    batches: int = 0
    held_deltas: int = 0

    @property
    def records_written(self) -> int:
        return self.added + self.updated + self.deleted

    def add(self, batch: BatchResult) -> None:
        self.to_position = batch.last
        self.applied += batch.applied
        self.added += batch.added
        self.updated += batch.updated
        self.deleted += batch.deleted
        self.batches += 1
        self.held_deltas += batch.held_deltas


def catch_up(
    store: EventStore,
    snapshot: SnapshotDirectory,
    deltas: DeltaSource,
    *,
    to: int | None = None,
    batch_size: int = CATCH_UP_BATCH,
    policy: DeltaPolicy = "stop",
    known_digests: dict[tuple[str, str], str] | None = None,
    progress: Progress | None = None,
    on_write: WriteHook | None = None,
) -> CatchUpResult:
    """Apply the log after the snapshot's checkpoint, up to ``to`` (default: the head now).

    Deltas are read ahead on threads (this batch's and the next one's) while batches are
    folded and written.
    """
    with PrefetchingDeltaSource(deltas) as reader:
        return _catch_up(
            store,
            snapshot,
            reader,
            to=to,
            batch_size=batch_size,
            policy=policy,
            known_digests=known_digests,
            progress=progress,
            on_write=on_write,
        )


def _catch_up(
    store: EventStore,
    snapshot: SnapshotDirectory,
    deltas: PrefetchingDeltaSource,
    *,
    to: int | None,
    batch_size: int,
    policy: DeltaPolicy,
    known_digests: dict[tuple[str, str], str] | None,
    progress: Progress | None,
    on_write: WriteHook | None,
) -> CatchUpResult:
    state = snapshot.state
    start = state.checkpoint
    state.require_digest_v2()
    check_same_log(store, snapshot)
    recover_tombstones(store, snapshot)
    target = store.head() if to is None else to
    if target < start:
        raise ProjectionConflict(
            f"{snapshot.path} is already at position {start}, past {target}; "
            "rebuild to reach an earlier position"
        )
    result = CatchUpResult(from_position=start, to_position=start)
    read_ahead: list[Recorded] | None = None
    while True:
        inflight = state.inflight_to
        if inflight is not None:  # a crash interrupted this batch: redo exactly it
            events = list(store.iter_events(after=state.checkpoint, to=inflight))
        elif read_ahead is not None:
            events, read_ahead = read_ahead, None
        else:
            events = store.read(after=state.checkpoint, to=target, limit=batch_size)
        if not events:
            return result
        deltas.prefetch(delta_requests(events))  # this batch's deltas, then the next one's
        read_ahead = store.read(after=events[-1].position, to=target, limit=batch_size)
        deltas.prefetch(delta_requests(read_ahead))
        batch, problem = apply_batch(
            snapshot,
            events,
            deltas.read,
            policy=policy,
            known_digests=known_digests,
            redo=inflight is not None,
            on_write=on_write,
        )
        if batch is not None:
            result.add(batch)
            if progress is not None:
                progress(batch.last, target)
        if problem is not None:
            raise ProjectionStopped(problem, result)


def recover_tombstones(store: EventStore, snapshot: SnapshotDirectory) -> None:
    """Give a state file from before 0.3 the tombstones of the removals it applied (read back
    from the log), so that adopted vectors cannot bring those records back."""
    missing_to = snapshot.state.tombstones_missing_to
    if missing_to is None:
        return
    removed: list[tuple[str, str, str, int]] = []
    for recorded in store.iter_events(to=missing_to):
        event = recorded.event
        if isinstance(event, ReceiptRemoved):
            collection, record_id = receipt_tombstone(event.image_id, event.receipt_id)
        elif isinstance(event, LineRemoved):
            collection, record_id = "lines", event.line.chroma_id
        elif isinstance(event, WordRemoved):
            collection, record_id = "words", event.word.chroma_id
        else:
            continue
        removed.append((collection, record_id, event.image_id, event.receipt_id))
    snapshot.state.recover_tombstones(removed)


def delta_requests(events: list[Recorded]) -> list[tuple[str, CollectionName]]:
    """The deltas a batch of events will read, in order."""
    requests: list[tuple[str, CollectionName]] = []
    for recorded in events:
        event = recorded.event
        if isinstance(event, EmbeddingsPublished):
            requests.append((event.lines_delta, "lines"))
            requests.append((event.words_delta, "words"))
        elif isinstance(event, EmbeddingsAdopted):
            requests.extend((location, name) for name, location in _baseline_deltas(event))
    return requests


def _baseline_deltas(event: EmbeddingsAdopted) -> list[tuple[CollectionName, str]]:
    found: list[tuple[CollectionName, str]] = []
    if event.lines_delta is not None:
        found.append(("lines", event.lines_delta))
    if event.words_delta is not None:
        found.append(("words", event.words_delta))
    return found


def check_same_log(store: EventStore, snapshot: SnapshotDirectory) -> None:
    """Refuse a snapshot whose checkpoint event is not the store's event at that position."""
    state = snapshot.state
    if state.checkpoint == 0:
        return
    found = store.read(after=state.checkpoint - 1, to=state.checkpoint, limit=1)
    if not found or found[0].event.originator_id != state.checkpoint_event:
        seen = found[0].event.originator_id if found else "no event"
        raise ProjectionConflict(
            f"{snapshot.path} was built from another log: at its checkpoint {state.checkpoint} "
            f"it recorded {state.checkpoint_event}, this store has {seen}"
        )


class RebuildResult(msgspec.Struct, kw_only=True):
    position: int
    digest: str
    counts: dict[str, int]
    applied: int
    from_snapshot: int | None = None


def rebuild(
    store: EventStore,
    out: Path,
    deltas: DeltaSource,
    *,
    to: int | None = None,
    from_snapshot: Path | None = None,
    batch_size: int = REBUILD_BATCH,
    policy: DeltaPolicy = "stop",
    known_digests: dict[tuple[str, str], str] | None = None,
    progress: Progress | None = None,
    with_digest: bool = True,
) -> RebuildResult:
    """Build a snapshot directory at ``out`` from zero, or from a copy of ``from_snapshot``."""
    if out.exists() and not out.is_dir():
        raise ProjectionConflict(
            f"{out} is not a directory; rebuild writes a new snapshot directory"
        )
    if out.exists() and any(out.iterdir()):
        raise ProjectionConflict(f"{out} is not empty; rebuild writes a new snapshot directory")
    if from_snapshot is not None:
        if not (from_snapshot / STATE_FILE).is_file():
            raise ProjectionConflict(f"{from_snapshot} is not a snapshot directory")
        shutil.copytree(from_snapshot, out, ignore=shutil.ignore_patterns(LOCK_FILE))
    with open_snapshot(out, create=True) as snapshot:
        base = snapshot.state.checkpoint if from_snapshot is not None else None
        result = catch_up(
            store,
            snapshot,
            deltas,
            to=to,
            batch_size=batch_size,
            policy=policy,
            known_digests=known_digests,
            progress=progress,
        )
        position = snapshot.state.checkpoint
        digest = snapshot.state.digest() if with_digest else None
    return RebuildResult(
        position=position,
        digest=digest.digest if digest else "",
        counts=digest.counts if digest else {},
        applied=result.applied,
        from_snapshot=base,
    )


def snapshot_digest(path: Path) -> Digest:
    """The canonical digest of a snapshot directory at its checkpoint."""
    with open_snapshot(path, create=False) as snapshot:
        if snapshot.state.inflight_to is not None:
            raise StateError(
                f"{path} has a batch in flight (a writer stopped mid-batch); "
                "run `receipt-events project` on it to finish the batch first"
            )
        return digest_directory(snapshot.chroma, snapshot.state.checkpoint)
