"""Compaction: lock → restore latest (or reuse the cache) → catch up → publish → release."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from projections.compaction import CompactOptions, PublishPolicy, compact, lease_name
from projections.publish import publish_directory
from projections.restore import restore
from projections.runner import rebuild
from receipt_chroma.lease import Lease, LeaseBusy, LeaseLost, Leases
from receipt_chroma.snapshots import FencedOut, PointerConflict, SnapshotStore
from receipt_chroma.snapshots import store as store_module
from tests.projection.helpers import Log, digest, project
from tests.support.clock import FakeClock
from tests.support.snapshot_history import History
from tests.support.snapshot_site import Site


def run(log: Log, snapshots: SnapshotStore, locks: Any, cache: Path, **options: Any) -> Any:
    return compact(log.store, snapshots, locks, log.deltas, cache, CompactOptions(**options))


def test_the_first_compaction_builds_from_the_log_and_publishes(
    history: History, log: Log, snapshots: SnapshotStore, locks: Leases, tmp_path: Path
) -> None:
    result = run(log, snapshots, locks, tmp_path / "cache")
    head = log.store.head()
    assert (result.published, result.position, result.applied) == (True, head, head)
    assert result.reused_cache is False
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.key == result.key
    assert pointer.digest == rebuild(log.store, tmp_path / "rebuilt", log.deltas).digest


def test_nothing_new_publishes_nothing(
    history: History, log: Log, snapshots: SnapshotStore, locks: Leases, tmp_path: Path
) -> None:
    first = run(log, snapshots, locks, tmp_path / "cache")
    listed = [m.key for m in snapshots.manifests()]
    again = run(log, snapshots, locks, tmp_path / "cache")
    assert (again.published, again.applied, again.key) == (False, 0, first.key)
    assert [m.key for m in snapshots.manifests()] == listed


def test_a_warm_cache_is_reused_and_a_cold_one_pulls_the_latest(
    history: History, log: Log, snapshots: SnapshotStore, locks: Leases, tmp_path: Path
) -> None:
    run(log, snapshots, locks, tmp_path / "cache", to=history.positions[1])
    log.add(log.label(2, 1, "CASH", "VALID"))
    downloads: list[str] = []
    fetch = snapshots.backend.get_file

    def counted(key: str, target: Path) -> None:
        downloads.append(key)
        fetch(key, target)

    snapshots.backend.get_file = counted  # type: ignore[method-assign]
    warm = run(log, snapshots, locks, tmp_path / "cache")
    assert (warm.reused_cache, warm.published, warm.applied) == (
        True,
        True,
        log.store.head() - history.positions[1],
    )
    assert downloads == []
    log.add(log.label(2, 1, "CASH", "INVALID"))
    cold = run(log, snapshots, locks, tmp_path / "elsewhere")
    assert (cold.reused_cache, cold.published, cold.applied) == (False, True, 1)
    assert downloads
    assert all(key.startswith(f"snapshots/{warm.key}/") for key in downloads)
    assert (
        digest(tmp_path / "elsewhere")
        == rebuild(log.store, tmp_path / "rebuilt", log.deltas).digest
    )


def test_a_cache_behind_the_store_is_replaced_by_the_latest(
    history: History, log: Log, snapshots: SnapshotStore, locks: Leases, tmp_path: Path
) -> None:
    run(log, snapshots, locks, tmp_path / "old-cache", to=history.positions[0])
    run(log, snapshots, locks, tmp_path / "other", to=history.positions[2])
    result = run(log, snapshots, locks, tmp_path / "old-cache")
    assert result.reused_cache is False  # at positions[0], behind the pointer at positions[2]
    assert result.applied == log.store.head() - history.positions[2]


def test_losing_the_pointer_swap_retries_from_the_new_base(
    history: History, log: Log, snapshots: SnapshotStore, locks: Leases, tmp_path: Path
) -> None:
    """Another publisher lands between our read of the pointer and our swap: we start again
    from its snapshot, and the end state holds both its changes and ours."""
    run(log, snapshots, locks, tmp_path / "cache", to=history.positions[0])
    rival = history.snapshot_at(history.positions[2])
    write_pointer = snapshots.backend.write_pointer
    interfered: list[int] = []

    def publish_first_then_ours(data: bytes, expected: str | None) -> None:
        if not interfered:
            interfered.append(1)
            pointer, version = snapshots.pointer()
            publish_directory(
                rival,
                snapshots,
                token=1,  # an older holder, sneaking in while we work
                parent=pointer.key if pointer else None,
                expected=version,
            )
        write_pointer(data, expected)

    snapshots.backend.write_pointer = publish_first_then_ours  # type: ignore[method-assign]
    result = run(log, snapshots, locks, tmp_path / "cache")
    assert result.attempts == 2
    assert result.published
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.position == log.store.head()
    assert snapshots.manifest(pointer.key).parent is not None
    assert (
        snapshots.manifest(snapshots.manifest(pointer.key).parent or "").position
        == history.positions[2]
    )
    assert pointer.digest == rebuild(log.store, tmp_path / "rebuilt", log.deltas).digest


def test_a_second_compactor_is_refused_while_the_lock_is_held(
    history: History, log: Log, snapshots: SnapshotStore, locks: Leases, tmp_path: Path
) -> None:
    held = locks.acquire(lease_name(snapshots), ttl=60)
    with pytest.raises(LeaseBusy):
        run(log, snapshots, locks, tmp_path / "cache")
    held.release()
    assert run(log, snapshots, locks, tmp_path / "cache").published


def test_an_expired_holder_cannot_publish_after_a_newer_one(
    history: History,
    log: Log,
    snapshots: SnapshotStore,
    locks: Leases,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    """A's lease expires while it works; B takes the lock (a newer token) and publishes; A's
    publish is refused and the store keeps B's snapshot."""
    stale = locks.acquire(lease_name(snapshots), ttl=30)
    project(log.store, tmp_path / "a", log.deltas, to=history.positions[1])
    clock.now += 31
    newer = run(log, snapshots, locks, tmp_path / "b")
    assert newer.token > stale.token
    pointer, version = snapshots.pointer()
    with pytest.raises(LeaseLost):
        stale.check()
    with pytest.raises((FencedOut, PointerConflict)):
        publish_directory(
            tmp_path / "a",
            snapshots,
            token=stale.token,
            parent=None,
            expected=version,
            before_swap=stale.check,
        )
    assert snapshots.pointer()[0] == pointer


