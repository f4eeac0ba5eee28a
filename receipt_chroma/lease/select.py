"""Which lease guards publishing to a snapshot store: a DynamoDB item for S3, a file for a
local store (one rule for the command line and the projector Lambda)."""

from __future__ import annotations

from pathlib import Path

from receipt_chroma.lease.dynamodb import DynamoDBLeases
from receipt_chroma.lease.file import FileLeases
from receipt_chroma.lease.interface import Leases

# the variable naming the lease table: its current name first, then the name before 0.2
LEASE_TABLE_ENVS = ("RECEIPT_EVENTS_LEASE_TABLE", "RECEIPT_EVENTS_LOCK_TABLE")


class LeaseTableRequired(ValueError):
    """An ``s3://`` snapshot store was given without a lease table."""

    def __init__(self, snapshot_store: str) -> None:
        super().__init__(
            f"publishing to {snapshot_store} needs a DynamoDB lease table: --lease-table NAME "
            f"or ${LEASE_TABLE_ENVS[0]} (create one with `receipt-events lease create-table`)"
        )


def leases_for(snapshot_store: str, lease_table: str | None) -> Leases:
    """The leases of a snapshot store: ``lease_table`` in DynamoDB for ``s3://``, else files
    beside the store."""
    if snapshot_store.startswith("s3://"):
        if not lease_table:
            raise LeaseTableRequired(snapshot_store)
        return DynamoDBLeases(lease_table)
    return FileLeases(Path(snapshot_store))
