"""The reader of DynamoDB exports to S3 (DYNAMODB_JSON): manifests checked, data files verified by
MD5 before any item comes out, counts checked. Every test runs on a local export folder and on
S3 (the moto server over HTTP, through the ``s3_bucket`` fixture of tests/conftest.py)."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from receipt_events.backfill.export import (
    ExportError,
    ExportFile,
    ExportManifest,
    data_file_key,
    open_export,
    read_export_file,
)
from tests.support.exports import (
    corrupt_data_file,
    edit_files_manifest,
    edit_summary,
    read_files_manifest,
    remove,
    replace_data_file,
    write_export,
)

TABLE = "ReceiptsTable"
TABLE_ARN = f"arn:aws:dynamodb:eu-west-1:123456789012:table/{TABLE}"
EXPORT_TIME = "2026-12-01T10:00:00.123Z"
EXPORT_EPOCH = datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC).timestamp()


@dataclass
class Site:
    """Where exports are written: a local folder, or ``s3://bucket/prefix`` with a client."""

    root: str
    s3: Any | None

    def write(self, items: list[dict[str, Any]], **options: Any) -> str:
        options.setdefault("table_arn", TABLE_ARN)
        options.setdefault("export_time", EXPORT_TIME)
        return write_export(items, root=self.root, s3_client=self.s3, **options)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.aws)])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    if request.param == "s3":
        bucket: str = request.getfixturevalue("s3_bucket")
        return Site(f"s3://{bucket}/exports/prod", request.getfixturevalue("aws_env").client("s3"))
    return Site(str(tmp_path / "bucket"), None)


def receipt_items(count: int) -> list[dict[str, Any]]:
    """Items in DynamoDB typed JSON, with every kind of attribute value."""
    return [
        {
            "PK": {"S": f"IMAGE#{index:04d}"},
            "SK": {"S": "RECEIPT#00001#LINE#00001#WORD#00001#LABEL#TOTAL"},
            "TYPE": {"S": "RECEIPT_WORD_LABEL"},
            "position": {"N": str(index)},
            "score": {"N": "0.25"},
            "tags": {"SS": ["a", "b"]},
            "sizes": {"NS": ["1", "2.5"]},
            "raw": {"B": "AAEC/w=="},
            "flags": {"M": {"valid": {"BOOL": True}, "note": {"NULL": True}}},
            "history": {"L": [{"S": "prix €"}, {"N": "-3"}]},
        }
        for index in range(count)
    ]


def read_all(manifest: ExportManifest, file: ExportFile, **options: Any) -> list[dict[str, Any]]:
    return list(read_export_file(manifest, file, **options))


def read_until_error(
    manifest: ExportManifest, file: ExportFile
) -> tuple[list[dict[str, Any]], ExportError]:
    """The items yielded before the reader raised, and its error (the test fails if none)."""
    got: list[dict[str, Any]] = []
    with pytest.raises(ExportError) as raised:  # noqa: PT012 (the loop is what raises)
        for item in read_export_file(manifest, file):
            got.append(item)
    return got, raised.value


def data_url(url: str, relative: str) -> str:
    return url.rstrip("/") + "/" + relative


# -- reading a good export ----------------------------------------------------------------------


def test_an_export_reads_back_its_items_in_order_with_its_manifest(site: Site) -> None:
    items = receipt_items(7)
    url = site.write(items, files=3)
    assert url.endswith("/")
    assert "/AWSDynamoDB/" in url

    manifest = open_export(url)

    assert manifest.root == url.rstrip("/") if site.s3 else str(Path(url).resolve())
    export_id = url.rstrip("/").rsplit("/", 1)[1]
    assert manifest.export_arn == f"{TABLE_ARN}/export/{export_id}"
    assert manifest.export_id == export_id
    assert manifest.table_arn == TABLE_ARN
    assert manifest.table_name == TABLE
    assert manifest.export_time == pytest.approx(EXPORT_EPOCH, abs=1e-6)
    assert manifest.item_count == 7
    entries = read_files_manifest(url, s3_client=site.s3)
    assert [(f.key, f.item_count, f.md5) for f in manifest.files] == [
        (e["dataFileS3Key"], e["itemCount"], e["md5Checksum"]) for e in entries
    ]
    assert [f.item_count for f in manifest.files] == [3, 2, 2]

    per_file = [read_all(manifest, file) for file in manifest.files]
    assert [len(got) for got in per_file] == [3, 2, 2]
    assert [item for got in per_file for item in got] == items  # typed JSON, unchanged