# -- an expired compactor against a newer one ------------------------------------------------

TTL = 0.6  # seconds on the test clock; the keepers heartbeat every TTL / 3 seconds of real time


class Blind:
    """A lease whose holder cannot tell it lost the lock (it paused between its check and its
    swap, or its clock lags): its checks and heartbeats pass without asking. The store's fencing
    must stop it."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.name, self.owner, self.token = lease.name, lease.owner, lease.token
        self.expires_at, self.ttl = lease.expires_at, lease.ttl

    def heartbeat(self) -> None:
        pass

    def check(self) -> None:
        pass

    def release(self) -> None:
        self.lease.release()


class Recording:
    """Leases that remember every lease they hand out (the real one, even when blinded)."""

    def __init__(self, locks: Leases, *, blind: bool = False) -> None:
        self.locks = locks
        self.blind = blind
        self.leases: list[Lease] = []

    def acquire(self, name: str, *, ttl: float) -> Lease:
        lease = self.locks.acquire(name, ttl=ttl)
        self.leases.append(lease)
        return Blind(lease) if self.blind else lease


def before_upload(snapshots: SnapshotStore, hook: Any) -> None:
    """Run ``hook`` once, when this store's first upload starts (after publish's own checks)."""
    upload = snapshots.upload
    done: list[bool] = []

    def hooked(directory: Path, manifest: Any) -> int:
        if not done:
            done.append(True)
            hook()
        return upload(directory, manifest)

    snapshots.upload = hooked  # type: ignore[method-assign]


@pytest.mark.parametrize("refusal", ["lock", "fence"])
def test_an_expired_compactor_is_refused_and_its_rerun_keeps_every_change(
    history: History, log: Log, site: Site, tmp_path: Path, refusal: str
) -> None:
    """A's lease runs out while it publishes (A paused); B takes the lock (a newer token),
    compacts more of the log and publishes. A is refused: by its lock check (LeaseLost), or, for
    a holder that cannot tell it lost the lock, by the store's fencing (FencedOut) once it has
    retried from B's snapshot. A's heartbeat, real and from its keeper thread, never takes the
    lock from B. The store keeps B's snapshot; A re-run starts from it and publishes every
    change."""
    run(log, site.store(), site.locks(), tmp_path / "seed", to=history.positions[0])
    a_store, b_store = site.store(), site.store()
    a_locks = Recording(site.locks(), blind=refusal == "fence")
    b_locks = Recording(site.locks())
    name = lease_name(a_store)
    seen: dict[str, Any] = {}

    def while_b_holds_the_lock() -> None:
        a, b = a_locks.leases[0], b_locks.leases[0]
        held = site.lock_record(name)
        assert held is not None
        assert (held.owner, held.token) == (b.owner, b.token)
        assert b.token > a.token
        with pytest.raises(LeaseLost):
            a.heartbeat()
        with pytest.raises(LeaseLost):
            a.check()
        time.sleep(TTL)  # A's keeper (and B's) heartbeat meanwhile
        assert site.lock_record(name) == held
        seen["held"] = held

    before_upload(b_store, while_b_holds_the_lock)

    def a_pauses_past_its_expiry() -> None:
        site.clock.advance(TTL + 1)
        log.add(log.label(2, 1, "CASH", "VALID"))
        seen["b"] = run(log, b_store, b_locks, tmp_path / "b", lease_ttl=TTL)
        if refusal == "fence":
            log.add(log.label(2, 1, "CASH", "INVALID"))  # so A, from B's base, has work to publish

    before_upload(a_store, a_pauses_past_its_expiry)

    with pytest.raises(LeaseLost if refusal == "lock" else FencedOut):
        run(log, a_store, a_locks, tmp_path / "a", lease_ttl=TTL)
    b = seen["b"]
    assert b.published
    assert b.position == history.positions[-1] + 3  # the seed's head, and B's new event
    pointer, _ = site.store().pointer()
    assert pointer is not None
    assert (pointer.key, pointer.position, pointer.token) == (b.key, b.position, b.token)
    released = site.lock_record(name)
    assert released is not None
    assert (released.owner, released.token) == (None, seen["held"].token)  # B let go; A did not

    log.add(log.label(1, 2, "LINE_TOTAL", "INVALID"))
    again = run(log, a_store, site.locks(), tmp_path / "a", lease_ttl=TTL)
    assert again.published
    assert again.token > b.token
    assert again.position == log.store.head()
    final, _ = site.store().pointer()
    assert final is not None
    assert final.key == again.key
    assert site.store().manifest(again.key).parent == b.key
    assert final.digest == rebuild(log.store, tmp_path / "rebuilt", log.deltas).digest
    restored = restore(site.store(), tmp_path / "restored")
    assert restored.digest == final.digest


def test_a_fenced_out_publisher_still_uploading_never_damages_the_published_snapshot(
    history: History,
    log: Log,
    site: Site,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A's lease runs out in the middle of its upload (after its Chroma database went up); B
    compacts the same log to the same position, so to the same key, and publishes. A resumes,
    uploads the rest and is refused at the swap. The snapshot the pointer names must still be
    B's, whole: a reader pulls it and every file verifies."""
    monkeypatch.setattr(store_module, "TRANSFER_THREADS", 1)  # A's upload, one file at a time
    a_store, b_store = site.store(), site.store()
    put_file = a_store.backend.put_file
    seen: dict[str, Any] = {}

    def a_pauses_after_its_database(key: str, source: Path) -> None:
        put_file(key, source)
        if key.endswith("/files/chroma/chroma.sqlite3") and not seen:
            site.clock.advance(TTL + 1)
            seen["b"] = run(log, b_store, site.locks(), tmp_path / "b", lease_ttl=TTL)

    a_store.backend.put_file = a_pauses_after_its_database  # type: ignore[method-assign]
    with pytest.raises(LeaseLost):
        run(log, a_store, site.locks(), tmp_path / "a", lease_ttl=TTL)
    b = seen["b"]
    pointer, _ = site.store().pointer()
    assert pointer is not None
    assert (pointer.key, pointer.token) == (b.key, b.token)
    restored = restore(site.store(), tmp_path / "restored")  # SnapshotCorrupt today
    assert restored.digest == pointer.digest


