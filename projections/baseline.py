"""The embeddings baseline: the old system's Chroma snapshot, adopted once (SPEC §11).

``SRC`` is a Chroma directory holding ``lines`` and/or ``words``, or the old system's layout
(local or ``s3://``): ``<collection>/snapshot/latest-pointer.txt`` naming a version under
``<collection>/snapshot/timestamped/<version>/``. Each collection's records are read, written
once as a delta under the delta root at a location named by their digest
(``baseline/<digest>/<collection>``: immutable, content-addressed, so adopting the same
snapshot again writes nothing), and described by one :class:`EmbeddingsAdopted` event.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from receipt_chroma.client import COLLECTIONS, CollectionName, open_chroma
from receipt_chroma.deltas import TARBALL_NAME, Delta, DeltaError, DeltaSources, LocalDeltaSource
from receipt_chroma.writer import Upsert, upsert
from receipt_events.backfill.errors import BackfillError
from receipt_events.events import BackfillSource, EmbeddingsAdopted

BASELINE_ROOT = "baseline"
POINTER = "snapshot/latest-pointer.txt"


class BaselineError(BackfillError):
    """The snapshot to adopt cannot be read; the message names it and what is wrong."""


def adopt_baseline(
    src: str, delta_root: str, *, table: str, s3: Any | None = None
) -> EmbeddingsAdopted:
    """Copy the snapshot's collections to the delta root (once) and describe them as an event."""
    with tempfile.TemporaryDirectory(prefix="receipt-events-baseline-") as scratch:
        directories = _local_collections(src, Path(scratch), s3)
        read = [_read(src, path, collection) for collection, path in directories.items()]
        deltas = [delta for delta in read if delta is not None]
        if not any(delta.records for delta in deltas):
            raise BaselineError(f"{src}: the snapshot holds no records in 'lines' or 'words'")
        digest = _digest(deltas)
        locations: dict[str, str] = {}
        sources = DeltaSources(delta_root)
        for delta in deltas:
            location = f"{BASELINE_ROOT}/{digest.removeprefix('sha256:')}/{delta.collection}"
            if not _exists(location, delta_root, sources):
                _write(delta, location, delta_root, Path(scratch), sources)
            locations[delta.collection] = location
    return EmbeddingsAdopted(
        source=BackfillSource(via="snapshot", table=table, read_at=time.time()),
        snapshot=src,
        lines_delta=locations.get("lines"),
        words_delta=locations.get("words"),
        digest=digest,
    )


def _digest(deltas: list[Delta]) -> str:
    hasher = hashlib.sha256(b"receipt-events baseline v1\n")
    for delta in sorted(deltas, key=lambda d: d.collection):
        hasher.update(f"{delta.collection} {delta.digest}\n".encode())
    return f"sha256:{hasher.hexdigest()}"


def _read(src: str, path: Path, collection: CollectionName) -> Delta | None:
    """One collection's records (read from a private copy), None if the snapshot lacks it."""
    try:
        return LocalDeltaSource().read(str(path), collection)
    except DeltaError as error:
        if error.problem == f"has no {collection!r} collection":
            return None
        raise BaselineError(f"{src}: {collection}: {error.problem}") from None


def _local_collections(src: str, scratch: Path, s3: Any | None) -> dict[CollectionName, Path]:
    """Each collection the snapshot holds, as a local Chroma directory."""
    if src.startswith("s3://"):
        return _from_s3(src, scratch, s3)
    root = Path(src)
    if (root / "chroma.sqlite3").is_file():
        with open_chroma(root, create=False) as chroma:
            present = [name for name in COLLECTIONS if chroma.has_collection(name)]
        if not present:
            raise BaselineError(
                f"{src}: a Chroma directory without a 'lines' or 'words' collection"
            )
        return dict.fromkeys(present, root)
    found: dict[CollectionName, Path] = {}
    for collection in COLLECTIONS:
        pointer = root / collection / POINTER
        if pointer.is_file():
            version = pointer.read_text().strip()
            found[collection] = root / collection / "snapshot" / "timestamped" / version
    if not found:
        raise BaselineError(
            f"{src}: neither a Chroma directory (chroma.sqlite3) nor the old system's layout "
            f"(lines/{POINTER} or words/{POINTER})"
        )
    return found


def _from_s3(src: str, scratch: Path, s3: Any | None) -> dict[CollectionName, Path]:
    from botocore.exceptions import ClientError

    from receipt_chroma.snapshots.s3 import is_missing, s3_client, split_s3_url

    client = s3 or s3_client()
    bucket, prefix = split_s3_url(src.rstrip("/"))
    base = f"{prefix}/" if prefix else ""
    found: dict[CollectionName, Path] = {}
    for collection in COLLECTIONS:
        try:
            body = client.get_object(Bucket=bucket, Key=f"{base}{collection}/{POINTER}")["Body"]
        except ClientError as error:
            if is_missing(error):
                continue
            raise BaselineError(f"{src}: cannot read {collection}/{POINTER}: {error}") from None
        version = body.read().decode().strip()
        found[collection] = _download(
            client,
            bucket,
            f"{base}{collection}/snapshot/timestamped/{version}",
            scratch / collection,
        )
    if found:
        return found
    directory = _download(client, bucket, prefix, scratch / "snapshot")
    return _local_collections(str(directory), scratch, None)


def _download(client: Any, bucket: str, prefix: str, into: Path) -> Path:
    prefix = prefix.strip("/")
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/"
    ):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) + 1 :]
            if not relative or relative.startswith("/") or ".." in relative.split("/"):
                raise BaselineError(f"s3://{bucket}/{prefix}/: unsafe key {item['Key']!r}")
            target = into / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, item["Key"], str(target))
            count += 1
    if not count:
        raise BaselineError(f"nothing at s3://{bucket}/{prefix}/")
    return into


def _exists(location: str, delta_root: str, sources: DeltaSources) -> bool:
    """Whether the copy is already there (written by an earlier adoption of this snapshot);
    an S3 error is raised, never taken for "absent" or "present"."""
    if not delta_root.startswith("s3://"):
        return (Path(delta_root) / location).exists()
    from botocore.exceptions import ClientError

    from receipt_chroma.snapshots.s3 import split_s3_url

    bucket, key = split_s3_url(sources.s3.url_for(location))
    try:
        listed = sources.s3.client.list_objects_v2(Bucket=bucket, Prefix=f"{key}/", MaxKeys=1)
    except ClientError as error:
        raise BaselineError(f"cannot look for s3://{bucket}/{key}/: {error}") from None
    return bool(listed.get("KeyCount", 0))


def _write(
    delta: Delta, location: str, delta_root: str, scratch: Path, sources: DeltaSources
) -> None:
    """Write the records as a delta: a Chroma directory (local root) or a tarball (S3 root)."""
    built = scratch / "written" / delta.collection
    with open_chroma(built, create=True) as chroma:
        collection = chroma.collection(delta.collection)
        upsert(collection, [Upsert(record) for record in delta.records], chroma.max_batch_size())
    if delta_root.startswith("s3://"):
        from receipt_chroma.snapshots.s3 import split_s3_url

        bucket, key = split_s3_url(sources.s3.url_for(location))
        tarball = scratch / "written" / f"{delta.collection}.tar.gz"
        with tarfile.open(tarball, "w:gz") as archive:
            archive.add(built, arcname=".")
        sources.s3.client.upload_file(str(tarball), bucket, f"{key}/{TARBALL_NAME}")
        return
    target = Path(delta_root) / location
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(built, partial)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(target)  # whole or not at all
