"""``status``: the log's head and parked records, and a snapshot directory's checkpoint and lag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from projections.cli.options import OptionalSnapshotDirOption
from receipt_events.cli.options import JsonOption, StoreOption, opened_store
from receipt_events.cli.output import console, emit_json


def status_command(
    snapshot_dir: OptionalSnapshotDirOption = None,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Show the log head, parked records and (with --snapshot-dir) its checkpoint and lag."""
    with opened_store(store) as event_store:
        head = event_store.head()
        parked = len(event_store.parked_records())
        url = event_store.url
    document: dict[str, Any] = {
        "store": url,
        "head": head,
        "parked": parked,
        "checkpoint": None,
        "lag": None,
    }
    if snapshot_dir is not None:
        document.update(snapshot_status(snapshot_dir, head))
    if json:
        emit_json(document)
        return
    lines = [f"store          {url}", f"head           {head}", f"parked         {parked}"]
    if snapshot_dir is not None:
        lines += [
            f"snapshot       {snapshot_dir}",
            f"checkpoint     {document['checkpoint']}",
            f"lag            {document['lag']}",
            f"records        {document['records']}",
        ]
        if document["inflight_to"] is not None:
            lines.append(f"in flight to   {document['inflight_to']} (run project to finish)")
        for held in document["held_deltas"]:
            lines.append(
                f"held delta     run {held['run_id']} {held['collection']} "
                f"at {held['position']}: {held['error']}"
            )
    console.print("\n".join(lines), highlight=False)


def snapshot_status(directory: Path, head: int) -> dict[str, Any]:
    """The snapshot directory's part of ``status``."""
    from projections.snapshot_dir import open_snapshot

    with open_snapshot(directory, create=False) as snapshot:
        state = snapshot.state
        checkpoint = state.checkpoint
        return {
            "checkpoint": checkpoint,
            "lag": max(head - checkpoint, 0),
            "inflight_to": state.inflight_to,
            "records": state.record_count(),
            "held_deltas": [msgspec.to_builtins(held) for held in state.held_deltas()],
        }
