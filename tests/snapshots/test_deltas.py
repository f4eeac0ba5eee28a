"""Embedding deltas on S3 (the moto server, over HTTP) read exactly as the same deltas on disk.

The deltas of a small history are written as real Chroma directories with ``write_delta``, on
disk under a root and uploaded file by file to ``s3://<bucket>/<layout>/<location>``: in
directory layout (every Chroma file under the prefix), as ``<prefix>/delta.tar.gz``, or mixed
(one run each way). Whatever the layout, :class:`S3DeltaSource` and :class:`DeltaSources` give
the records and digest :class:`LocalDeltaSource` gives, and a projection over S3 deltas has the
digest of one over local deltas. A missing delta is reported missing whatever S3 answers for it
(``404`` from a HEAD, ``NoSuchKey`` from a GET); keys that would leave the scratch directory are
refused.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from projections.errors import ProjectionStopped
from receipt_chroma.client import CollectionName
from receipt_chroma.deltas import (
    TARBALL_NAME,
    DeltaError,
    DeltaSources,
    LocalDeltaSource,
    S3DeltaSource,
)
from receipt_chroma.records import ChromaRecord
from receipt_events.store import open_store
from synthetic.deltas import Layout, write_delta
from tests.projection.helpers import Log, digest, project, records
from tests.support.snapshot_history import History

LAYOUTS = ["directory", "tarball", "mixed"]
Held = dict[tuple[str, CollectionName], list[ChromaRecord]]  # (location, collection) → records


class Written:
    """The deltas of the history's runs, written once per module on disk in every layout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        log = Log(open_store(f"memory://deltas-{uuid.uuid4().hex}"))
        History(log, root / "unused")  # the same runs, so the same deltas, as every test's
        self.held = cast(Held, dict(log.deltas.deltas))
        log.store.close()
        for layout in LAYOUTS:
            for (location, collection), held in self.held.items():
                target = root / layout / location
                write_delta(target, collection, held, layout_of(layout, location))


def layout_of(layout: str, location: str) -> Layout:
    if layout == "mixed":  # run-1 as directories, run-2 as tarballs
        return "directory" if location.startswith("run-1/") else "tarball"
    return "directory" if layout == "directory" else "tarball"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    return Written(tmp_path_factory.mktemp("deltas"))


class Deltas:
    """The written deltas, on disk under ``root/<layout>`` and uploaded to this test's bucket
    under ``<layout>/``, file by file."""

    def __init__(self, written: Written, bucket: str, s3: Any) -> None:
        self.held = written.held
        self.root = written.root
        self.bucket = bucket
        self.s3 = s3
        self.uploaded: set[str] = set()

    def upload(self, layout: str) -> Path:
        """Upload every delta of ``layout`` to S3; the root of the same deltas on disk."""
        root = self.root / layout
        if layout not in self.uploaded:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                key = f"{layout}/{path.relative_to(root).as_posix()}"
                self.s3.upload_file(str(path), self.bucket, key)
            self.uploaded.add(layout)
        return root

    def url(self, layout: str, location: str = "") -> str:
        return f"s3://{self.bucket}/{layout}" + (f"/{location}" if location else "")


@pytest.fixture
def deltas(written: Written, s3_bucket: str) -> Deltas:
    return Deltas(written, s3_bucket, boto3.client("s3"))


def same_records(found: list[ChromaRecord], written: list[ChromaRecord]) -> bool:
    """The records a delta was written with: Chroma (cosine space) hands vectors back
    renormalised, a float32 ulp or so from the ones written, so those are compared closely."""
    return len(found) == len(written) and all(
        (a.id, a.document, a.metadata) == (b.id, b.document, b.metadata)
        and np.allclose(a.vector(), b.vector(), rtol=0, atol=1e-6)
        for a, b in zip(found, written, strict=True)
    )


def fail_once(source: S3DeltaSource, code: str, operation: str, *, call: int = 1) -> list[str]:
    """Make the source's ``call``-th download answer with S3 error ``code``, as AWS would;
    returns the keys asked for (every download, failed or not)."""
    asked: list[str] = []
    download: Callable[..., None] = source.client.download_file

    def download_file(bucket: str, key: str, filename: str) -> None:
        asked.append(key)
        if len(asked) == call:
            raise ClientError({"Error": {"Code": code, "Message": f"{code} for {key}"}}, operation)
        download(bucket, key, filename)

    source.client.download_file = download_file
    return asked


