"""What must hold of a site when a case is over, or at any moment a reader looks.

Every listed snapshot verifies, the latest pulls, and at the end the log equals the clean
one, the pointer names a complete snapshot at the head whose digest equals a clean rebuild,
nothing is in flight and the publish lease is released.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from projections.restore import restore
from projections.runner import rebuild
from projections.snapshot_dir import open_snapshot
from receipt_chroma.deltas import DeltaSources
from receipt_events.store import open_store
from tests.support.log_contents import read_log
from tests.support.pipeline_site import Site
from tests.support.seeded_runs import SeedData


def inflight(directory: Path) -> tuple[int, int | None]:
    """A snapshot directory's checkpoint and in-flight batch end."""
    with open_snapshot(directory, create=False) as snapshot:
        return snapshot.state.checkpoint, snapshot.state.inflight_to


def unverifiable_snapshots(site: Site, scratch: Path) -> list[str]:
    """Every snapshot the store lists must download with every file matching its manifest."""
    problems = []
    snapshots = site.snapshot_store()
    for index, manifest in enumerate(snapshots.manifests()):
        target = scratch / f"listed-{index}"
        try:
            snapshots.download(manifest.key, target)
        except Exception as error:
            problems.append(f"listed snapshot {manifest.key} does not verify: {error}")
        finally:
            shutil.rmtree(target, ignore_errors=True)
    return problems


def orphaned_keys(site: Site) -> int:
    """Snapshot keys holding files but no manifest: what an interrupted publish leaves behind.

    Invisible to readers (never listed, never pulled) and never deleted by retention, which
    only deletes listed snapshots: counted in the figures, not a failure.
    """
    backend = site.snapshot_store().backend
    keys = {key.split("/")[1] for key in backend.list_keys("snapshots/") if key.count("/") >= 2}
    listed = {manifest.key for manifest in site.snapshot_store().manifests()}
    return len(keys - listed)


def pulled_digest(site: Site, target: Path) -> tuple[int, str]:
    """Pull the latest snapshot (every file checked) and digest what was pulled."""
    result = restore(site.snapshot_store(), target)
    return result.position, result.digest


def final_checks(data: SeedData, site: Site, row: dict[str, Any]) -> list[str]:
    """Everything that must hold once a case is over; fills in the case's figures ``row``."""
    problems: list[str] = []
    events, positions = read_log(site.store_url)
    ids = [originator for originator, _ in events]
    clean_ids = {originator for originator, _ in data.events}
    row["events"] = len(events)
    row["lost_updates"] = len(clean_ids - set(ids))
    row["doubled"] = len(ids) - len(set(ids))
    if events != data.events:
        problems.append(
            f"the log differs from a clean ingest: {len(events)} events vs {len(data.events)}, "
            f"{row['lost_updates']} missing, {row['doubled']} doubled"
        )

    pointer, _ = site.snapshot_store().pointer()
    store = open_store(site.store_url)
    try:
        head = store.head()
        clean = rebuild(store, site.root / "clean-rebuild", DeltaSources(str(site.deltas)))
    finally:
        store.close()
    if pointer is None:
        problems.append("nothing was published")
        row["divergence"] = True
        return problems
    if pointer.position != head:
        problems.append(f"the pointer is at {pointer.position}, the log's head at {head}")
        row["divergence"] = True
    try:
        position, digest = pulled_digest(site, site.root / "pulled")
    except Exception as error:
        problems.append(f"pulling the latest snapshot failed: {type(error).__name__}: {error}")
        row["divergence"] = True
        return problems
    row["digest"] = digest
    if not (digest == pointer.digest == clean.digest and position == clean.position):
        row["divergence"] = True
        problems.append(
            f"DIVERGENCE: published {pointer.digest} at {pointer.position}, pulled {digest} at "
            f"{position}, clean rebuild {clean.digest} at {clean.position}"
        )
    if (events, positions) == (data.events, data.positions) and digest != data.digest:
        # (a store may leave gaps in positions, e.g. PostgreSQL after a rolled-back append:
        # the digest covers the position, so only an identically numbered log must match)
        problems.append(f"the same log as the reference, another digest: {digest} ≠ {data.digest}")
    problems += unverifiable_snapshots(site, site.root / "verify-final")
    row["orphaned_keys"] = orphaned_keys(site)
    _checkpoint, noted = inflight(site.cache)
    if noted is not None:
        problems.append(f"the compactor's cache is left with a batch in flight (to {noted})")
    lock = site.lock_record()
    if lock is not None and lock.owner is not None:
        problems.append(f"the publish lock is left held by {lock.owner}")
    return problems
