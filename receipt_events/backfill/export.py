"""Reading a DynamoDB export to S3 in the DYNAMODB_JSON format (SPEC §11, ``backfill --export``).

An export folder (``s3://bucket/prefix/AWSDynamoDB/<ExportId>/``, or a local folder with the
same layout, e.g. an export already downloaded) holds, as AWS's developer guide ("DynamoDB
table export output format") documents it:

* ``manifest-summary.json``: one JSON object; read here are ``exportArn``, ``tableArn``,
  ``exportTime`` (ISO 8601, e.g. ``"2020-11-04T07:28:34.028Z"``), ``itemCount``,
  ``outputFormat`` (``DYNAMODB_JSON`` or ``ION``; only the first is read) and, when present,
  ``exportType`` (only ``FULL_EXPORT``: an incremental export holds changes, not the table);
* ``manifest-files.json``: JSON Lines, one object per data file: ``itemCount``,
  ``md5Checksum`` (base64 of the file's MD5 digest, as in AWS's example
  ``"sQMSpEILNgoQmarvDFonGQ=="``; 32 hex digits are accepted too), ``etag``, ``dataFileS3Key``;
* ``data/<name>.json.gz``: gzip'd JSON Lines, one ``{"Item": {...}}`` per line, the item in
  DynamoDB's typed JSON (``{"PK": {"S": "..."}}``). An empty partition gives an empty file.

The files manifest is read from the folder itself, and a data file is found under the folder
by its key's ``data/<name>`` tail (:func:`data_file_key`): AWS writes ``dataFileS3Key`` as a
key in the bucket (its documented example leaves the export prefix out), and an export copied
or downloaded elsewhere keeps only its folder layout. So the folder is all that is trusted to
be where it is; the manifests say what must be in it.

boto3 is imported only when an ``s3://`` export is opened without a client; its endpoint,
region and credentials come from the environment (``AWS_ENDPOINT_URL_S3`` and friends).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any

import msgspec

from receipt_events.backfill.errors import BackfillError

SUMMARY = "manifest-summary.json"
FILES = "manifest-files.json"
DATA = "data"
FORMAT = "DYNAMODB_JSON"
FULL_EXPORT = "FULL_EXPORT"
_CHUNK = 1 << 20
_S3_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class ExportError(BackfillError):
    """An export that cannot be read as one; the message names the file and what is wrong."""


class ExportFile(msgspec.Struct, frozen=True):
    """One data file as the files manifest lists it."""

    key: str  # ``dataFileS3Key``, as in the manifest
    item_count: int
    md5: str  # ``md5Checksum``, as in the manifest (base64, or hex)


class ExportManifest(msgspec.Struct, frozen=True):
    """An export folder whose two manifests were read and agree with each other."""

    root: str  # ``s3://bucket/prefix/AWSDynamoDB/<ExportId>`` or an absolute local path
    export_arn: str
    table_arn: str
    table_name: str
    export_time: float  # epoch seconds
    item_count: int
    files: list[ExportFile]  # in manifest order

    @property
    def export_id(self) -> str:
        """The ExportId: the end of ``exportArn`` (``.../export/<ExportId>``)."""
        return self.export_arn.rpartition("/export/")[2] or self.root.rsplit("/", 1)[-1]


# -- the manifests as written -----------------------------------------------------------------

_Count = Annotated[int, msgspec.Meta(ge=0)]


class _Summary(msgspec.Struct):
    exportArn: str
    tableArn: str
    exportTime: str
    itemCount: _Count
    outputFormat: str
    exportType: str | None = None


class _FileEntry(msgspec.Struct):
    itemCount: _Count
    md5Checksum: str
    dataFileS3Key: str
    etag: str | None = None


class _Line(msgspec.Struct):
    Item: dict[str, dict[str, Any]]


_summary_decoder = msgspec.json.Decoder(_Summary)
_entry_decoder = msgspec.json.Decoder(_FileEntry)
_line_decoder = msgspec.json.Decoder(_Line)


# -- where the files are ------------------------------------------------------------------------


def _normalize_root(url: str) -> str:
    url = url.strip()
    if not url:
        raise ExportError("no export folder given (expected s3://bucket/prefix/AWSDynamoDB/<id>/)")
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ExportError(f"{url}: the s3:// URL names no bucket")
        prefix = prefix.strip("/")
        if prefix == SUMMARY or prefix.endswith(f"/{SUMMARY}"):  # the summary names its folder
            prefix = prefix.removesuffix(SUMMARY).rstrip("/")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    path = Path(url).expanduser()
    if path.name == SUMMARY:
        path = path.parent
    return str(path.resolve())


def _split_s3(root: str) -> tuple[str, str]:
    bucket, _, prefix = root[len("s3://") :].partition("/")
    return bucket, prefix


def _join(root: str, relative: str) -> str:
    """The URL (s3://) or path of ``relative`` inside the export folder ``root``."""
    return f"{root}/{relative}"


def _relative_data_path(key: str) -> str | None:
    """``data/<name>`` from a data file key (the part from its last ``data`` folder on)."""
    parts = key.split("/")
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == DATA:
            tail = parts[index:]
            if all(part not in ("", ".", "..") for part in tail):
                return "/".join(tail)
            return None
    return None


def data_file_key(manifest: ExportManifest, file: ExportFile) -> str:
    """Where ``file`` is read from: its key in the bucket for an ``s3://`` export, its absolute
    path for a local one. That is ``<export folder>/data/<name>``, from the tail of the
    manifest's ``dataFileS3Key`` (checked by :func:`open_export`)."""
    relative = _relative_data_path(file.key)
    if relative is None:
        raise ExportError(
            f"{_join(manifest.root, FILES)}: dataFileS3Key {file.key!r} is not under a data/ folder"
        )
    if manifest.root.startswith("s3://"):
        _, prefix = _split_s3(manifest.root)
        return f"{prefix}/{relative}" if prefix else relative
    return str(Path(manifest.root) / relative)


def _data_file_url(manifest: ExportManifest, file: ExportFile) -> str:
    where = data_file_key(manifest, file)
    if manifest.root.startswith("s3://"):
        bucket, _ = _split_s3(manifest.root)
        return f"s3://{bucket}/{where}"
    return where


def _s3(client: Any | None) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client("s3")


def _error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)  # botocore's ClientError, without importing it
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return None if code is None else str(code)
    return None