def test_data_files_are_found_under_the_export_folder(site: Site) -> None:
    url = site.write(receipt_items(2), files=2)
    manifest = open_export(url)
    for file in manifest.files:
        name = file.key.rsplit("/", 1)[1]
        where = data_file_key(manifest, file)
        if site.s3:
            # the manifest's key is the full key in the bucket, and that is where it is read
            assert where == file.key
            assert where.startswith("exports/prod/AWSDynamoDB/")
            assert where.endswith(f"/data/{name}")
        else:
            # a local folder stands for s3://bucket/exports: the key's data/ tail is under it
            assert file.key.startswith("exports/AWSDynamoDB/")
            assert where == str(Path(url).resolve() / "data" / name)
            assert Path(where).is_file()


def test_the_folder_may_be_named_with_or_without_a_slash_or_by_its_summary(site: Site) -> None:
    url = site.write(receipt_items(3))
    expected = open_export(url)
    for other in (url.rstrip("/"), url + "manifest-summary.json"):
        assert open_export(other) == expected


def test_a_given_s3_client_is_used(s3_bucket: str, aws_env: Any) -> None:
    client = aws_env.client("s3")
    url = write_export(
        receipt_items(4),
        root=f"s3://{s3_bucket}/exports",
        table_arn=TABLE_ARN,
        export_time=EXPORT_TIME,
        s3_client=client,
    )
    calls: list[str] = []
    client.meta.events.register("before-call.s3", lambda **kw: calls.append(kw["event_name"]))
    manifest = open_export(url, s3_client=client)
    got = [item for f in manifest.files for item in read_all(manifest, f, s3_client=client)]
    assert got == receipt_items(4)
    assert len(calls) >= 2 + len(manifest.files)  # both manifests, then each data file


def test_empty_data_files_hold_no_items(site: Site) -> None:
    url = site.write(receipt_items(1), files=3)  # AWS writes an empty file per empty partition
    replace_data_file(url, 2, b"", compress=False, s3_client=site.s3)  # a zero-byte one too
    manifest = open_export(url)
    assert [f.item_count for f in manifest.files] == [1, 0, 0]
    assert [read_all(manifest, f) for f in manifest.files] == [receipt_items(1), [], []]


def test_an_md5_in_hex_is_accepted(site: Site) -> None:
    url = site.write(receipt_items(3))

    def to_hex(entries: list[dict[str, Any]]) -> None:
        import base64

        for entry in entries:
            entry["md5Checksum"] = base64.b64decode(entry["md5Checksum"]).hex()

    edit_files_manifest(url, to_hex, s3_client=site.s3)
    manifest = open_export(url)
    assert all(len(f.md5) == 32 for f in manifest.files)
    assert [i for f in manifest.files for i in read_all(manifest, f)] == receipt_items(3)


# -- data files that do not match their manifest ------------------------------------------------


def test_a_corrupt_data_file_yields_nothing(site: Site) -> None:
    url = site.write(receipt_items(6), files=2)
    relative = corrupt_data_file(url, 1, s3_client=site.s3)
    manifest = open_export(url)  # the manifests are fine

    got, error = read_until_error(manifest, manifest.files[1])

    assert got == []
    assert "MD5 mismatch" in str(error)
    assert data_url(manifest.root, relative) in str(error)
    assert manifest.files[1].md5 in str(error)
    assert read_all(manifest, manifest.files[0]) == receipt_items(6)[:3]  # the other file is fine


