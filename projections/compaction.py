"""Compaction: lease → restore the latest snapshot → catch up with the log → publish → release.

The local snapshot directory is kept between runs and reused when it is at or past the
published snapshot, so a warm compactor downloads nothing. Nothing new means nothing
published. Publishing is fenced twice: the lease must still be ours (with the token we
acquired) just before the pointer swap, and the swap itself is conditional on the pointer we
started from; a compactor that loses the swap starts again from the new pointer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from projections.errors import CompactionGaveUp
from projections.publish import publish_directory
from projections.restore import ensure_local_copy
from projections.runner import catch_up
from projections.snapshot_dir import open_snapshot
from receipt_chroma.deltas import DeltaSource
from receipt_chroma.lease import LeaseKeeper, Leases
from receipt_chroma.snapshots import PointerConflict, SnapshotStore
from receipt_events.store import EventStore

DEFAULT_LEASE_TTL = 300.0
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


def lease_name(snapshots: SnapshotStore) -> str:
    return f"compaction:{snapshots.url}"


@dataclass(frozen=True, kw_only=True)
class CompactOptions:
    """How one compaction runs; the defaults catch up to the head once and publish at the end.

    ``to``: stop at this position instead of the head. ``lease_ttl``: seconds the lease lasts
    between heartbeats. ``keep``: snapshots to retain after a publish. ``max_attempts``: lost
    pointer swaps before giving up. ``policy``: when to publish while catching up. ``follow``:
    keep going (still under the lease) while the head moves, so a wake-up that arrives during a
    run is never lost. ``stop_at``: a ``clock()`` time (a Lambda's deadline less a margin)
    after which the run ends early: after the step in progress, what was applied is published
    and the lease released, and the next wake-up goes on from there (a run that follows a busy
    head, or catches up a long tail, must not be killed by its timeout with its work
    unpublished and the lease held until it expires).
    """

    to: int | None = None
    lease_ttl: float = DEFAULT_LEASE_TTL
    keep: int = DEFAULT_KEEP
    max_attempts: int = MAX_ATTEMPTS
    policy: PublishPolicy = field(default_factory=PublishPolicy)
    follow: bool = False
    stop_at: float | None = None
    clock: Callable[[], float] = time.monotonic


def compact(
    store: EventStore,
    snapshots: SnapshotStore,
    leases: Leases,
    deltas: DeltaSource,
    snapshot_dir: Path,
    options: CompactOptions = CompactOptions(),
) -> CompactResult:
    """Bring the store's latest snapshot up to ``options.to`` (default: the head) and publish it.

    Raises :class:`LeaseBusy` when another compactor holds the lease,
    :class:`CompactionGaveUp` after ``options.max_attempts`` lost pointer swaps.
    """
    lease = leases.acquire(lease_name(snapshots), ttl=options.lease_ttl)
    try:
        with LeaseKeeper(lease) as keeper:
            return _compact(store, snapshots, deltas, snapshot_dir, keeper, lease.token, options)
    finally:
        lease.release()


def _compact(
    store: EventStore,
    snapshots: SnapshotStore,
    deltas: DeltaSource,
    snapshot_dir: Path,
    keeper: LeaseKeeper,
    token: int,
    options: CompactOptions,
) -> CompactResult:
    to, policy, clock, stop_at = options.to, options.policy, options.clock, options.stop_at
    pointer, version = snapshots.pointer()
    reused = ensure_local_copy(snapshots, pointer, snapshot_dir, store)
    applied = attempts = publishes = 0
    last_publish = clock()
    while True:
        target = store.head() if to is None else to
        with open_snapshot(snapshot_dir) as snapshot:
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
                    snapshot_dir,
                    snapshots,
                    token=token,
                    parent=pointer.key if pointer else None,
                    expected=version,
                    before_swap=keeper.check,
                )
            except PointerConflict:
                attempts += 1
                if attempts >= options.max_attempts:
                    raise CompactionGaveUp(
                        f"{snapshots.url}: lost the pointer swap {attempts} times; "
                        "another publisher is active"
                    ) from None
                pointer, version = snapshots.pointer()  # someone published: start from theirs
                reused = ensure_local_copy(snapshots, pointer, snapshot_dir, store) and reused
                continue
            pointer, version = snapshots.pointer()
            publishes += 1
            last_publish = clock()
        if out_of_time or (
            caught_up and not (options.follow and to is None and store.head() > position)
        ):
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
        deleted=snapshots.retain(options.keep) if publishes else [],
    )
