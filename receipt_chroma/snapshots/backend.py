"""The storage primitives a snapshot store needs, and the errors they raise.

Two backends implement them (a local directory, an S3 prefix); everything else (publishing,
verified pulls, retention) is written once on top, in ``store.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import msgspec

from receipt_events.errors import MissingResource


class SnapshotMissing(Exception):
    """A key that is not in the store (S3 answers 404 or NoSuchKey: both mean this)."""


class PointerConflict(Exception):
    """The pointer changed since it was read: someone else published first."""


class BucketMissing(MissingResource):
    """The bucket of an ``s3://`` snapshot store does not exist."""

    def __init__(self, bucket: str) -> None:
        super().__init__(
            f"the bucket {bucket!r}",
            f"create it (`aws s3 mb s3://{bucket}`, or deploy/template.yaml) or check the URL",
        )
        self.bucket = bucket


class StoredObject(msgspec.Struct, frozen=True):
    """What the store holds under a key, as :meth:`SnapshotBackend.list_objects` finds it."""

    key: str
    size: int
    modified: float  # seconds since the epoch (the store's clock) of its last write
    upload: str | None = None  # S3 only: an incomplete multipart upload's id (no object yet)


class SnapshotBackend(Protocol):
    url: str

    def put_file(self, key: str, source: Path) -> None: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def copy(self, source: str, target: str) -> None:
        """Copy within the store, without the data passing through here; SnapshotMissing."""

    def get_file(self, key: str, target: Path) -> None:
        """Raises :class:`SnapshotMissing`."""

    def get_bytes(self, key: str) -> bytes:
        """Raises :class:`SnapshotMissing`."""

    def list_keys(self, prefix: str) -> list[str]: ...

    def delete(self, keys: list[str]) -> None: ...

    def list_objects(self, prefix: str) -> list[StoredObject]:
        """Everything stored under ``prefix``, with sizes and times, sorted by key: objects,
        and what interrupted writes leave (a local temporary file, an S3 multipart upload that
        was never completed), which :meth:`list_keys` does not show."""

    def remove(self, objects: list[StoredObject]) -> None:
        """Delete what :meth:`list_objects` listed (aborting incomplete uploads)."""

    def read_pointer(self) -> tuple[bytes, str] | None:
        """The pointer's bytes and a version tag for :meth:`write_pointer`, or None."""

    def write_pointer(self, data: bytes, expected: str | None) -> None:
        """Replace the pointer only if it is still at version ``expected`` (None: absent).

        Raises :class:`PointerConflict` otherwise. Atomic: readers see old or new, never a mix.
        """
