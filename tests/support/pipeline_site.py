"""Where one reliability case runs, and the pipeline's steps run there in this process.

A :class:`Site` is one case's event store, snapshot store, publish lease, compactor cache and
deltas; :meth:`Site.cli` runs a step as the ``receipt-events`` CLI from the virtualenv (a
subprocess, so it can be killed), while :func:`ingest_file`, :func:`project_dir` and
:func:`compact_once` run the same package code in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from projections.compaction import CompactOptions, CompactResult, compact, lease_name
from projections.runner import catch_up
from projections.snapshot_dir import open_snapshot
from receipt_chroma.deltas import DeltaSources
from receipt_chroma.lease import DynamoDBLeases, FileLeases, Leases
from receipt_chroma.snapshots import SnapshotStore, open_snapshot_store
from receipt_events.ingest import IngestSummary, ingest
from receipt_events.records import read_input
from receipt_events.store import open_store
from tests.support.lease_records import (
    DynamoDBLeaseRecords,
    FileLeaseRecords,
    LeaseRecord,
    LeaseRecords,
)

CLI = Path(sys.executable).with_name("receipt-events")
FAULT_ENV = "RECEIPT_EVENTS_FAULT"
INGEST_BATCH = 8  # events per append transaction: several commits per ingest
PROJECT_BATCH = 6  # events per projection batch: several batches per project
LOCK_TTL = 5.0  # the CLI's minimum: a dead compactor's lock is free again 5 s later
STEP_TIMEOUT = 300


@dataclass
class Site:
    """Where one case runs: its event store, snapshot store, lock, cache and deltas."""

    root: Path
    store_url: str
    snapshots_url: str
    deltas: Path
    lock_table: str | None = None
    runs: list[str] = field(default_factory=list)  # what ran, for failure messages

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def snapshot_store(self) -> SnapshotStore:
        return open_snapshot_store(self.snapshots_url)

    def locks(self, clock: Callable[[], float] = time.time) -> Leases:
        if self.lock_table is not None:
            return DynamoDBLeases(self.lock_table, clock=clock)
        return FileLeases(Path(self.snapshots_url), clock=clock)

    @property
    def lock(self) -> str:
        return lease_name(self.snapshot_store())

    def lease_records(self) -> LeaseRecords:
        """Where the publish lease's record is stored, for reading it directly."""
        if self.lock_table is not None:
            return DynamoDBLeaseRecords(boto3.client("dynamodb"), self.lock_table)
        return FileLeaseRecords(Path(self.snapshots_url))

    def lock_record(self) -> LeaseRecord | None:
        """The publish lease's stored record (owner None once released), read directly."""
        return self.lease_records().record(self.lock)

    def env(self, fault: str | None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key != FAULT_ENV}
        env.update(
            RECEIPT_EVENTS_STORE=self.store_url,
            RECEIPT_EVENTS_DELTAS=str(self.deltas),
            RECEIPT_EVENTS_CACHE=str(self.root / "default-cache"),
            COLUMNS="200",
        )
        if self.lock_table is not None:
            env["RECEIPT_EVENTS_LOCK_TABLE"] = self.lock_table
        if fault is not None:
            env[FAULT_ENV] = fault
        return env

    def cli(self, *args: str | Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(CLI), *(str(arg) for arg in args)]
        self.runs.append(" ".join(argv[1:]) + (f"  [{FAULT_ENV}={fault}]" if fault else ""))
        return subprocess.run(
            argv,
            env=self.env(fault),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )


def ingest_file(site: Site, path: Path) -> IngestSummary:
    store = open_store(site.store_url)
    try:
        return ingest(store, read_input(path.read_bytes(), str(path)), batch_size=INGEST_BATCH)
    finally:
        store.close()


def project_dir(site: Site, directory: Path, batch_size: int) -> None:
    store = open_store(site.store_url)
    try:
        with open_snapshot(directory) as snapshot:
            catch_up(store, snapshot, DeltaSources(str(site.deltas)), batch_size=batch_size)
    finally:
        store.close()


def compact_once(site: Site) -> CompactResult:
    store = open_store(site.store_url)
    try:
        return compact(
            store,
            site.snapshot_store(),
            site.locks(),
            DeltaSources(str(site.deltas)),
            site.cache,
            CompactOptions(lease_ttl=LOCK_TTL),
        )
    finally:
        store.close()