@contextmanager
def _s3_errors(url: str, *, listed: bool) -> Iterator[None]:
    """A missing bucket or object becomes an :class:`ExportError` naming ``url``."""
    try:
        yield
    except Exception as error:
        code = _error_code(error)
        if code == "NoSuchBucket" or (code is None and "NoSuchBucket" in str(error)):
            raise ExportError(f"{url}: the bucket does not exist") from None
        if code in _S3_MISSING:
            if listed:
                raise ExportError(
                    f"{url}: the data file listed in {FILES} does not exist"
                ) from None
            raise FileNotFoundError(url) from None
        raise


def _read_small(root: str, name: str, client: Any | None) -> tuple[bytes, Any | None]:
    """The bytes of a manifest; FileNotFoundError if it is not there. Returns the client used."""
    url = _join(root, name)
    if root.startswith("s3://"):
        client = _s3(client)
        bucket, prefix = _split_s3(root)
        with _s3_errors(url, listed=False):
            response = client.get_object(Bucket=bucket, Key=f"{prefix}/{name}" if prefix else name)
            return bytes(response["Body"].read()), client
    try:
        return Path(url).read_bytes(), client
    except (IsADirectoryError, NotADirectoryError):
        raise FileNotFoundError(url) from None


def _not_an_export(root: str, name: str) -> ExportError:
    return ExportError(
        f"{root} is not a DynamoDB export folder: {_join(root, name)} does not exist (expected "
        f"{SUMMARY}, {FILES} and {DATA}/ in s3://bucket/prefix/AWSDynamoDB/<ExportId>/ "
        "or a local copy of it)"
    )


def _decode_error(error: msgspec.DecodeError) -> str:
    return str(error).replace("`$.", "`").replace("`$`", "the line")


# -- the manifests ------------------------------------------------------------------------------


