"""Commands on snapshot directories: project, rebuild, digest, verify, diff.

They need chromadb, so every import of ``projections`` and ``receipt_chroma`` happens inside
a command body: the log commands (and the stream Lambda) never load it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from receipt_events.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    JsonOption,
    StoreOption,
    UserError,
    console,
    emit_json,
    fail,
    guarded,
    opened_store,
)

if TYPE_CHECKING:
    from receipt_chroma.deltas import DeltaSource

DELTAS_ENV = "RECEIPT_EVENTS_DELTAS"

DeltasOption = Annotated[
    str,
    typer.Option(
        "--deltas",
        envvar=DELTAS_ENV,
        help="Where relative delta locations are resolved: a directory or s3://bucket/prefix.",
    ),
]
MissingDeltaOption = Annotated[
    str,
    typer.Option(
        "--on-missing-delta",
        help="stop: stop before the event whose delta is missing or changed (default). "
        "park: record it (see `status --chroma`) and go on.",
    ),
]
ToOption = Annotated[
    int | None, typer.Option("--to", min=0, help="Stop at this log position (default: the head).")
]


def _policy(value: str) -> Literal["stop", "park"]:
    if value == "stop":
        return "stop"
    if value == "park":
        return "park"
    fail(f"--on-missing-delta must be 'stop' or 'park', not {value!r}")


def _delta_source(root: str) -> DeltaSource:
    from receipt_chroma.deltas import DeltaSources

    return DeltaSources(root)


@contextmanager
def projection_errors() -> Iterator[None]:
    """Map projection errors to user errors: 2 for wrong input, 1 when the work cannot go on."""
    from projections.fold import DeltaProblem
    from projections.runner import ProjectionConflict, ProjectionStopped
    from projections.snapshot_dir import NotASnapshot
    from projections.state import StateError
    from receipt_chroma.lock import DirectoryBusy

    try:
        yield
    except (ProjectionStopped, DeltaProblem) as error:
        raise UserError(f"projection stopped: {error}", EXIT_CHECK_FAILED) from None
    except (ProjectionConflict, NotASnapshot, StateError) as error:
        raise UserError(str(error), EXIT_BAD_INPUT) from None
    except DirectoryBusy as error:
        raise UserError(str(error), EXIT_CHECK_FAILED) from None


@contextmanager
def progress_bar(enabled: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal (not with --json); yields the callback to feed it."""
    if not enabled or not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("positions"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda reached, target: bar.update(task, completed=reached, total=target)


def project_command(
    chroma: Annotated[Path, typer.Option("--chroma", help="The snapshot directory to update.")],
    to: ToOption = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Events per batch.")
    ] = 1000,
    deltas: DeltasOption = ".",
    on_missing_delta: MissingDeltaOption = "stop",
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Catch a snapshot directory up with the log (created if missing)."""

    def run() -> None:
        from projections.runner import catch_up
        from projections.snapshot_dir import open_snapshot

        policy = _policy(on_missing_delta)
        with (
            opened_store(store) as event_store,
            projection_errors(),
            open_snapshot(chroma) as snapshot,
            progress_bar(not json, "projecting") as bar,
        ):
            result = catch_up(
                event_store,
                snapshot,
                _delta_source(deltas),
                to=to,
                batch_size=batch_size,
                policy=policy,
                progress=bar,
            )
        document = {
            "from": result.from_position,
            "to": result.to_position,
            "applied": result.applied,
            "records_written": result.records_written,
            "added": result.added,
            "updated": result.updated,
            "deleted": result.deleted,
            "parked_deltas": result.parked_deltas,
        }
        if json:
            emit_json(document)
        else:
            console.print(
                f"{chroma}: positions {result.from_position} → {result.to_position}, "
                f"{result.applied} events applied, {result.records_written} records written "
                f"({result.added} added, {result.updated} updated, {result.deleted} deleted)"
                + (f", {result.parked_deltas} deltas parked" if result.parked_deltas else "")
            )

    guarded(run)


def rebuild_command(
    out: Annotated[Path, typer.Option("--out", help="A new (or empty) snapshot directory.")],
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
    on_missing_delta: MissingDeltaOption = "stop",
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Build a snapshot directory from zero (or from a snapshot) up to a position."""

    def run() -> None:
        from projections.runner import rebuild
        from projections.state import STATE_FILE

        policy = _policy(on_missing_delta)
        if from_snapshot is not None and not (Path(from_snapshot) / STATE_FILE).is_file():
            source = Path(from_snapshot)
            if not from_snapshot.startswith("s3://") and not (
                (source / "latest.json").is_file() or (source / "snapshots").is_dir()
            ):
                fail(f"{from_snapshot} is neither a snapshot directory nor a snapshot store")
            _rebuild_from_store(from_snapshot)
            return
        with (
            opened_store(store) as event_store,
            projection_errors(),
            progress_bar(not json, "rebuilding") as bar,
        ):
            result = rebuild(
                event_store,
                out,
                _delta_source(deltas),
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
        else:
            console.print(
                f"{out}: position {result.position}, {result.counts['lines']} lines, "
                f"{result.counts['words']} words\ndigest {result.digest}",
                highlight=False,
            )

    def _rebuild_from_store(source: str) -> None:
        from projections.restore import restore
        from receipt_chroma.snapshots import open_snapshot_store
        from receipt_events.cli.snapshot_commands import snapshot_errors

        with opened_store(store) as event_store, snapshot_errors():
            result = restore(
                open_snapshot_store(source),
                out,
                position=to if to is not None else event_store.head(),
                store=event_store,
                deltas=_delta_source(deltas),
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
        else:
            console.print(
                f"{out}: position {result.position} from snapshot {result.from_key} "
                f"(+{result.applied} events)\ndigest {result.digest}",
                highlight=False,
            )

    guarded(run)


def digest_command(
    directory: Annotated[Path, typer.Argument(help="A snapshot directory.")],
    json: JsonOption = False,
) -> None:
    """Canonical digest of a snapshot directory (content, not files) at its checkpoint."""

    def run() -> None:
        from projections.runner import snapshot_digest

        with projection_errors():
            digest = snapshot_digest(directory)
        if json:
            emit_json(digest)
        else:
            console.print(
                f"position {digest.position}  lines {digest.counts['lines']}  "
                f"words {digest.counts['words']}\n{digest.digest}",
                highlight=False,
            )

    guarded(run)


def verify_command(
    directory: Annotated[Path, typer.Argument(help="The snapshot directory to check.")],
    deltas: DeltasOption = ".",
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Rebuild to the snapshot's position elsewhere and compare. Exit 1 on any difference."""

    def run() -> None:
        from projections.verify import verify

        with opened_store(store) as event_store, projection_errors():
            result = verify(event_store, directory, _delta_source(deltas))
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
                f"snapshot {result.digest}\nrebuilt  {result.rebuilt_digest}",
                highlight=False,
            )
            for difference in result.differences:
                console.print(
                    f"  {difference.collection} {difference.id}: {', '.join(difference.fields)}",
                    highlight=False,
                )
        if not result.ok:
            raise typer.Exit(EXIT_CHECK_FAILED)

    guarded(run)


def diff_command(
    chroma: Annotated[Path, typer.Option("--chroma", help="The snapshot directory.")],
    to: ToOption = None,
    deltas: DeltasOption = ".",
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Dry run: the records applying the log's tail would add, update and delete."""

    def run() -> None:
        from projections.verify import diff

        with opened_store(store) as event_store, projection_errors():
            result = diff(event_store, chroma, _delta_source(deltas), to=to)
        if json:
            emit_json(result)
            return
        console.print(
            f"positions {result.from_position} → {result.to_position} ({result.events} events): "
            f"{result.add} to add, {result.update} to update, {result.delete} to delete",
            highlight=False,
        )
        for record in result.records[:50]:
            console.print(
                f"  {record.operation:<6} {record.collection} {record.id}", highlight=False
            )
        if len(result.records) > 50:
            console.print(f"  ... and {len(result.records) - 50} more (--json lists them all)")
        if result.stopped:
            console.print(f"[yellow]the projection would stop here:[/] {result.stopped}")

    guarded(run)


def chroma_status(directory: Path, head: int) -> dict[str, Any]:
    """The snapshot part of ``status --chroma``."""
    from projections.snapshot_dir import open_snapshot

    with projection_errors(), open_snapshot(directory, create=False) as snapshot:
        state = snapshot.state
        checkpoint = state.checkpoint
        return {
            "checkpoint": checkpoint,
            "lag": max(head - checkpoint, 0),
            "inflight_to": state.inflight_to,
            "records": state.record_count(),
            "parked_deltas": [msgspec.to_builtins(parked) for parked in state.parked_deltas()],
        }