# -- the same records and digest as on disk ----------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_s3_delta_reads_as_the_same_delta_on_disk(deltas: Deltas, layout: str) -> None:
    root = deltas.upload(layout)
    local = LocalDeltaSource(root)
    absolute = S3DeltaSource()
    relative = S3DeltaSource(deltas.url(layout))
    from_s3_root = DeltaSources(deltas.url(layout))
    from_disk_root = DeltaSources(str(root))
    assert len(deltas.held) == 4
    for (location, collection), held in deltas.held.items():
        expected = local.read(location, collection)
        assert same_records(expected.records, held)  # on disk: the delta the log's run wrote
        url = deltas.url(layout, location)
        found = [absolute.read(url, collection), from_s3_root.read(location, collection)]
        if location == "run-1/words":  # every other way to name it, once
            found += [
                absolute.read(url + "/", collection),
                relative.read(location, collection),
                from_s3_root.read(url, collection),
                from_disk_root.read(url, collection),
            ]
        if layout_of(layout, location) == "tarball":
            found.append(absolute.read(f"{url}/{TARBALL_NAME}", collection))
        for delta in found:
            assert (delta.collection, delta.records, delta.digest) == (
                collection,
                expected.records,
                expected.digest,
            )


def test_a_relative_location_is_resolved_against_the_s3_root(deltas: Deltas) -> None:
    deltas.upload("directory")
    source = S3DeltaSource(deltas.url("directory") + "/")
    assert source.url_for("run-1/lines") == deltas.url("directory", "run-1/lines")
    assert source.url_for("/run-1/lines/") == deltas.url("directory", "run-1/lines")
    assert source.url_for("s3://elsewhere/x/") == "s3://elsewhere/x"
    assert same_records(
        source.read("run-1/lines", "lines").records, deltas.held[("run-1/lines", "lines")]
    )
    with pytest.raises(DeltaError, match="needs an s3:// delta root") as error:
        S3DeltaSource().read("run-1/lines", "lines")
    assert not error.value.missing
    # a delta root on disk never sends a relative location to S3, and the other way round
    with pytest.raises(DeltaError) as error:
        DeltaSources(str(deltas.root / "nowhere")).read("run-1/lines", "lines")
    assert error.value.missing


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_projection_over_s3_deltas_equals_one_over_local_deltas(
    deltas: Deltas, history: History, layout: str, tmp_path: Path
) -> None:
    root = deltas.upload(layout)
    log = history.log
    project(log.store, tmp_path / "memory", log.deltas)
    project(log.store, tmp_path / "local", DeltaSources(str(root)))
    project(log.store, tmp_path / "s3", DeltaSources(deltas.url(layout)))
    assert digest(tmp_path / "s3") == digest(tmp_path / "local")
    assert records(tmp_path / "s3") == records(tmp_path / "local")
    assert {
        name: same_records(list(found.values()), list(records(tmp_path / "memory")[name].values()))
        for name, found in records(tmp_path / "s3").items()
    } == {"lines": True, "words": True}


# -- missing, unreadable, unsafe ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "operation"),
    [("moto", ""), ("404", "HeadObject"), ("NoSuchKey", "GetObject"), ("NotFound", "HeadObject")],
)
@pytest.mark.parametrize("where", ["a prefix", "a tarball key"])
def test_a_missing_s3_delta_is_reported_missing_whatever_s3_answers(
    deltas: Deltas, answer: str, operation: str, where: str
) -> None:
    deltas.upload("directory")  # other deltas exist in the bucket; not this one
    source = S3DeltaSource(deltas.url("directory"))
    location = "run-9/lines" if where == "a prefix" else f"run-9/lines/{TARBALL_NAME}"
    asked = fail_once(source, answer, operation) if answer != "moto" else []
    with pytest.raises(DeltaError) as error:
        source.read(location, "lines")
    assert error.value.missing, error.value
    assert error.value.location == location
    assert "run-9/lines" in str(error.value)
    if answer != "moto":
        assert asked == [f"directory/run-9/lines/{TARBALL_NAME}"]