def test_a_file_with_fewer_items_than_listed_fails_at_its_end(site: Site) -> None:
    url = site.write(receipt_items(5), files=2)  # 3 + 2

    def move_one(entries: list[dict[str, Any]]) -> None:  # the total still adds up
        entries[0]["itemCount"] += 1
        entries[1]["itemCount"] -= 1

    edit_files_manifest(url, move_one, s3_client=site.s3)
    manifest = open_export(url)
    first, second = manifest.files

    got, error = read_until_error(manifest, first)
    assert got == receipt_items(5)[:3]  # all of them, then the error: not done
    assert "holds 3 items, but manifest-files.json lists 4" in str(error)
    assert first.key.rsplit("/", 1)[1] in str(error)

    got, error = read_until_error(manifest, second)
    assert got == receipt_items(5)[3:4]  # the surplus item never comes out
    assert "more than the 1 items" in str(error)
    assert second.key.rsplit("/", 1)[1] in str(error)


def test_a_missing_data_file_is_named(site: Site) -> None:
    url = site.write(receipt_items(2))
    manifest = open_export(url)
    relative = "data/" + manifest.files[0].key.rsplit("/", 1)[1]
    remove(url, relative, s3_client=site.s3)
    got, error = read_until_error(manifest, manifest.files[0])
    assert got == []
    assert data_url(manifest.root, relative) in str(error)
    assert "does not exist" in str(error)


GOOD_LINE = b'{"Item":{"PK":{"S":"IMAGE#1"}}}'


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"not json", "malformed"),
        (b"[1, 2]", "Expected `object`, got `array`"),
        (b'{"item": {"PK": {"S": "x"}}}', "missing required field `Item`"),
        (b'{"Item": ["PK"]}', "Expected `object`, got `array` - at `Item`"),
        (b'{"Item": {"PK": "IMAGE#1"}}', "Expected `object`, got `str` - at `Item[...]`"),
        (b'{"Item": {"PK": {"S": "x", "N": "1"}}}', "attribute 'PK' is not one typed value"),
        (b"", "an empty line"),  # a blank line is no item
    ],
)
def test_a_line_that_is_not_an_item_is_named_with_its_number(
    site: Site, line: bytes, problem: str
) -> None:
    url = site.write(receipt_items(3), files=1)
    relative = replace_data_file(
        url, 0, GOOD_LINE + b"\n" + line + b"\n" + GOOD_LINE + b"\n", s3_client=site.s3
    )
    manifest = open_export(url)
    got, error = read_until_error(manifest, manifest.files[0])
    assert got == [{"PK": {"S": "IMAGE#1"}}]
    assert f"{data_url(manifest.root, relative)}: line 2:" in str(error)
    assert problem in str(error)


def test_a_data_file_that_is_not_gzip_is_named(site: Site) -> None:
    url = site.write(receipt_items(1), files=1)
    relative = replace_data_file(url, 0, GOOD_LINE + b"\n", compress=False, s3_client=site.s3)
    manifest = open_export(url)
    got, error = read_until_error(manifest, manifest.files[0])
    assert got == []
    assert f"{data_url(manifest.root, relative)}: not a readable gzip file" in str(error)


def test_closing_the_reader_early_is_allowed(site: Site) -> None:
    url = site.write(receipt_items(4), files=1)
    manifest = open_export(url)
    reader = read_export_file(manifest, manifest.files[0])
    with closing(reader):  # type: ignore[type-var]  # a generator: it has close()
        assert next(reader) == receipt_items(4)[0]
    with pytest.raises(StopIteration):  # closed: the temporary download is gone with it
        next(reader)


# -- manifests that are wrong -------------------------------------------------------------------


def test_item_counts_that_do_not_add_up_to_the_summary_are_refused(site: Site) -> None:
    url = site.write(receipt_items(5), files=2)
    edit_summary(url, lambda summary: summary.update(itemCount=6), s3_client=site.s3)
    with pytest.raises(ExportError) as raised:
        open_export(url)
    assert "manifest-files.json: its 2 data files hold 5 items" in str(raised.value)
    assert "itemCount 6" in str(raised.value)


