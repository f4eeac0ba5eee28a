"""``compact``: lease, restore the latest snapshot, catch up with the log, publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer

from projections.cli.options import (
    DeltaCacheMaxOption,
    DeltaCacheOption,
    DeltasOption,
    LeaseTableOption,
    LeaseTtlOption,
    SnapshotStoreOption,
    default_snapshot_dir,
    delta_source,
)
from projections.settings import CACHE_ENV
from receipt_chroma.delta_cache import DEFAULT_MAX_MB
from receipt_events.cli.options import JsonOption, StoreOption, ToOption, opened_store
from receipt_events.cli.output import console, emit_json


def compact_command(
    snapshot_store: SnapshotStoreOption,
    snapshot_dir: Annotated[
        Path | None,
        typer.Option(
            "--snapshot-dir",
            help="The local snapshot directory, reused between runs when it matches the "
            f"store. Default: ${CACHE_ENV} or ~/.cache/receipt-events, then <store hash>.",
        ),
    ] = None,
    to: ToOption = None,
    keep: Annotated[int, typer.Option("--keep", min=1, help="Snapshots to retain.")] = 5,
    lease_table: LeaseTableOption = None,
    lease_ttl: LeaseTtlOption = 300.0,
    deltas: DeltasOption = ".",
    delta_cache: DeltaCacheOption = None,
    delta_cache_max_mb: DeltaCacheMaxOption = DEFAULT_MAX_MB,
    store: StoreOption = None,
    json: JsonOption = False,
) -> None:
    """Lease, restore the latest snapshot, catch up with the log, publish if anything changed."""
    from projections.compaction import CompactOptions, compact
    from receipt_chroma.lease import leases_for
    from receipt_chroma.snapshots import open_snapshot_store

    snapshots = open_snapshot_store(snapshot_store)
    with opened_store(store) as event_store:
        result = compact(
            event_store,
            snapshots,
            leases_for(snapshot_store, lease_table),
            delta_source(deltas, delta_cache, delta_cache_max_mb),
            snapshot_dir or default_snapshot_dir(snapshot_store),
            CompactOptions(to=to, lease_ttl=lease_ttl, keep=keep),
        )
    if json:
        emit_json(msgspec.to_builtins(result))
    elif result.published:
        console.print(
            f"published {result.key} at position {result.position} "
            f"({result.applied} events applied, lease token {result.token})"
        )
    else:
        console.print(f"nothing new: {snapshot_store} is at position {result.position}")
