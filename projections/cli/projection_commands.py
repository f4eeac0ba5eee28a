"""Commands on snapshot directories: project, rebuild, digest, verify, diff.

Command bodies import the projection (and so chromadb, about half a second) when they run,
so the commands that never touch Chroma start without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from projections.cli.options import (
    DeltaCacheMaxOption,
    DeltaCacheOption,
    DeltasOption,
    MissingDeltaOption,
    SnapshotDirOption,
    delta_source,
    missing_delta_policy,
)
from receipt_chroma.delta_cache import DEFAULT_MAX_MB
from receipt_events.cli.errors import EXIT_CHECK_FAILED, fail
from receipt_events.cli.options import JsonOption, StoreOption, ToOption, opened_store
from receipt_events.cli.output import console, emit_json, progress_bar

if TYPE_CHECKING:
    from receipt_chroma.deltas import DeltaSource


def project_command(
    snapshot_dir: SnapshotDirOption,
    to: ToOption = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Events per batch.")
    ] = 1000,
    deltas: DeltasOption = ".",
    delta_cache: DeltaCacheOption = None,
    delta_cache_max_mb: DeltaCacheMaxOption = DEFAULT_MAX_MB,
    on_missing_delta: MissingDeltaOption = "stop",
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Catch a snapshot directory up with the log (created if missing)."""
    from projections.runner import catch_up
    from projections.snapshot_dir import open_snapshot

    policy = missing_delta_policy(on_missing_delta)
    with (
        opened_store(store) as event_store,
        open_snapshot(snapshot_dir) as snapshot,
        progress_bar(not json, "projecting", "positions") as bar,
    ):
        result = catch_up(
            event_store,
            snapshot,
            delta_source(deltas, delta_cache, delta_cache_max_mb),
            to=to,
            batch_size=batch_size,
            policy=policy,
            progress=bar,
        )
    if json:
        emit_json(
            {
                "from": result.from_position,
                "to": result.to_position,
                "applied": result.applied,
                "records_written": result.records_written,
                "added": result.added,
                "updated": result.updated,
                "deleted": result.deleted,
                "held_deltas": result.held_deltas,
            }
        )
        return
    console.print(
        f"{snapshot_dir}: positions {result.from_position} → {result.to_position}, "
        f"{result.applied} events applied, {result.records_written} records written "
        f"({result.added} added, {result.updated} updated, {result.deleted} deleted)"
        + (f", {result.held_deltas} deltas held back" if result.held_deltas else "")
    )


