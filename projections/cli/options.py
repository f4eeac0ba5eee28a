"""The options of the projection, snapshot and compaction commands, defined once.

The snapshot directory (the local one) is ``--snapshot-dir`` in every command that takes it
as an option; the snapshot store (a directory or ``s3://bucket/prefix`` of published
snapshots) is ``--snapshot-store``. The spellings of the previous release are accepted as
hidden aliases (:data:`OLD_SPELLINGS`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from projections.settings import CACHE_ENV, DELTAS_ENV
from receipt_chroma.delta_cache import CACHE_ENV as DELTA_CACHE_ENV
from receipt_chroma.delta_cache import DEFAULT_MAX_MB, MAX_MB_ENV, with_delta_cache
from receipt_chroma.lease import LEASE_TABLE_ENVS
from receipt_events.cli.aliases import warn_renamed
from receipt_events.cli.errors import fail

if TYPE_CHECKING:
    from receipt_chroma.deltas import DeltaSource

# old flag → new flag, per command (see receipt_events.cli.aliases)
OLD_SPELLINGS: dict[str, dict[str, str]] = {
    "project": {"--chroma": "--snapshot-dir"},
    "diff": {"--chroma": "--snapshot-dir"},
    "status": {"--chroma": "--snapshot-dir"},
    "rebuild": {"--out": "--snapshot-dir"},
    "compact": {
        "--cache": "--snapshot-dir",
        "--snapshots": "--snapshot-store",
        "--lock-table": "--lease-table",
        "--lock-ttl": "--lease-ttl",
    },
    "push": {"--lock-table": "--lease-table", "--lock-ttl": "--lease-ttl"},
}

SnapshotDirOption = Annotated[
    Path, typer.Option("--snapshot-dir", help="The snapshot directory (local).")
]
OptionalSnapshotDirOption = Annotated[
    Path | None,
    typer.Option("--snapshot-dir", help="Also show this snapshot directory's checkpoint and lag."),
]
SnapshotStoreOption = Annotated[
    str,
    typer.Option("--snapshot-store", help="The snapshot store: a directory or s3://bucket/prefix."),
]
DeltasOption = Annotated[
    str,
    typer.Option(
        "--deltas",
        envvar=DELTAS_ENV,
        help="Where relative delta locations are resolved: a directory or s3://bucket/prefix.",
    ),
]
DeltaCacheOption = Annotated[
    Path | None,
    typer.Option(
        "--delta-cache",
        envvar=DELTA_CACHE_ENV,
        help="Keep decoded deltas in this directory, so that later reads (rebuild, verify) "
        "skip Chroma. Checked on every read; safe to delete. Default: no cache.",
    ),
]
DeltaCacheMaxOption = Annotated[
    int,
    typer.Option(
        "--delta-cache-max-mb",
        envvar=MAX_MB_ENV,
        min=1,
        help="The delta cache's size cap in MiB; least recently used deltas go first.",
    ),
]
MissingDeltaOption = Annotated[
    str,
    typer.Option(
        "--on-missing-delta",
        help="stop: stop before the event whose delta is missing or changed (default). "
        "hold: hold that delta back (see `status --snapshot-dir`) and go on.",
    ),
]
LeaseTableOption = Annotated[
    str | None,
    typer.Option(
        "--lease-table",
        envvar=list(LEASE_TABLE_ENVS),
        help="DynamoDB table holding the publish lease (needed for s3:// snapshot stores; "
        "create it with `receipt-events lease create-table`).",
    ),
]
LeaseTtlOption = Annotated[
    float,
    typer.Option("--lease-ttl", min=5, help="Seconds the lease lasts between heartbeats."),
]


def missing_delta_policy(value: str) -> Literal["stop", "hold"]:
    """``--on-missing-delta``: ``stop`` or ``hold`` (``park``, its name before 0.2, still read)."""
    if value == "stop":
        return "stop"
    if value in ("hold", "park"):
        if value == "park":
            warn_renamed("--on-missing-delta park", "hold")
        return "hold"
    fail(f"--on-missing-delta must be 'stop' or 'hold', not {value!r}")


def delta_source(
    root: str, cache: Path | None = None, cache_max_mb: int = DEFAULT_MAX_MB
) -> DeltaSource:
    """Where the projection reads deltas: ``s3://`` locations from S3, others under ``root``;
    through the delta cache in ``cache`` if one is given."""
    from receipt_chroma.deltas import DeltaSources

    return with_delta_cache(DeltaSources(root), cache, cache_max_mb)


def default_snapshot_dir(snapshot_store: str) -> Path:
    """Compaction's local snapshot directory for a store, kept between runs."""
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "receipt-events")
    return base / hashlib.sha256(snapshot_store.encode()).hexdigest()[:16]