def _parse_time(url: str, text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(f"{url}: exportTime {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ExportError(f"{url}: exportTime {text!r} has no time zone (AWS writes UTC, 'Z')")
    return moment.timestamp()


def _table_name(url: str, arn: str) -> str:
    # arn:aws:dynamodb:eu-west-1:123456789012:table/Receipts
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[2] == "dynamodb":
        kind, _, name = parts[5].partition("/")
        if kind == "table" and name and "/" not in name:
            return name
    raise ExportError(f"{url}: tableArn {arn!r} is not a DynamoDB table ARN")


def _md5_digest(value: str) -> bytes | None:
    """The 16-byte digest an ``md5Checksum`` stands for (base64 as AWS writes it, or hex)."""
    text = value.strip()
    if len(text) == 32:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == 16 else None


def _read_summary(root: str, data: bytes) -> _Summary:
    url = _join(root, SUMMARY)
    try:
        summary = _summary_decoder.decode(data)
    except msgspec.DecodeError as error:
        raise ExportError(f"{url}: not an export summary: {_decode_error(error)}") from None
    if summary.outputFormat != FORMAT:
        hint = (
            " (ION is not supported: export the table as DYNAMODB_JSON)"
            if summary.outputFormat == "ION"
            else ""
        )
        raise ExportError(
            f"{url}: outputFormat is {summary.outputFormat!r}; only {FORMAT} exports can be "
            f"read{hint}"
        )
    if summary.exportType is not None and summary.exportType != FULL_EXPORT:
        raise ExportError(
            f"{url}: exportType is {summary.exportType!r}; a backfill needs a {FULL_EXPORT} "
            "(the table's items), not the changes of an incremental export"
        )
    return summary


def _read_files(root: str, data: bytes) -> list[ExportFile]:
    url = _join(root, FILES)
    files: list[ExportFile] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = _entry_decoder.decode(line)
        except msgspec.DecodeError as error:
            raise ExportError(f"{url}: line {number}: {_decode_error(error)}") from None
        if _md5_digest(entry.md5Checksum) is None:
            raise ExportError(
                f"{url}: line {number}: md5Checksum {entry.md5Checksum!r} is neither the base64 "
                "nor the hex of an MD5 digest"
            )
        relative = _relative_data_path(entry.dataFileS3Key)
        if relative is None:
            raise ExportError(
                f"{url}: line {number}: dataFileS3Key {entry.dataFileS3Key!r} is not a file "
                f"under a {DATA}/ folder"
            )
        if relative in seen:
            raise ExportError(
                f"{url}: line {number}: {entry.dataFileS3Key!r} is listed again "
                f"(first on line {seen[relative]})"
            )
        seen[relative] = number
        files.append(ExportFile(entry.dataFileS3Key, entry.itemCount, entry.md5Checksum))
    return files


def open_export(url: str, *, s3_client: Any | None = None) -> ExportManifest:
    """Read and check an export folder's two manifests.

    ``url`` is ``s3://bucket/prefix/AWSDynamoDB/<ExportId>/`` or a local folder with the same
    layout (its ``manifest-summary.json`` is accepted too). Checked: both manifests exist and
    parse; ``outputFormat`` is DYNAMODB_JSON (ION is refused) and the export is a full one;
    ``exportTime`` is an ISO 8601 time with a zone; ``tableArn`` is a table ARN; every data file
    is listed once, under ``data/``, with a valid MD5; the files' item counts add up to the
    summary's ``itemCount``. The data files themselves are read by :func:`read_export_file`.
    Raises :class:`ExportError` naming the file and the problem.
    """
    root = _normalize_root(url)
    try:
        summary_bytes, s3_client = _read_small(root, SUMMARY, s3_client)
    except FileNotFoundError:
        raise _not_an_export(root, SUMMARY) from None
    summary = _read_summary(root, summary_bytes)
    summary_url = _join(root, SUMMARY)
    export_time = _parse_time(summary_url, summary.exportTime)
    table_name = _table_name(summary_url, summary.tableArn)
    try:
        files_bytes, s3_client = _read_small(root, FILES, s3_client)
    except FileNotFoundError:
        raise _not_an_export(root, FILES) from None
    files = _read_files(root, files_bytes)
    listed = sum(file.item_count for file in files)
    if listed != summary.itemCount:
        raise ExportError(
            f"{_join(root, FILES)}: its {len(files)} data files hold {listed} items, but "
            f"{SUMMARY} says itemCount {summary.itemCount}"
        )
    return ExportManifest(
        root=root,
        export_arn=summary.exportArn,
        table_arn=summary.tableArn,
        table_name=table_name,
        export_time=export_time,
        item_count=summary.itemCount,
        files=files,
    )


# -- the data files -----------------------------------------------------------------------------


def _md5_of(stream: IO[bytes]) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.digest()


@contextmanager
def _local_copy(
    manifest: ExportManifest, file: ExportFile, client: Any | None
) -> Iterator[IO[bytes]]:
    """The data file's bytes, opened for reading from the start: the file itself when the export
    is local, else a download of it into an anonymous temporary file (deleted on close)."""
    where = data_file_key(manifest, file)
    if not manifest.root.startswith("s3://"):
        try:
            stream = open(where, "rb")  # noqa: SIM115 (closed below)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ExportError(f"{where}: the data file listed in {FILES} does not exist") from None
        with stream:
            yield stream
        return
    bucket, _ = _split_s3(manifest.root)
    url = f"s3://{bucket}/{where}"
    client = _s3(client)
    with tempfile.TemporaryFile(prefix="receipt-events-export-") as spool:
        with _s3_errors(url, listed=True):
            client.download_fileobj(bucket, where, spool)
        spool.seek(0)
        yield spool


def _lines(url: str, stream: IO[bytes]) -> Iterator[bytes]:
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
            while True:
                line = unzipped.readline()
                if not line:
                    return
                yield line
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as error:
        raise ExportError(f"{url}: not a readable gzip file: {error}") from None


def read_export_file(
    manifest: ExportManifest, file: ExportFile, *, s3_client: Any | None = None
) -> Iterator[dict[str, Any]]:
    """The items of one data file, in file order, each the line's ``Item`` (DynamoDB typed JSON,
    as exported: ``{"PK": {"S": "..."}, ...}``).

    Nothing is yielded before the whole file's MD5 matches the manifest's ``md5Checksum``: an
    S3 file is first downloaded (boto3's managed transfer, so retried and ranged) into an
    anonymous temporary file, never held in memory; the file is hashed in one pass and then
    decompressed and parsed, streaming, in a second. A corrupt or truncated file therefore
    yields nothing. Temporary space: the compressed size of one file while it is read; it is
    freed when the iterator ends or is closed (use ``contextlib.closing`` to stop early).

    The file's line count must equal its manifest ``itemCount``. A surplus is reported before
    the extra item is yielded, a shortfall only once the last line is read: so the caller must
    count a file as done only after the iterator is exhausted without error. Every problem
    (missing file, MD5 mismatch, bad gzip, a line that is not a JSON object with an ``Item``
    object of typed attributes, the counts) raises :class:`ExportError` naming the file (and
    the line).
    """
    url = _data_file_url(manifest, file)
    expected = _md5_digest(file.md5)
    if expected is None:
        raise ExportError(f"{url}: md5Checksum {file.md5!r} in {FILES} is not an MD5 digest")
    with _local_copy(manifest, file, s3_client) as stream:
        actual = _md5_of(stream)
        if actual != expected:
            raise ExportError(
                f"{url}: MD5 mismatch: {FILES} says {base64.b64encode(expected).decode()} "
                f"({expected.hex()}), the file has {base64.b64encode(actual).decode()} "
                f"({actual.hex()}); the file is corrupt or not the one exported"
            )
        stream.seek(0)
        count = 0
        for number, line in enumerate(_lines(url, stream), start=1):
            if not line.strip():
                raise ExportError(f'{url}: line {number}: an empty line, not an {{"Item": ...}}')
            try:
                item = _line_decoder.decode(line).Item
            except msgspec.DecodeError as error:
                raise ExportError(
                    f'{url}: line {number}: not a JSON object with an "Item" object of typed '
                    f"attributes ({_decode_error(error)})"
                ) from None
            for name, value in item.items():
                if len(value) != 1:
                    raise ExportError(
                        f"{url}: line {number}: attribute {name!r} is not one typed value "
                        f'like {{"S": "..."}}: it has {len(value)} keys'
                    )
            count += 1
            if count > file.item_count:
                raise ExportError(
                    f"{url}: holds more than the {file.item_count} items {FILES} lists for it "
                    f"(line {number})"
                )
            yield item
        if count != file.item_count:
            raise ExportError(
                f"{url}: holds {count} items, but {FILES} lists {file.item_count} for it"
            )


__all__ = [
    "ExportError",
    "ExportFile",
    "ExportManifest",
    "data_file_key",
    "open_export",
    "read_export_file",
]
