"""Snapshot store on S3 (``s3://bucket/prefix``); the endpoint comes from ``AWS_ENDPOINT_URL*``.

The pointer is swapped with S3 conditional writes: ``If-Match`` on the ETag the publisher
read, ``If-None-Match: *`` for the very first one. A precondition failure means someone else
published first, and is reported as such, never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from receipt_chroma.snapshots.backend import (
    BucketMissing,
    PointerConflict,
    SnapshotMissing,
    StoredObject,
)

POINTER = "latest.json"
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_CONFLICT = frozenset({"412", "PreconditionFailed", "409", "ConditionalRequestConflict"})


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (bucket, "some/prefix")."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not an s3:// URL")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{url!r} names no bucket")
    return bucket, prefix.strip("/")


def s3_client() -> Any:
    import boto3

    return boto3.client("s3")


def is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _MISSING


@contextmanager
def bucket_must_exist(bucket: str) -> Iterator[None]:
    """Turn S3's NoSuchBucket (as a client error, or inside boto3's transfer errors, which
    only keep its text) into :class:`BucketMissing`."""
    try:
        yield
    except Exception as error:
        code = (
            error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
        )
        if code == "NoSuchBucket" or (code is None and "NoSuchBucket" in str(error)):
            raise BucketMissing(bucket) from None
        raise


class S3SnapshotBackend:
    def __init__(self, url: str, client: Any | None = None) -> None:
        self.url = url.rstrip("/")
        self.bucket, self.prefix = split_s3_url(url)
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, source: Path) -> None:
        with bucket_must_exist(self.bucket):
            self.client.upload_file(str(source), self.bucket, self._key(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        with bucket_must_exist(self.bucket):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def copy(self, source: str, target: str) -> None:
        with bucket_must_exist(self.bucket):
            try:
                self.client.copy(
                    {"Bucket": self.bucket, "Key": self._key(source)},
                    self.bucket,
                    self._key(target),
                )
            except ClientError as error:
                if is_missing(error):
                    raise SnapshotMissing(f"{self.url}/{source} does not exist") from None
                raise

    def get_file(self, key: str, target: Path) -> None:
        with bucket_must_exist(self.bucket):
            try:
                self.client.download_file(self.bucket, self._key(key), str(target))
            except ClientError as error:
                if is_missing(error):
                    raise SnapshotMissing(f"{self.url}/{key} does not exist") from None
                raise

    def get_bytes(self, key: str) -> bytes:
        with bucket_must_exist(self.bucket):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as error:
                if is_missing(error):
                    raise SnapshotMissing(f"{self.url}/{key} does not exist") from None
                raise
            return bytes(response["Body"].read())

    def list_keys(self, prefix: str) -> list[str]:
        with bucket_must_exist(self.bucket):
            strip = len(self.prefix) + 1 if self.prefix else 0
            keys = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys += [item["Key"][strip:] for item in page.get("Contents", [])]
            return sorted(keys)

    def delete(self, keys: list[str]) -> None:
        with bucket_must_exist(self.bucket):
            for start in range(0, len(keys), 1000):
                chunk = [{"Key": self._key(key)} for key in keys[start : start + 1000]]
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                )

    def list_objects(self, prefix: str) -> list[StoredObject]:
        with bucket_must_exist(self.bucket):
            strip = len(self.prefix) + 1 if self.prefix else 0
            found = []
            objects = self.client.get_paginator("list_objects_v2")
            for page in objects.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                found += [
                    StoredObject(
                        item["Key"][strip:], int(item["Size"]), item["LastModified"].timestamp()
                    )
                    for item in page.get("Contents", [])
                ]
            uploads = self.client.get_paginator("list_multipart_uploads")
            for page in uploads.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for upload in page.get("Uploads", []):
                    if not upload["Key"].startswith(self._key(prefix)):
                        continue
                    found.append(
                        StoredObject(
                            upload["Key"][strip:],
                            self._uploaded(upload["Key"], upload["UploadId"]),
                            upload["Initiated"].timestamp(),
                            upload=upload["UploadId"],
                        )
                    )
            return sorted(found, key=lambda stored: (stored.key, stored.upload or ""))

    def _uploaded(self, key: str, upload: str) -> int:
        """The bytes an incomplete multipart upload holds (its parts so far)."""
        paginator = self.client.get_paginator("list_parts")
        return sum(
            int(part["Size"])
            for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload)
            for part in page.get("Parts", [])
        )

    def remove(self, objects: list[StoredObject]) -> None:
        self.delete([stored.key for stored in objects if stored.upload is None])
        with bucket_must_exist(self.bucket):
            for stored in objects:
                if stored.upload is None:
                    continue
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=self._key(stored.key), UploadId=stored.upload
                    )
                except ClientError as error:
                    if str(error.response.get("Error", {}).get("Code")) != "NoSuchUpload":
                        raise  # NoSuchUpload: completed or aborted meanwhile

    def read_pointer(self) -> tuple[bytes, str] | None:
        with bucket_must_exist(self.bucket):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(POINTER))
            except ClientError as error:
                if is_missing(error):
                    return None
                raise
            return bytes(response["Body"].read()), str(response["ETag"])

    def write_pointer(self, data: bytes, expected: str | None) -> None:
        with bucket_must_exist(self.bucket):
            condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._key(POINTER), Body=data, **condition
                )
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code"))
                if code in _CONFLICT or (expected is not None and code in _MISSING):
                    raise PointerConflict(
                        f"{self.url}/{POINTER} changed since it was read (someone else published)"
                    ) from None
                raise
