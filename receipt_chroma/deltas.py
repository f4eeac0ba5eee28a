"""Embedding deltas: small Chroma directories holding one run's ``lines`` or ``words`` records.

A delta location is a path (absolute, or relative to the delta root) or ``s3://bucket/prefix``,
in directory layout (the Chroma files themselves) or as ``<prefix>/delta.tar.gz``. A delta is
read from a private copy, never opened in place: opening a Chroma directory can write to it,
and a delta referenced by the log must stay as it was. Its content digest (records sorted by
id) is what the projection records on first merge, so a changed delta is detected later.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import msgspec

from receipt_chroma.client import CollectionName, open_chroma
from receipt_chroma.digest import canonical_line, dump_collection
from receipt_chroma.provenance import Provenance, provenance_from_configuration
from receipt_chroma.records import ChromaRecord

TARBALL_NAME = "delta.tar.gz"


class DeltaError(Exception):
    """A delta that cannot be used; ``missing`` tells a missing delta from an unreadable one."""

    def __init__(self, location: str, problem: str, *, missing: bool = False) -> None:
        super().__init__(f"delta {location}: {problem}")
        self.location = location
        self.problem = problem
        self.missing = missing


class Delta(msgspec.Struct, frozen=True):
    location: str
    collection: CollectionName
    records: list[ChromaRecord]  # sorted by id
    digest: str  # "sha256:<hex>" of the records
    # the model its producer says made the vectors (not part of ``digest``: a digest names
    # the records, and deltas merged before provenance was read must keep theirs)
    provenance: Provenance = Provenance()


class DeltaSource(Protocol):
    """Where the projection gets deltas from."""

    def read(self, location: str, collection: CollectionName) -> Delta:
        """One collection of a delta, with its digest; raises :class:`DeltaError`."""


# a delta's place and a cheap stamp of its current version (see LocalDeltaSource.fingerprint)
Fingerprint = tuple[str, str]


class LocalDeltaSource:
    """Deltas on the local file system; relative locations are resolved against ``root``."""

    settle_seconds = 2.0  # see fingerprint

    def __init__(self, root: Path | str = ".") -> None:
        self.root = Path(root)

    def read(self, location: str, collection: CollectionName) -> Delta:
        return read_chroma_delta(self.fetch, location, collection)

    def path(self, location: str) -> Path:
        path = Path(location)
        return path if path.is_absolute() else self.root / path

    def fingerprint(self, location: str) -> Fingerprint | None:
        """The delta's resolved path and a stamp of every file under it (size, mtime, ctime,
        inode), without opening Chroma; None when nothing is there. Any later write, copy or
        rename changes the stamp (ctime cannot be set back), which is what lets the delta
        cache trust an entry recorded under the same stamp. File times are coarse (a clock
        tick; a second on some file systems), so a delta changed less than
        ``settle_seconds`` ago has no stamp yet: its next change could carry the same times."""
        path = self.path(location)
        top = str(path)
        try:
            if path.is_file():
                files = [(path.name, top)]
            else:
                files = [
                    (os.path.relpath(file, top), file)
                    for folder, _, names in os.walk(top)
                    for file in (os.path.join(folder, name) for name in names)
                ]
            stats = [(name, os.stat(file)) for name, file in sorted(files)]
            where = str(path.resolve())
        except OSError:
            return None
        settled = time.time_ns() - int(self.settle_seconds * 1e9)
        if not stats or max(max(s.st_mtime_ns, s.st_ctime_ns) for _, s in stats) > settled:
            return None
        stamp = "\n".join(
            f"{name} {s.st_size} {s.st_mtime_ns} {s.st_ctime_ns} {s.st_ino}" for name, s in stats
        )
        return f"file://{where}", stamp

    def fetch(self, location: str, into: Path) -> Path:
        path = self.path(location)
        if path.is_file() and path.name.endswith(".tar.gz"):
            return extract_tarball(path, into, location)
        if path.is_dir():
            if (path / TARBALL_NAME).is_file():
                return extract_tarball(path / TARBALL_NAME, into, location)
            if (path / "chroma.sqlite3").is_file():
                target = into / "delta"
                shutil.copytree(path, target)
                return target
            raise DeltaError(location, f"{path} holds neither chroma.sqlite3 nor {TARBALL_NAME}")
        raise DeltaError(location, f"not found at {path}", missing=True)


def extract_tarball(tarball: Path, into: Path, location: str) -> Path:
    """Extract a delta tarball, refusing absolute paths, ``..``, links and special files."""
    target = into / "delta"
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive.getmembers():
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise DeltaError(location, f"unsafe path {member.name!r} in {tarball.name}")
                if not (member.isfile() or member.isdir()):
                    raise DeltaError(location, f"{member.name!r} in {tarball.name} is not a file")
            archive.extractall(target, filter="data")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DeltaError(location, f"unreadable {tarball.name}: {error}") from None
    if not (target / "chroma.sqlite3").is_file():
        raise DeltaError(location, f"{tarball.name} holds no chroma.sqlite3")
    return target


def delta_digest(records: list[ChromaRecord]) -> str:
    hasher = hashlib.sha256(b"receipt-events delta digest v1\n")
    for record in records:
        hasher.update(canonical_line(record) + b"\n")
        hasher.update(len(record.embedding).to_bytes(4, "little") + record.embedding)
    return f"sha256:{hasher.hexdigest()}"


def read_chroma_delta(
    fetch: Callable[[str, Path], Path], location: str, collection: CollectionName
) -> Delta:
    """Read one collection of a Chroma-format delta from a private copy made by ``fetch``."""
    with tempfile.TemporaryDirectory(prefix="receipt-events-delta-") as scratch:
        directory = fetch(location, Path(scratch))
        try:
            chroma = open_chroma(directory, create=False)
        except Exception as error:
            raise DeltaError(location, f"not a readable Chroma directory: {error}") from None
        try:
            if not chroma.has_collection(collection):
                raise DeltaError(location, f"has no {collection!r} collection")
            found = chroma.collection(collection)
            provenance = provenance_from_configuration(found.configuration_json)
            records = dump_collection(found)
        except DeltaError:
            raise
        except Exception as error:
            raise DeltaError(location, f"cannot read {collection!r}: {error}") from None
        finally:
            chroma.close()
    return Delta(
        location=location,
        collection=collection,
        records=records,
        digest=delta_digest(records),
        provenance=provenance,
    )


class MemoryDeltaSource:
    """Deltas held in memory (tests, benchmarks): location → collection → records."""

    def __init__(self) -> None:
        self.deltas: dict[tuple[str, str], list[ChromaRecord]] = {}
        self.provenances: dict[tuple[str, str], Provenance] = {}

    def put(
        self,
        location: str,
        collection: CollectionName,
        records: list[ChromaRecord],
        provenance: Provenance | None = None,
    ) -> None:
        self.deltas[(location, collection)] = sorted(records, key=lambda record: record.id)
        self.provenances[(location, collection)] = provenance or Provenance()

    def read(self, location: str, collection: CollectionName) -> Delta:
        records = self.deltas.get((location, collection))
        if records is None:
            raise DeltaError(location, "not found", missing=True)
        provenance = self.provenances.get((location, collection), Provenance())
        return Delta(location, collection, list(records), delta_digest(records), provenance)


class S3DeltaSource:
    """Deltas on S3: ``s3://bucket/prefix`` in directory layout or ``<prefix>/delta.tar.gz``.

    A missing delta is reported as missing whatever S3 answers for it (``404`` from a HEAD,
    ``NoSuchKey`` from a GET): the old system treated one of the two as an error and lost
    every directory-layout delta that way.
    """

    def __init__(self, root: str | None = None, client: Any | None = None) -> None:
        self.root = root.rstrip("/") if root else None
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from receipt_chroma.snapshots.s3 import s3_client

            self._client = s3_client()
        return self._client

    def url_for(self, location: str) -> str:
        if location.startswith("s3://"):
            return location.rstrip("/")
        if self.root is None:
            raise DeltaError(location, "a relative location needs an s3:// delta root")
        return f"{self.root}/{location.strip('/')}"

    def read(self, location: str, collection: CollectionName) -> Delta:
        return read_chroma_delta(self.fetch, location, collection)

    def fingerprint(self, location: str) -> Fingerprint | None:
        """The delta's URL and the key, ETag, size and LastModified of every object under it
        (one listing, covering both layouts); None when nothing is there or S3 says no."""
        from botocore.exceptions import BotoCoreError, ClientError

        from receipt_chroma.snapshots.s3 import split_s3_url

        try:
            bucket, prefix = split_s3_url(self.url_for(location))
            probe = prefix if prefix.endswith(".tar.gz") else f"{prefix}/"
            stamps = [
                f"{item['Key']} {item.get('ETag')} {item.get('Size')} {item.get('LastModified')}"
                for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=probe
                )
                for item in page.get("Contents", [])
                if probe.endswith("/") or item["Key"] == probe
            ]
        except (DeltaError, ValueError, ClientError, BotoCoreError):
            return None
        return (f"s3://{bucket}/{prefix}", "\n".join(sorted(stamps))) if stamps else None

    def fetch(self, location: str, into: Path) -> Path:
        from botocore.exceptions import ClientError

        from receipt_chroma.snapshots.s3 import is_missing, split_s3_url

        bucket, prefix = split_s3_url(self.url_for(location))
        tarball_key = prefix if prefix.endswith(".tar.gz") else f"{prefix}/{TARBALL_NAME}"
        try:
            self.client.download_file(bucket, tarball_key, str(into / TARBALL_NAME))
            return extract_tarball(into / TARBALL_NAME, into, location)
        except ClientError as error:
            if not is_missing(error):
                raise DeltaError(
                    location, f"cannot read s3://{bucket}/{tarball_key}: {error}"
                ) from None
        if prefix.endswith(".tar.gz"):
            raise DeltaError(location, f"s3://{bucket}/{tarball_key} does not exist", missing=True)
        target = into / "delta"
        found = 0
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/"):
                for item in page.get("Contents", []):
                    relative = PurePosixPath(item["Key"][len(prefix) + 1 :])
                    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                        raise DeltaError(
                            location, f"unsafe key {item['Key']!r} under the delta prefix"
                        )
                    destination = target / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    self.client.download_file(bucket, item["Key"], str(destination))
                    found += 1
        except ClientError as error:  # no bucket, a file gone meanwhile, access denied: not raw
            code = str(error.response.get("Error", {}).get("Code"))
            raise DeltaError(
                location,
                f"cannot read s3://{bucket}/{prefix}/: {error}",
                missing=is_missing(error) or code == "NoSuchBucket",
            ) from None
        if not found:
            raise DeltaError(location, f"nothing at s3://{bucket}/{prefix}/", missing=True)
        if not (target / "chroma.sqlite3").is_file():
            raise DeltaError(location, f"s3://{bucket}/{prefix}/ holds no chroma.sqlite3")
        return target


class DeltaSources:
    """The projection's delta source: ``s3://`` locations from S3, others from ``root``.

    ``root`` (where relative locations live) is a directory or an ``s3://bucket/prefix``.
    """

    def __init__(self, root: str = ".") -> None:
        self.s3 = S3DeltaSource(root if root.startswith("s3://") else None)
        self.local = None if root.startswith("s3://") else LocalDeltaSource(root)

    def read(self, location: str, collection: CollectionName) -> Delta:
        if location.startswith("s3://") or self.local is None:
            return self.s3.read(location, collection)
        return self.local.read(location, collection)

    def fingerprint(self, location: str) -> Fingerprint | None:
        if location.startswith("s3://") or self.local is None:
            return self.s3.fingerprint(location)
        return self.local.fingerprint(location)

    def absent(self, location: str) -> str | None:
        """Why a delta is certainly not there (a cheap look, no Chroma), or None if it may be.

        For the backfill, which checks every run of a table: a present delta is still read
        and verified in full when the projection merges it.
        """
        if location.startswith("s3://") or self.local is None:
            return self._absent_on_s3(location)
        path = self.local.path(location)
        if path.is_file() or (path / TARBALL_NAME).is_file() or (path / "chroma.sqlite3").is_file():
            return None
        return f"not found at {path}"

    def _absent_on_s3(self, location: str) -> str | None:
        """Missing only when S3 says so: neither ``<prefix>/delta.tar.gz`` (or the tarball
        itself) nor any key under ``<prefix>/``. An S3 error is no evidence: None."""
        from botocore.exceptions import ClientError

        from receipt_chroma.snapshots.s3 import split_s3_url

        try:
            bucket, prefix = split_s3_url(self.s3.url_for(location))
        except DeltaError as error:
            return error.problem
        prefix = prefix.rstrip("/")
        probe = prefix if prefix.endswith(".tar.gz") else f"{prefix}/"
        try:
            listed = self.s3.client.list_objects_v2(Bucket=bucket, Prefix=probe, MaxKeys=1)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code"))
            return f"bucket {bucket} does not exist" if code == "NoSuchBucket" else None
        return None if listed.get("KeyCount", 0) else f"nothing at s3://{bucket}/{probe}"
