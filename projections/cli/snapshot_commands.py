"""``snapshot push / pull / list / sweep``: move snapshots between snapshot directories and
stores, and clean up what interrupted publishes left in a store.

A snapshot store is a local directory or ``s3://bucket/prefix``. Publishing takes the store's
lease: a file beside a local store, a DynamoDB item (``--lease-table``) for S3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from projections.cli.options import (
    OLD_SPELLINGS,
    DeltaCacheMaxOption,
    DeltaCacheOption,
    DeltasOption,
    LeaseTableOption,
    LeaseTtlOption,
    delta_source,
)
from receipt_chroma.delta_cache import DEFAULT_MAX_MB
from receipt_events.cli.aliases import with_aliases
from receipt_events.cli.errors import fail
from receipt_events.cli.options import JsonOption, StoreOption, opened_store
from receipt_events.cli.output import console, emit_json

snapshot_app = typer.Typer(help="Move snapshots between snapshot directories and stores.")

StoreArgument = Annotated[
    str, typer.Argument(help="A snapshot store: a directory or s3://bucket/prefix.")
]


@snapshot_app.command("push", cls=with_aliases(OLD_SPELLINGS["push"]))
def push_command(
    directory: Annotated[Path, typer.Argument(help="The snapshot directory to publish.")],
    dest: StoreArgument,
    lease_table: LeaseTableOption = None,
    lease_ttl: LeaseTtlOption = 300.0,
    json: JsonOption = False,
) -> None:
    """Publish a snapshot directory: upload it, then move `latest` to it (forward only)."""
    from projections.compaction import lease_name
    from projections.publish import publish_directory
    from receipt_chroma.lease import LeaseKeeper, leases_for
    from receipt_chroma.snapshots import open_snapshot_store

    snapshots = open_snapshot_store(dest)
    lease = leases_for(dest, lease_table).acquire(lease_name(snapshots), ttl=lease_ttl)
    try:
        with LeaseKeeper(lease) as keeper:
            pointer, version = snapshots.pointer()
            manifest, _ = publish_directory(
                directory,
                snapshots,
                token=lease.token,
                parent=pointer.key if pointer else None,
                expected=version,
                before_swap=keeper.check,
            )
    finally:
        lease.release()
    if json:
        emit_json({"position": manifest.position, "key": manifest.key, "digest": manifest.digest})
    else:
        console.print(f"published {manifest.key} (position {manifest.position}) to {dest}")


@snapshot_app.command("pull")
def pull_command(
    src: StoreArgument,
    directory: Annotated[Path, typer.Argument(help="A new (or empty) snapshot directory.")],
    position: Annotated[
        int | None,
        typer.Option(
            "--position",
            min=0,
            help="Restore exactly this position: the newest snapshot at or below it, "
            "caught up with the log. Default: the latest snapshot as published.",
        ),
    ] = None,
    deltas: DeltasOption = ".",
    delta_cache: DeltaCacheOption = None,
    delta_cache_max_mb: DeltaCacheMaxOption = DEFAULT_MAX_MB,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Download a snapshot (every file checked against its manifest) into a directory."""
    from projections.restore import restore
    from receipt_chroma.snapshots import open_snapshot_store

    snapshots = open_snapshot_store(src)
    if position is None:
        result = restore(snapshots, directory)
    else:
        with opened_store(store) as event_store:
            result = restore(
                snapshots,
                directory,
                position=position,
                store=event_store,
                deltas=delta_source(deltas, delta_cache, delta_cache_max_mb),
            )
    if json:
        emit_json(result)
    else:
        console.print(
            f"{directory}: position {result.position} (from snapshot {result.from_key} at "
            f"{result.from_position}, {result.applied} events applied)\n{result.digest}",
            highlight=False,
        )


@snapshot_app.command("list")
def list_command(src: StoreArgument, json: JsonOption = False) -> None:
    """List the snapshots in a store, oldest first, and which one `latest` names."""
    from receipt_chroma.snapshots import open_snapshot_store

    snapshots = open_snapshot_store(src)
    pointer, _ = snapshots.pointer()
    rows = [
        {
            "key": m.key,
            "position": m.position,
            "digest": m.digest,
            "counts": m.counts,
            "token": m.token,
            "parent": m.parent,
            "latest": pointer is not None and m.key == pointer.key,
        }
        for m in snapshots.manifests()
    ]
    if json:
        emit_json({"snapshots": rows, "latest": pointer.key if pointer else None})
        return
    if not rows:
        console.print(f"{src}: no snapshots")
    for row in rows:
        mark = "← latest" if row["latest"] else ""
        console.print(
            f"{row['key']}  position {row['position']}  token {row['token']}  {mark}",
            highlight=False,
        )


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str, option: str) -> float:
    """``3600``, ``90s``, ``15m``, ``1h``, ``2d`` → seconds; a clear error for anything else."""
    text = value.strip().lower()
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0 or seconds == float("inf"):  # also catches NaN
        fail(
            f"{option} must be a duration of 0 or more: seconds (3600) or a number with s, m, "
            f"h or d (90s, 15m, 1h, 2d), not {value!r}"
        )
    return seconds


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count} bytes"


def _age(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


@snapshot_app.command("sweep")
def sweep_command(
    dest: StoreArgument,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Delete what is found. Without it nothing is deleted (a dry run): the "
            "command only lists what it would delete.",
        ),
    ] = False,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Only sweep a key whose newest file is older than this (3600, 90s, 15m, 1h, "
            "2d): a younger one may be a publish in progress (files are uploaded first, the "
            "manifest last). Keep it well above the longest publish.",
        ),
    ] = "1h",
    json: JsonOption = False,
) -> None:
    """Delete files that interrupted publishes left in a snapshot store (a dry run by default).

    An orphan is a snapshot key under `snapshots/` holding files but no `manifest.json`: a
    publish killed before its manifest, a retention stopped halfway, or (S3) a multipart upload
    never completed. A key with a manifest (a published snapshot) and the key `latest` names
    are never touched. JSON output: `orphans` ({key, files, bytes, age_s}), `kept` (younger
    than --older-than), `deleted` (files deleted; 0 on a dry run), `bytes`, `applied`.
    """
    from receipt_chroma.snapshots import open_snapshot_store, sweep_orphans

    threshold = parse_duration(older_than, "--older-than")
    result = sweep_orphans(open_snapshot_store(dest), apply=apply, older_than=threshold)
    if json:
        emit_json(result)
        return
    verb = "deleted" if apply else "would delete"
    for orphan in result.orphans:
        console.print(
            f"{verb} snapshots/{orphan.key}/: {orphan.files} files, {_size(orphan.bytes)}, "
            f"last written {_age(orphan.age_s)} ago",
            highlight=False,
        )
    for orphan in result.kept:
        console.print(
            f"kept snapshots/{orphan.key}/: {orphan.files} files, {_size(orphan.bytes)}, "
            f"last written {_age(orphan.age_s)} ago (younger than --older-than {older_than}: "
            "maybe a publish in progress)",
            highlight=False,
        )
    if not result.orphans:
        console.print(f"{dest}: nothing to sweep", highlight=False)
    elif apply:
        console.print(
            f"{dest}: deleted {result.deleted} files of {len(result.orphans)} orphaned "
            f"snapshot keys ({_size(result.bytes)})",
            highlight=False,
        )
    else:
        console.print(
            f"{dest}: dry run, nothing deleted: {len(result.orphans)} orphaned snapshot keys "
            f"({_size(result.bytes)}); run again with --apply to delete them",
            highlight=False,
        )
