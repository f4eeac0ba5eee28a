"""Commands on snapshot stores: snapshot push / pull / list, and compact.

A snapshot store is a local directory or ``s3://bucket/prefix``. Publishing takes the store's
lock: a file lock beside a local store, a DynamoDB item (``--lock-table`` or
``RECEIPT_EVENTS_LOCK_TABLE``) for S3. Like the projection commands, these import chromadb
and boto3 only inside their bodies.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer

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
from receipt_events.cli.projection_commands import DeltasOption, _delta_source, projection_errors

if TYPE_CHECKING:
    from receipt_chroma.lease import Locks

LOCK_TABLE_ENV = "RECEIPT_EVENTS_LOCK_TABLE"
CACHE_ENV = "RECEIPT_EVENTS_CACHE"

snapshot_app = typer.Typer(help="Move snapshots between directories and snapshot stores.")

LockTableOption = Annotated[
    str | None,
    typer.Option(
        "--lock-table",
        envvar=LOCK_TABLE_ENV,
        help="DynamoDB table holding the publish lock (needed for s3:// stores).",
    ),
]
TtlOption = Annotated[
    float, typer.Option("--lock-ttl", min=5, help="Seconds the lock lasts between heartbeats.")
]


def locks_for(url: str, lock_table: str | None) -> Locks:
    """The lock that guards publishing to a store."""
    from receipt_chroma.lease import DynamoDBLocks, FileLocks

    if url.startswith("s3://"):
        if not lock_table:
            fail(f"publishing to {url} needs a lock table: --lock-table or ${LOCK_TABLE_ENV}")
        return DynamoDBLocks(lock_table)
    return FileLocks(Path(url))


@contextmanager
def snapshot_errors() -> Iterator[None]:
    """Map snapshot and lock errors to one-line messages and exit statuses."""
    from projections.compaction import CompactionGaveUp
    from receipt_chroma.lease import LockBusy, LockLost
    from receipt_chroma.snapshots import (
        FencedOut,
        NoSnapshot,
        PointerConflict,
        SnapshotCorrupt,
        SnapshotMissing,
    )

    try:
        with projection_errors():
            yield
    except (PointerConflict, FencedOut, LockBusy, LockLost, CompactionGaveUp) as error:
        raise UserError(f"not published: {error}", EXIT_CHECK_FAILED) from None
    except (SnapshotCorrupt, SnapshotMissing) as error:
        raise UserError(f"refused: {error}", EXIT_CHECK_FAILED) from None
    except NoSnapshot as error:
        raise UserError(str(error), EXIT_CHECK_FAILED) from None
    except FileExistsError as error:
        raise UserError(str(error), EXIT_BAD_INPUT) from None


@snapshot_app.command("push")
def push_command(
    directory: Annotated[Path, typer.Argument(help="The snapshot directory to publish.")],
    dest: Annotated[
        str, typer.Argument(help="A snapshot store: a directory or s3://bucket/prefix.")
    ],
    lock_table: LockTableOption = None,
    lock_ttl: TtlOption = 300.0,
    json: JsonOption = False,
) -> None:
    """Publish a snapshot directory: upload it, then move `latest` to it (forward only)."""

    def run() -> None:
        from projections.compaction import lock_name
        from projections.publish import publish_directory
        from receipt_chroma.lease import LeaseKeeper
        from receipt_chroma.snapshots import open_snapshot_store

        snapshots = open_snapshot_store(dest)
        with snapshot_errors():
            lease = locks_for(dest, lock_table).acquire(lock_name(snapshots), ttl=lock_ttl)
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
            emit_json(
                {"position": manifest.position, "key": manifest.key, "digest": manifest.digest}
            )
        else:
            console.print(f"published {manifest.key} (position {manifest.position}) to {dest}")

    guarded(run)


@snapshot_app.command("pull")
def pull_command(
    src: Annotated[
        str, typer.Argument(help="A snapshot store: a directory or s3://bucket/prefix.")
    ],
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

    def run() -> None:
        from projections.restore import restore
        from receipt_chroma.snapshots import open_snapshot_store

        snapshots = open_snapshot_store(src)
        with snapshot_errors():
            if position is None:
                result = restore(snapshots, directory)
            else:
                with opened_store(store) as event_store:
                    result = restore(
                        snapshots,
                        directory,
                        position=position,
                        store=event_store,
                        deltas=_delta_source(deltas),
                    )
        if json:
            emit_json(result)
        else:
            console.print(
                f"{directory}: position {result.position} (from snapshot {result.from_key} at "
                f"{result.from_position}, {result.applied} events applied)\n{result.digest}",
                highlight=False,
            )

    guarded(run)


@snapshot_app.command("list")
def list_command(
    src: Annotated[
        str, typer.Argument(help="A snapshot store: a directory or s3://bucket/prefix.")
    ],
    json: JsonOption = False,
) -> None:
    """List the snapshots in a store, oldest first, and which one `latest` names."""

    def run() -> None:
        from receipt_chroma.snapshots import open_snapshot_store

        snapshots = open_snapshot_store(src)
        with snapshot_errors():
            pointer, _ = snapshots.pointer()
            manifests = snapshots.manifests()
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
            for m in manifests
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

    guarded(run)


def default_cache(url: str) -> Path:
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "receipt-events")
    return base / hashlib.sha256(url.encode()).hexdigest()[:16]


def compact_command(
    snapshots_url: Annotated[
        str,
        typer.Option("--snapshots", help="The snapshot store: a directory or s3://bucket/prefix."),
    ],
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            help="Local working copy, reused between runs when it matches the store. "
            f"Default: ${CACHE_ENV} or ~/.cache/receipt-events/<store hash>.",
        ),
    ] = None,
    to: Annotated[int | None, typer.Option("--to", min=0, help="Stop at this position.")] = None,
    keep: Annotated[int, typer.Option("--keep", min=1, help="Snapshots to retain.")] = 5,
    lock_table: LockTableOption = None,
    lock_ttl: TtlOption = 300.0,
    deltas: DeltasOption = ".",
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Lock, restore the latest snapshot, catch up with the log, publish if anything changed."""

    def run() -> None:
        from projections.compaction import compact
        from receipt_chroma.snapshots import open_snapshot_store

        snapshots = open_snapshot_store(snapshots_url)
        with opened_store(store) as event_store, snapshot_errors():
            result = compact(
                event_store,
                snapshots,
                locks_for(snapshots_url, lock_table),
                _delta_source(deltas),
                cache or default_cache(snapshots_url),
                to=to,
                ttl=lock_ttl,
                keep=keep,
            )
        if json:
            emit_json(msgspec.to_builtins(result))
        elif result.published:
            console.print(
                f"published {result.key} at position {result.position} "
                f"({result.applied} events applied, lock token {result.token})"
            )
        else:
            console.print(f"nothing new: {snapshots_url} is at position {result.position}")

    guarded(run)