def rebuild_command(
    snapshot_dir: Annotated[
        Path, typer.Option("--snapshot-dir", help="A new (or empty) snapshot directory.")
    ],
    to: ToOption = None,
    from_snapshot: Annotated[
        str | None,
        typer.Option(
            "--from-snapshot",
            help="Start from a snapshot: a snapshot directory (copied), or a snapshot store "
            "(a directory or s3://bucket/prefix: its newest snapshot at or below --to).",
        ),
    ] = None,
    deltas: DeltasOption = ".",
    delta_cache: DeltaCacheOption = None,
    delta_cache_max_mb: DeltaCacheMaxOption = DEFAULT_MAX_MB,
    on_missing_delta: MissingDeltaOption = "stop",
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Build a snapshot directory from zero (or from a snapshot) up to a position."""
    from projections.state import STATE_FILE

    policy = missing_delta_policy(on_missing_delta)
    if from_snapshot is not None and not (Path(from_snapshot) / STATE_FILE).is_file():
        source = delta_source(deltas, delta_cache, delta_cache_max_mb)
        _rebuild_from_store(snapshot_dir, from_snapshot, to, source, store, json)
        return
    from projections.runner import rebuild

    with (
        opened_store(store) as event_store,
        progress_bar(not json, "rebuilding", "positions") as bar,
    ):
        result = rebuild(
            event_store,
            snapshot_dir,
            delta_source(deltas, delta_cache, delta_cache_max_mb),
            to=to,
            from_snapshot=Path(from_snapshot) if from_snapshot else None,
            policy=policy,
            progress=bar,
        )
    if json:
        emit_json(
            {
                "position": result.position,
                "digest": result.digest,
                "counts": result.counts,
                "applied": result.applied,
                "from_snapshot": result.from_snapshot,
            }
        )
        return
    console.print(
        f"{snapshot_dir}: position {result.position}, {result.counts['lines']} lines, "
        f"{result.counts['words']} words\ndigest {result.digest}",
        highlight=False,
    )


def _rebuild_from_store(
    snapshot_dir: Path,
    source: str,
    to: int | None,
    deltas: DeltaSource,
    store: str | None,
    json: bool,
) -> None:
    """``rebuild --from-snapshot STORE``: the newest snapshot at or below ``to``, caught up."""
    from projections.restore import restore
    from receipt_chroma.snapshots import open_snapshot_store

    if not source.startswith("s3://") and not (
        (Path(source) / "latest.json").is_file() or (Path(source) / "snapshots").is_dir()
    ):
        fail(f"{source} is neither a snapshot directory nor a snapshot store")
    with opened_store(store) as event_store:
        result = restore(
            open_snapshot_store(source),
            snapshot_dir,
            position=to if to is not None else event_store.head(),
            store=event_store,
            deltas=deltas,
        )
    if json:
        emit_json(
            {
                "position": result.position,
                "digest": result.digest,
                "counts": result.counts,
                "applied": result.applied,
                "from_snapshot": result.from_position,
                "from_key": result.from_key,
            }
        )
        return
    console.print(
        f"{snapshot_dir}: position {result.position} from snapshot {result.from_key} "
        f"(+{result.applied} events)\ndigest {result.digest}",
        highlight=False,
    )


def digest_command(
    directory: Annotated[Path, typer.Argument(help="A snapshot directory.")],
    json: JsonOption = False,
) -> None:
    """Canonical digest of a snapshot directory (content, not files) at its checkpoint."""
    from projections.runner import snapshot_digest

    digest = snapshot_digest(directory)
    if json:
        emit_json(digest)
        return
    console.print(
        f"position {digest.position}  lines {digest.counts['lines']}  "
        f"words {digest.counts['words']}\n{digest.digest}",
        highlight=False,
    )


def verify_command(
    directory: Annotated[Path, typer.Argument(help="The snapshot directory to check.")],
    deltas: DeltasOption = ".",
    delta_cache: DeltaCacheOption = None,
    delta_cache_max_mb: DeltaCacheMaxOption = DEFAULT_MAX_MB,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Rebuild to the snapshot's position elsewhere and compare. Exit 1 on any difference."""
    from projections.verify import verify

    source = delta_source(deltas, delta_cache, delta_cache_max_mb)
    with opened_store(store) as event_store:
        result = verify(event_store, directory, source)
    if json:
        emit_json(result)
    elif result.ok:
        console.print(
            f"[green]ok[/]: {directory} at position {result.position} equals a rebuild "
            f"from the log\n{result.digest}",
            highlight=False,
        )
    else:
        console.print(
            f"[red]MISMATCH[/]: {directory} at position {result.position} differs from "
            f"a rebuild in {result.differing_records} record(s)\n"
            f"snapshot {result.digest}\nmanifest {result.manifest_digest}\n"
            f"rebuilt  {result.rebuilt_digest}",
            highlight=False,
        )
        for difference in result.differences:
            console.print(
                f"  {difference.collection} {difference.id}: {', '.join(difference.fields)}",
                highlight=False,
            )
    if not result.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


def diff_command(
    snapshot_dir: SnapshotDirOption,
    to: ToOption = None,
    deltas: DeltasOption = ".",
    delta_cache: DeltaCacheOption = None,
    delta_cache_max_mb: DeltaCacheMaxOption = DEFAULT_MAX_MB,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Dry run: the records applying the log's tail would add, update and delete."""
    from projections.verify import diff

    source = delta_source(deltas, delta_cache, delta_cache_max_mb)
    with opened_store(store) as event_store:
        result = diff(event_store, snapshot_dir, source, to=to)
    if json:
        emit_json(result)
        return
    console.print(
        f"positions {result.from_position} → {result.to_position} ({result.events} events): "
        f"{result.add} to add, {result.update} to update, {result.delete} to delete",
        highlight=False,
    )
    for record in result.records[:50]:
        console.print(f"  {record.operation:<6} {record.collection} {record.id}", highlight=False)
    if len(result.records) > 50:
        console.print(f"  ... and {len(result.records) - 50} more (--json lists them all)")
    if result.stopped:
        console.print(f"[yellow]the projection would stop here:[/] {result.stopped}")
