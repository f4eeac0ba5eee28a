"""Embedding deltas: small Chroma directories holding one run's ``lines`` or ``words`` records.

A delta location is a path (absolute, or relative to the delta root) or ``s3://bucket/prefix``,
in directory layout (the Chroma files themselves) or as ``<prefix>/delta.tar.gz``. A delta is
read from a private copy, never opened in place: opening a Chroma directory can write to it,
and a delta referenced by the log must stay as it was. Its content digest (records sorted by
id) is what the projection records on first merge, so a changed delta is detected later.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Protocol

import msgspec

from receipt_chroma.client import CollectionName, open_chroma
from receipt_chroma.digest import canonical_line, dump_collection
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


class DeltaSource(Protocol):
    """Where the projection gets deltas from."""

    def read(self, location: str, collection: CollectionName) -> Delta:
        """One collection of a delta, with its digest; raises :class:`DeltaError`."""


class LocalDeltaSource:
    """Deltas on the local file system; relative locations are resolved against ``root``."""

    def __init__(self, root: Path | str = ".") -> None:
        self.root = Path(root)

    def read(self, location: str, collection: CollectionName) -> Delta:
        return read_chroma_delta(self.fetch, location, collection)

    def fetch(self, location: str, into: Path) -> Path:
        path = Path(location)
        if not path.is_absolute():
            path = self.root / path
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
            records = dump_collection(chroma.collection(collection))
        except DeltaError:
            raise
        except Exception as error:
            raise DeltaError(location, f"cannot read {collection!r}: {error}") from None
        finally:
            chroma.close()
    return Delta(
        location=location, collection=collection, records=records, digest=delta_digest(records)
    )


class MemoryDeltaSource:
    """Deltas held in memory (tests, benchmarks): location → collection → records."""

    def __init__(self) -> None:
        self.deltas: dict[tuple[str, str], list[ChromaRecord]] = {}

    def put(self, location: str, collection: CollectionName, records: list[ChromaRecord]) -> None:
        self.deltas[(location, collection)] = sorted(records, key=lambda record: record.id)

    def read(self, location: str, collection: CollectionName) -> Delta:
        records = self.deltas.get((location, collection))
        if records is None:
            raise DeltaError(location, "not found", missing=True)
        return Delta(location, collection, list(records), delta_digest(records))
