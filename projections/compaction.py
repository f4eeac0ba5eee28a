"""Compaction: lock → restore the latest snapshot → catch up with the log → publish → release.

The local copy (the *cache*) is reused when it is at or past the published snapshot, so a
warm compactor downloads nothing. Nothing new means nothing published. Publishing is fenced
twice: the lock must still be ours (with the token we acquired) just before the pointer
swap, and the swap itself is conditional on the pointer we started from; a compactor that
loses the swap starts again from the new pointer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from projections.publish import publish_directory
from projections.restore import ensure_local_copy
from projections.runner import catch_up
from projections.snapshot_dir import open_snapshot
from receipt_chroma.deltas import DeltaSource
from receipt_chroma.lease import LeaseKeeper, Locks
from receipt_chroma.snapshots import PointerConflict, SnapshotStore
from receipt_events.store import EventStore

DEFAULT_LOCK_TTL = 300.0
DEFAULT_KEEP = 5
MAX_ATTEMPTS = 5


class PublishPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """When to publish while catching up; a publish always happens at the end if anything is new.

    ``every_events``: publish after this many positions past the last publish (and catch up in
    steps of that size); ``every_seconds``: publish when this long has passed since the last.
    """

    every_events: int | None = None
    every_seconds: float | None = None

    def due(self, positions: int, seconds: float) -> bool:
        return (self.every_events is not None and positions >= self.every_events) or (
            self.every_seconds is not None and seconds >= self.every_seconds
        )


class CompactResult(msgspec.Struct, kw_only=True):
    published: bool
    position: int
    applied: int
    key: str | None
    token: int
    attempts: int
    reused_cache: bool
    publishes: int = 0
    deleted: list[str] = msgspec.field(default_factory=list)


class CompactionGaveUp(Exception):
    """Every attempt lost the pointer swap to another publisher."""


def lock_name(snapshots: SnapshotStore) -> str:
    return f"compaction:{snapshots.url}"


def compact(
    store: EventStore,
    snapshots: SnapshotStore,
    locks: Locks,
    deltas: DeltaSource,
    cache: Path,
    *,
    to: int | None = None,
    ttl: float = DEFAULT_LOCK_TTL,
    keep: int = DEFAULT_KEEP,
    max_attempts: int = MAX_ATTEMPTS,
    policy: PublishPolicy = PublishPolicy(),
    follow: bool = False,
    stop_at: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> CompactResult:
    """Bring the store's latest snapshot up to ``to`` (default: the head) and publish it.

    With ``follow``, keep going (still under the lock) while the head moves, so a wake-up that
    arrives during a run is never lost. ``stop_at`` (a ``clock()`` time, e.g. a Lambda's
    deadline less a margin) ends the run early: after the step in progress, what was applied
    is published and the lock released, and the next wake-up goes on from there (a run that
    follows a busy head, or catches up a long tail, must not be killed by its timeout with
    its work unpublished and the lock held until it expires). Raises :class:`LockBusy` when
    another compactor holds the lock, :class:`CompactionGaveUp` after ``max_attempts`` lost
    pointer swaps.
    """
    lease = locks.acquire(lock_name(snapshots), ttl=ttl)
    try:
        with LeaseKeeper(lease) as keeper:
            return _compact(
                store,
                snapshots,
                deltas,
                cache,
                keeper,
                lease.token,
                to=to,
                keep=keep,
                max_attempts=max_attempts,
                policy=policy,
                follow=follow,
                stop_at=stop_at,
                clock=clock,
            )
    finally:
        lease.release()


def _compact(
    store: EventStore,
    snapshots: SnapshotStore,
    deltas: DeltaSource,
    cache: Path,
    keeper: LeaseKeeper,
    token: int,
    *,
    to: int | None,
    keep: int,
    max_attempts: int,
    policy: PublishPolicy,
    follow: bool,
    stop_at: float | None,
    clock: Callable[[], float],
) -> CompactResult:
    pointer, version = snapshots.pointer()
    reused = ensure_local_copy(snapshots, pointer, cache, store)
    applied = attempts = publishes = 0
    last_publish = clock()
    while True:
        target = store.head() if to is None else to
        with open_snapshot(cache) as snapshot:
            position = snapshot.state.checkpoint
            if position < target:
                step = target
                if policy.every_events is not None:
                    step = min(target, position + policy.every_events)
                applied += catch_up(store, snapshot, deltas, to=step).applied
                position = snapshot.state.checkpoint
        base = pointer.position if pointer else 0
        caught_up = position >= target
        out_of_time = stop_at is not None and clock() >= stop_at
        due = caught_up or out_of_time or policy.due(position - base, clock() - last_publish)
        if position > base and due:
            keeper.check()
            try:
                publish_directory(
                    cache,
                    snapshots,
                    token=token,
                    parent=pointer.key if pointer else None,
                    expected=version,
                    before_swap=keeper.check,
                )
            except PointerConflict:
                attempts += 1
                if attempts >= max_attempts:
                    raise CompactionGaveUp(
                        f"{snapshots.url}: lost the pointer swap {attempts} times; "
                        "another publisher is active"
                    ) from None
                pointer, version = snapshots.pointer()  # someone published: start from theirs
                reused = ensure_local_copy(snapshots, pointer, cache, store) and reused
                continue
            pointer, version = snapshots.pointer()
            publishes += 1
            last_publish = clock()
        if out_of_time or (caught_up and not (follow and to is None and store.head() > position)):
            break
    return CompactResult(
        published=publishes > 0,
        position=pointer.position if pointer else position,
        applied=applied,
        key=pointer.key if pointer else None,
        token=token,
        attempts=attempts + 1,
        reused_cache=reused,
        publishes=publishes,
        deleted=snapshots.retain(keep) if publishes else [],
    )