# -- publish policy, following the head, stopping in time -------------------------------


class GrowingStore:
    """The log, with a tail that lands while a compaction runs: appended just after the
    ``when``-th ``head()`` was read (another writer, as the stream processor would)."""

    def __init__(self, log: Log, tail: list[Any], when: int = 1) -> None:
        self._log, self._tail, self._when, self.calls = log, tail, when, 0

    def head(self) -> int:
        self.calls += 1
        head = self._log.store.head()
        if self.calls == self._when:
            self._log.add(*self._tail)
        return head

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log.store, name)


def test_a_publish_policy_publishes_every_n_events_and_at_the_end(
    history: History, log: Log, snapshots: SnapshotStore, locks: Leases, tmp_path: Path
) -> None:
    head = log.store.head()
    result = run(
        log, snapshots, locks, tmp_path / "cache", policy=PublishPolicy(every_events=2), keep=100
    )
    assert (result.position, result.applied) == (head, head)
    assert result.publishes == -(-head // 2) == len(snapshots.manifests())
    published = sorted(m.position for m in snapshots.manifests())
    assert published == sorted({*range(2, head + 1, 2), head})
    assert result.key is not None
    assert digest_of(snapshots, result.key, tmp_path) == digest(history.snapshot_at(head))


def test_following_keeps_going_while_the_head_moves_and_a_plain_run_does_not(
    log: Log, snapshots: SnapshotStore, locks: Leases, tmp_path: Path
) -> None:
    log.add(log.run("run-1", words={(1, 1): "TOTAL"}), log.label(1, 1, "GRAND_TOTAL", "PENDING"))
    tail = [log.label(1, 1, "GRAND_TOTAL", "VALID"), log.place(merchant_name="Corner Shop")]
    # the tail lands just after the run has read its target
    plain = compact(GrowingStore(log, tail), snapshots, locks, log.deltas, tmp_path / "a")  # type: ignore[arg-type]
    assert (plain.position, log.store.head()) == (2, 4)

    more = [log.label(1, 1, "GRAND_TOTAL", "INVALID"), log.unplace()]
    followed = compact(
        GrowingStore(log, more),  # type: ignore[arg-type]
        snapshots,
        locks,
        log.deltas,
        tmp_path / "a",
        CompactOptions(follow=True),
    )
    assert followed.position == log.store.head() == 6
    assert followed.applied == 4  # the two it found, then the two that landed meanwhile


def test_a_run_past_its_stop_time_publishes_what_it_applied_and_releases_the_lock(
    history: History,
    log: Log,
    snapshots: SnapshotStore,
    locks: Leases,
    site: Site,
    tmp_path: Path,
) -> None:
    head = log.store.head()
    policy = PublishPolicy(every_events=3)
    stopped = run(log, snapshots, locks, tmp_path / "cache", policy=policy, follow=True, stop_at=0)
    assert (stopped.published, stopped.position, stopped.applied) == (True, 3, 3)
    lock = site.lock_record(lease_name(snapshots))
    assert lock is not None
    assert lock.owner is None  # released: the next wake-up can go on at once

    rest = run(log, snapshots, site.locks(), tmp_path / "cache", policy=policy, follow=True)
    assert (rest.position, rest.applied, rest.reused_cache) == (head, head - 3, True)
    assert rest.key is not None
    assert digest_of(snapshots, rest.key, tmp_path) == digest(history.snapshot_at(head))


def digest_of(snapshots: SnapshotStore, key: str, tmp_path: Path) -> str:
    target = tmp_path / f"pulled-{key}"
    snapshots.download(key, target)
    return digest(target)
