"""``snapshot push / pull / list``: move snapshots between snapshot directories and stores.

A snapshot store is a local directory or ``s3://bucket/prefix``. Publishing takes the store's
lease: a file beside a local store, a DynamoDB item (``--lease-table``) for S3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from projections.cli.options import (
    OLD_SPELLINGS,
    DeltasOption,
    LeaseTableOption,
    LeaseTtlOption,
    delta_source,
)
from receipt_events.cli.aliases import with_aliases
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
                deltas=delta_source(deltas),
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