@pytest.mark.parametrize(
    ("answer", "operation"), [("404", "HeadObject"), ("NoSuchKey", "GetObject")]
)
def test_a_directory_delta_is_found_whatever_s3_answers_for_its_absent_tarball(
    deltas: Deltas, answer: str, operation: str
) -> None:
    """The old system treated one of the two answers as an error and lost every directory
    layout delta that way."""
    deltas.upload("directory")
    source = S3DeltaSource(deltas.url("directory"))
    asked = fail_once(source, answer, operation)
    delta = source.read("run-1/words", "words")
    assert same_records(delta.records, deltas.held[("run-1/words", "words")])
    assert asked[0] == f"directory/run-1/words/{TARBALL_NAME}"
    assert len(asked) > 1  # then the directory's files


@pytest.mark.parametrize("answer", ["AccessDenied", "403", "SlowDown"])
def test_an_s3_error_that_is_not_a_missing_key_is_not_reported_missing(
    deltas: Deltas, answer: str
) -> None:
    deltas.upload("directory")
    source = S3DeltaSource(deltas.url("directory"))
    fail_once(source, answer, "GetObject")
    with pytest.raises(DeltaError, match=answer) as error:
        source.read("run-1/words", "words")
    assert not error.value.missing


@pytest.mark.parametrize("unsafe", ["../../{name}", "sub/../../../{name}", "{tmp}/{name}"])
def test_a_key_that_would_leave_the_delta_directory_is_refused(
    deltas: Deltas, unsafe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys with ``..`` (or an absolute path: ``prefix//tmp/...``) under a delta's prefix are
    refused before anything is downloaded; were they not, the file would land in ``tmp_path``
    (the private copy is made under it), where the test looks for it."""
    deltas.upload("directory")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the private copy is made
    name = f"escaped-{uuid.uuid4().hex}"
    key = f"directory/run-1/words/{unsafe.format(name=name, tmp=tmp_path)}"
    deltas.s3.put_object(Bucket=deltas.bucket, Key=key, Body=b"outside")
    with pytest.raises(DeltaError, match="unsafe key") as error:
        S3DeltaSource(deltas.url("directory")).read("run-1/words", "words")
    assert not error.value.missing
    assert key in str(error.value)
    assert not list(tmp_path.rglob(f"{name}*"))


@pytest.mark.parametrize(("answer", "missing"), [("NoSuchKey", True), ("AccessDenied", False)])
def test_an_s3_error_on_a_file_of_a_directory_delta_is_a_delta_error(
    deltas: Deltas, answer: str, missing: bool
) -> None:
    """A file listed under the prefix that is gone when fetched (or may not be read) is a
    DeltaError like any other, not a raw botocore error the projection cannot park."""
    deltas.upload("directory")
    source = S3DeltaSource(deltas.url("directory"))
    asked = fail_once(source, answer, "GetObject", call=2)  # after the tarball probe's 404
    with pytest.raises(DeltaError, match=answer) as error:
        source.read("run-1/words", "words")
    assert error.value.missing is missing
    assert asked[0] == f"directory/run-1/words/{TARBALL_NAME}"


@pytest.mark.parametrize("where", ["a prefix", "a tarball key"])
def test_a_delta_in_a_bucket_that_does_not_exist_is_reported_missing(
    deltas: Deltas, where: str
) -> None:
    location = f"s3://{deltas.bucket}-gone/run-1/lines"
    if where == "a tarball key":
        location += f"/{TARBALL_NAME}"
    with pytest.raises(DeltaError) as error:
        S3DeltaSource().read(location, "lines")
    assert error.value.missing, error.value
    assert error.value.location == location


def test_a_projection_over_an_s3_root_that_does_not_exist_stops_or_parks(
    deltas: Deltas, history: History, tmp_path: Path
) -> None:
    log = history.log
    gone = DeltaSources(f"s3://{deltas.bucket}-gone/deltas")
    with pytest.raises(ProjectionStopped, match="run-1"):
        project(log.store, tmp_path / "stopped", gone)
    parked = project(log.store, tmp_path / "parked", gone, policy="hold")
    assert parked.held_deltas == len(deltas.held)
    assert parked.to_position == log.store.head()