def test_an_ion_export_is_refused(site: Site) -> None:
    url = site.write(receipt_items(1))
    edit_summary(url, lambda summary: summary.update(outputFormat="ION"), s3_client=site.s3)
    with pytest.raises(ExportError, match=r"manifest-summary\.json: outputFormat is 'ION'") as e:
        open_export(url)
    assert "ION is not supported" in str(e.value)
    assert "DYNAMODB_JSON" in str(e.value)


def test_an_incremental_export_is_refused(site: Site) -> None:
    url = site.write(receipt_items(1))
    edit_summary(
        url, lambda summary: summary.update(exportType="INCREMENTAL_EXPORT"), s3_client=site.s3
    )
    with pytest.raises(ExportError, match="exportType is 'INCREMENTAL_EXPORT'"):
        open_export(url)
    edit_summary(url, lambda summary: summary.update(exportType="FULL_EXPORT"), s3_client=site.s3)
    assert open_export(url).item_count == 1


@pytest.mark.parametrize("name", ["manifest-summary.json", "manifest-files.json"])
def test_a_folder_without_a_manifest_is_no_export(site: Site, name: str) -> None:
    url = site.write(receipt_items(1))
    remove(url, name, s3_client=site.s3)
    with pytest.raises(ExportError) as raised:
        open_export(url)
    root = url.rstrip("/") if site.s3 else str(Path(url).resolve())
    assert f"{root} is not a DynamoDB export folder: {root}/{name} does not exist" in str(
        raised.value
    )


def test_a_folder_that_was_never_an_export_is_no_export(site: Site) -> None:
    site.write(receipt_items(1))  # the export is one level further down
    with pytest.raises(ExportError, match="is not a DynamoDB export folder"):
        open_export(site.root + "/AWSDynamoDB")


def test_a_missing_bucket_is_named(aws_env: Any) -> None:
    with pytest.raises(
        ExportError, match=r"s3://no-such-bucket-here/x/manifest-summary\.json: the bucket does not"
    ):
        open_export("s3://no-such-bucket-here/x/")


def test_a_file_listed_twice_is_refused(site: Site) -> None:
    url = site.write(receipt_items(2), files=2)
    edit_files_manifest(url, lambda entries: entries.append(entries[0]), s3_client=site.s3)
    with pytest.raises(ExportError, match=r"manifest-files\.json: line 3: .* is listed again"):
        open_export(url)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("md5Checksum", "not-an-md5", "neither the base64 nor the hex of an MD5"),
        ("md5Checksum", "AAAA", "neither the base64 nor the hex of an MD5"),
        ("dataFileS3Key", "exports/AWSDynamoDB/1-a/x.json.gz", "not a file under a data/ folder"),
        ("dataFileS3Key", "exports/data/../../x.json.gz", "not a file under a data/ folder"),
        ("itemCount", -1, "Expected `int` >= 0"),
        ("itemCount", "3", "Expected `int`, got `str`"),
    ],
)
def test_a_bad_files_manifest_entry_is_named_with_its_line(
    site: Site, field: str, value: Any, problem: str
) -> None:
    url = site.write(receipt_items(2), files=2)

    def spoil(entries: list[dict[str, Any]]) -> None:
        entries[1][field] = value

    edit_files_manifest(url, spoil, s3_client=site.s3)
    with pytest.raises(ExportError, match=r"manifest-files\.json: line 2: ") as raised:
        open_export(url)
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("exportTime", "2026-12-01T10:00:00", "has no time zone"),
        ("exportTime", "yesterday", "is not an ISO 8601 time"),
        ("tableArn", "arn:aws:s3:::bucket", "is not a DynamoDB table ARN"),
        ("tableArn", f"{TABLE_ARN}/stream/2026", "is not a DynamoDB table ARN"),
        ("itemCount", None, "Expected `int`, got `null`"),
    ],
)
def test_a_bad_summary_field_is_named(site: Site, field: str, value: Any, problem: str) -> None:
    url = site.write(receipt_items(2))
    edit_summary(url, lambda summary: summary.update({field: value}), s3_client=site.s3)
    with pytest.raises(ExportError, match=r"manifest-summary\.json: ") as raised:
        open_export(url)
    assert problem in str(raised.value)
