"""Writing DynamoDB exports to S3 (DYNAMODB_JSON), as AWS lays them out, for the backfill tests;
and spoiling them in the ways the reader must notice.

:func:`write_export` writes ``<root>/AWSDynamoDB/<ExportId>/`` with ``_started``,
``manifest-summary.json`` (the fields of AWS's documented example), ``manifest-files.json``
(JSON Lines: ``itemCount``, ``md5Checksum`` as base64 of the MD5 digest, ``etag``,
``dataFileS3Key`` as the full key in the bucket) and ``data/<name>.json.gz`` (gzip'd JSON Lines
of ``{"Item": ...}``). ``root`` is a local folder (standing for ``s3://bucket/<key_prefix>``)
or ``s3://bucket/prefix`` (written with the given boto3 S3 client, or one made from the
environment). The items are split into ``files`` consecutive runs, so reading the files in
manifest order gives them back in the order given; surplus files are empty, as AWS writes an
empty file for an empty partition.

The other helpers take the URL :func:`write_export` returned: :func:`edit_summary`,
:func:`edit_files_manifest`, :func:`corrupt_data_file` (bytes changed, manifest not),
:func:`replace_data_file` (new content, manifest MD5 updated, item count not),
:func:`remove` (a manifest or data file gone).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

SUMMARY = "manifest-summary.json"
FILES = "manifest-files.json"


class ExportFolder:
    """An export folder, local or on S3, read and written by paths relative to it."""

    def __init__(self, url: str, s3_client: Any | None = None) -> None:
        self.url = url.rstrip("/")
        self.is_s3 = self.url.startswith("s3://")
        if self.is_s3:
            self.bucket, _, self.prefix = self.url.removeprefix("s3://").partition("/")
            if s3_client is None:
                import boto3

                s3_client = boto3.client("s3")
        self.client = s3_client

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def write(self, relative: str, data: bytes) -> str:
        """Write ``data``; returns the object's ETag (S3's, or the hex MD5 locally)."""
        if self.is_s3:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self._key(relative), Body=data
            )
            return str(response["ETag"]).strip('"')
        path = Path(self.url) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return hashlib.md5(data).hexdigest()

    def read(self, relative: str) -> bytes:
        if self.is_s3:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(relative))
            return bytes(response["Body"].read())
        return (Path(self.url) / relative).read_bytes()

    def remove(self, relative: str) -> None:
        if self.is_s3:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(relative))
        else:
            (Path(self.url) / relative).unlink()

    def data_files(self) -> list[str]:
        """The data files' paths relative to the folder (``data/<name>``), in manifest order."""
        return [
            "data/" + entry["dataFileS3Key"].rsplit("/", 1)[1] for entry in self.files_manifest()
        ]

    def files_manifest(self) -> list[dict[str, Any]]:
        """The entries of ``manifest-files.json``."""
        lines = self.read(FILES).decode().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def md5_base64(data: bytes) -> str:
    """``md5Checksum`` as AWS writes it: base64 of the 16-byte MD5 digest."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def jsonl(items: list[dict[str, Any]]) -> bytes:
    """The uncompressed body of a data file: one ``{"Item": ...}`` per line."""
    return b"".join(
        json.dumps({"Item": item}, separators=(",", ":")).encode() + b"\n" for item in items
    )


def _export_id(export_time: str) -> str:
    millis = int(datetime.fromisoformat(export_time).timestamp() * 1000)
    return f"{millis:014d}-{os.urandom(4).hex()}"


def _file_name() -> str:
    return base64.b32encode(os.urandom(16)).decode("ascii").rstrip("=").lower() + ".json.gz"


def _split(items: list[dict[str, Any]], files: int) -> list[list[dict[str, Any]]]:
    size, extra = divmod(len(items), files)
    runs, start = [], 0
    for index in range(files):
        end = start + size + (1 if index < extra else 0)
        runs.append(items[start:end])
        start = end
    return runs


def write_export(
    items: list[dict[str, Any]],
    *,
    root: Path | str,
    table_arn: str,
    export_time: str,
    files: int = 2,
    s3_client: Any | None = None,
    export_id: str | None = None,
    key_prefix: str = "exports",
) -> str:
    """Write an export of ``items`` (DynamoDB typed JSON) under ``root``; returns its folder's
    URL or path, ``<root>/AWSDynamoDB/<ExportId>/``. ``key_prefix`` stands for the bucket
    prefix in the keys written for a local ``root`` (an S3 root's own prefix is used for S3)."""
    if files < 1:
        raise ValueError("an export has at least one data file")
    root_text = str(root).rstrip("/")
    export_id = export_id or _export_id(export_time)
    url = f"{root_text}/AWSDynamoDB/{export_id}"
    folder = ExportFolder(url, s3_client)
    if folder.is_s3:
        bucket = folder.bucket
        bucket_prefix = root_text.removeprefix("s3://").partition("/")[2]
    else:
        bucket, bucket_prefix = "local-export-bucket", key_prefix.strip("/")
    key_root = f"{bucket_prefix}/AWSDynamoDB/{export_id}".lstrip("/")

    folder.write("_started", b"")
    entries = []
    for run in _split(items, files):
        name = _file_name()
        body = gzip.compress(jsonl(run), mtime=0)
        etag = folder.write(f"data/{name}", body)
        entries.append(
            {
                "itemCount": len(run),
                "md5Checksum": md5_base64(body),
                "etag": etag,
                "dataFileS3Key": f"{key_root}/data/{name}",
            }
        )
    folder.write(FILES, b"".join(json.dumps(entry).encode() + b"\n" for entry in entries))
    summary = {
        "version": "2020-06-30",
        "exportArn": f"{table_arn}/export/{export_id}",
        "startTime": export_time,
        "endTime": export_time,
        "tableArn": table_arn,
        "tableId": "12345a12-abcd-123a-ab12-1234abc12345",
        "exportTime": export_time,
        "s3Bucket": bucket,
        "s3Prefix": bucket_prefix or None,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": f"{key_root}/{FILES}",
        "billedSizeBytes": 0,
        "itemCount": len(items),
        "outputFormat": "DYNAMODB_JSON",
    }
    folder.write(SUMMARY, json.dumps(summary, indent=2).encode())
    return url + "/"


def read_files_manifest(url: str, *, s3_client: Any | None = None) -> list[dict[str, Any]]:
    """The entries of the export's ``manifest-files.json``."""
    return ExportFolder(url, s3_client).files_manifest()


def edit_summary(
    url: str, edit: Callable[[dict[str, Any]], None], *, s3_client: Any | None = None
) -> None:
    """Rewrite ``manifest-summary.json`` after ``edit`` changed its object in place."""
    folder = ExportFolder(url, s3_client)
    summary = json.loads(folder.read(SUMMARY))
    edit(summary)
    folder.write(SUMMARY, json.dumps(summary, indent=2).encode())


def edit_files_manifest(
    url: str,
    edit: Callable[[list[dict[str, Any]]], None],
    *,
    s3_client: Any | None = None,
) -> None:
    """Rewrite ``manifest-files.json`` after ``edit`` changed its list of entries in place."""
    folder = ExportFolder(url, s3_client)
    entries = folder.files_manifest()
    edit(entries)
    folder.write(FILES, b"".join(json.dumps(entry).encode() + b"\n" for entry in entries))


def corrupt_data_file(url: str, index: int = 0, *, s3_client: Any | None = None) -> str:
    """Change one byte in the middle of data file ``index`` (the manifest keeps the old MD5);
    returns its path relative to the folder (``data/<name>``)."""
    folder = ExportFolder(url, s3_client)
    relative = folder.data_files()[index]
    body = bytearray(folder.read(relative))
    body[len(body) // 2] ^= 0xFF
    folder.write(relative, bytes(body))
    return relative


def replace_data_file(
    url: str,
    index: int,
    content: bytes,
    *,
    compress: bool = True,
    s3_client: Any | None = None,
) -> str:
    """Make data file ``index`` hold ``content`` (gzip'd unless ``compress`` is false) and put its
    MD5 in the manifest, leaving its ``itemCount`` as it was; returns ``data/<name>``."""
    folder = ExportFolder(url, s3_client)
    relative = folder.data_files()[index]
    body = gzip.compress(content, mtime=0) if compress else content
    folder.write(relative, body)

    def new_md5(entries: list[dict[str, Any]]) -> None:
        entries[index]["md5Checksum"] = md5_base64(body)

    edit_files_manifest(url, new_md5, s3_client=folder.client)
    return relative


def remove(url: str, relative: str, *, s3_client: Any | None = None) -> None:
    """Delete one file of the export folder (``manifest-summary.json``, ``data/<name>``...)."""
    ExportFolder(url, s3_client).remove(relative)
