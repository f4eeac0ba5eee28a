"""``status``: the log's head and parked records, and a snapshot directory's checkpoint and lag."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from projections.cli.options import OptionalSnapshotDirOption
from receipt_chroma.provenance import Provenance
from receipt_events.cli.options import JsonOption, StoreOption, opened_store
from receipt_events.cli.output import console, emit_json

if TYPE_CHECKING:
    from projections.state import ProjectionState


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
        for name, model in document["models"].items():
            lines.append(f"model {name:<8} {model_line(model)}")
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
    from receipt_chroma.client import COLLECTIONS

    with open_snapshot(directory, create=False) as snapshot:
        state = snapshot.state
        checkpoint = state.checkpoint
        return {
            "checkpoint": checkpoint,
            "lag": max(head - checkpoint, 0),
            "inflight_to": state.inflight_to,
            "records": state.record_count(),
            "held_deltas": [msgspec.to_builtins(held) for held in state.held_deltas()],
            "models": {name: collection_model(state, name) for name in COLLECTIONS},
        }


def collection_model(state: ProjectionState, collection: str) -> dict[str, Any]:
    """What made a collection's vectors: the model recorded for it (``function`` and
    ``config``, as Chroma names embedding functions; ``known`` false when its deltas said
    nothing), its dimension, and how many merged deltas each model made."""
    model = state.provenance(collection)
    return {
        "known": model is not None and model.known,
        "label": (model or Provenance()).label if model or state.dimension(collection) else None,
        "function": None if model is None else model.function,
        "config": None if model is None else model.config,
        "dimension": state.dimension(collection),
        "deltas": state.delta_provenances(collection),
    }


def model_line(model: dict[str, Any]) -> str:
    if model["label"] is None:
        return "none yet (no delta merged)"
    deltas = ", ".join(f"{count} by {label}" for label, count in model["deltas"].items())
    line = f"{model['label']} ({model['dimension']}-d)"
    if not model["known"]:
        line += ": the deltas recorded no model; query cannot embed for it"
    return f"{line}; deltas: {deltas}" if deltas else line
