"""A snapshot store and its publish lease, on either backend, as the snapshot tests use them.

* ``local``: a snapshot store in a directory, its lease a :class:`FileLeases` beside it;
* ``s3``: a snapshot store at ``s3://<bucket>/snapshots`` on the moto server (over HTTP), its
  lease a :class:`DynamoDBLeases` item in a table on DynamoDB Local.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from receipt_chroma.lease import Leases
from receipt_chroma.snapshots import SnapshotStore, open_snapshot_store
from tests.support.clock import FakeClock
from tests.support.lease_records import LeaseRecord, LeaseRecords

# The snapshot store backends, for ``@pytest.fixture(params=BACKENDS)``: S3 needs the AWS
# test services (the ``aws`` marker).
BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.aws)]


@dataclass
class Site:
    """One backend's snapshot store and publish lease, with handles made as other processes
    would make them."""

    backend: str
    url: str
    clock: FakeClock
    _new_locks: Callable[[], Leases]
    records: LeaseRecords

    def store(self) -> SnapshotStore:
        """A fresh handle on the store (on S3: its own client)."""
        return open_snapshot_store(self.url)

    def locks(self) -> Leases:
        """A fresh handle on the lease (on DynamoDB: its own client), on the test's clock."""
        return self._new_locks()

    def lock_record(self, name: str) -> LeaseRecord | None:
        """The lease's stored record, read directly."""
        return self.records.record(name)
