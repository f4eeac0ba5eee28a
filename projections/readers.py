"""For query services: current collections without waiting for the next publish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from projections.query import QueryResult, query_snapshot
from projections.restore import ensure_local_copy
from projections.runner import catch_up
from projections.snapshot_dir import open_snapshot
from receipt_chroma.client import ChromaDirectory, CollectionName, open_chroma
from receipt_chroma.deltas import DeltaSource, DeltaSources
from receipt_chroma.snapshots import SnapshotStore, open_snapshot_store
from receipt_events.store import EventStore, open_store


def open_fresh(
    snapshots: SnapshotStore | str,
    store: EventStore | str,
    *,
    workdir: Path,
    deltas: DeltaSource | str = ".",
) -> ChromaDirectory:
    """The latest published snapshot plus the log's tail, up to the head: an open Chroma
    client on ``workdir/snapshot`` (close it when done; the next call reuses the copy).

    ``snapshots`` is a snapshot store or its URL, ``store`` the event store or its URL,
    ``deltas`` the delta root for records published after the snapshot.
    """
    snapshot_store = open_snapshot_store(snapshots) if isinstance(snapshots, str) else snapshots
    event_store = open_store(store) if isinstance(store, str) else store
    source = DeltaSources(deltas) if isinstance(deltas, str) else deltas
    path = workdir / "snapshot"
    try:
        pointer, _ = snapshot_store.pointer()
        ensure_local_copy(snapshot_store, pointer, path, event_store)
        with open_snapshot(path) as snapshot:
            catch_up(event_store, snapshot, source)
    finally:
        if isinstance(store, str):
            event_store.close()
    return open_chroma(path / "chroma", create=False)


def query_fresh(
    snapshots: SnapshotStore | str,
    store: EventStore | str,
    text: str,
    *,
    workdir: Path,
    deltas: DeltaSource | str = ".",
    collection: CollectionName = "words",
    n: int = 10,
    where: dict[str, Any] | None = None,
) -> QueryResult:
    """The ``n`` records nearest to ``text`` in the current collections (:func:`open_fresh`:
    the latest published snapshot plus the log's tail), embedded by the collection's recorded
    model; see :func:`projections.query.query_snapshot` for ``where`` and what it raises."""
    open_fresh(snapshots, store, workdir=workdir, deltas=deltas).close()
    return query_snapshot(workdir / "snapshot", text, collection=collection, n=n, where=where)
