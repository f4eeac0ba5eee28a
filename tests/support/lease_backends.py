"""The two lease backends as the lease suite drives them: DynamoDB Local and local files.

A :class:`Backend` makes lease handles (each with its own client, as separate processes
would have) on a clock the test chooses, and reads or tampers with a lease's stored record
directly (:mod:`tests.support.lease_records`), without going through the code under test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receipt_chroma.lease import DynamoDBLeases, FileLeases, Leases
from tests.aws.harness import AwsEnv
from tests.support.lease_records import (
    DynamoDBLeaseRecords,
    FileLeaseRecords,
    LeaseRecord,
    LeaseRecords,
)


@dataclass
class Backend:
    """One lease backend: new handles on a given clock, and its stored records."""

    name: str
    locks: Callable[[Callable[[], float]], Leases]
    records: LeaseRecords

    def raw(self, name: str) -> dict[str, Any] | None:
        """The lease's stored record exactly as stored, or None."""
        return self.records.raw(name)

    def record(self, name: str) -> LeaseRecord | None:
        """The lease's stored record decoded, or None."""
        return self.records.record(name)

    def steal(self, name: str) -> str:
        """Take the lease behind its holder's back; returns the thief's owner id."""
        return self.records.steal(name)


def dynamodb_backend(aws: AwsEnv, table: str) -> Backend:
    """Leases in ``table`` on DynamoDB Local; each handle gets a client of its own."""
    return Backend(
        "dynamodb",
        lambda clock: DynamoDBLeases(table, client=aws.client("dynamodb"), clock=clock),
        DynamoDBLeaseRecords(aws.client("dynamodb"), table),
    )


def file_backend(root: Path) -> Backend:
    """Leases in files under ``root``."""
    return Backend("file", lambda clock: FileLeases(root, clock=clock), FileLeaseRecords(root))
