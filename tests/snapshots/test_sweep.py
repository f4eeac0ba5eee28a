"""``snapshot sweep``: what interrupted publishes leave in a store is found and, with
``--apply``, deleted; published snapshots, the pointer's key and young keys (maybe a publish in
progress) never are. On both backends (a local directory, S3 on the moto server).

The interrupted publish is real: ``receipt-events snapshot push`` from the virtualenv, killed
by SIGKILL at the fault point ``publish.mid_upload`` (``receipt_events/faults.py``), after some
of its files reached the store and before its manifest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from projections.restore import restore
from receipt_chroma.snapshots import SnapshotStore, StoredObject, sweep_orphans
from receipt_chroma.snapshots.sweep import DEFAULT_OLDER_THAN
from receipt_cli.app import app
from tests.projection.helpers import digest
from tests.support.snapshot_history import History, publish_next

CLI = Path(sys.executable).with_name("receipt-events")
ORPHAN = "00000000000000000042-0123456789abcdef-t9"  # named like a snapshot, never published
LATER = 2 * DEFAULT_OLDER_THAN  # seconds: "now", as seen by a sweep run that much later


def objects(snapshots: SnapshotStore) -> dict[str, int]:
    """Every object under ``snapshots/`` (by key, with its size), and the pointer's bytes
    (local stores also keep the lease's files beside them: those are not compared)."""
    found = {stored.key: stored.size for stored in snapshots.backend.list_objects("snapshots/")}
    pointer = snapshots.backend.read_pointer()
    if pointer is not None:
        found[f"latest.json:{pointer[0].decode()}"] = len(pointer[0])
    return found


def under(snapshots: SnapshotStore, key: str) -> dict[str, int]:
    prefix = f"snapshots/{key}/"
    return {name: size for name, size in objects(snapshots).items() if name.startswith(prefix)}


def plant_orphan(snapshots: SnapshotStore, key: str = ORPHAN) -> dict[str, int]:
    """Files under a key with no manifest, as a killed publish leaves them."""
    snapshots.backend.put_bytes(f"snapshots/{key}/files/state.sqlite3", b"s" * 300)
    snapshots.backend.put_bytes(f"snapshots/{key}/files/chroma/chroma.sqlite3", b"c" * 700)
    return under(snapshots, key)


def sweep_cli(dest: str, *args: str) -> Any:
    result = CliRunner().invoke(app, ["snapshot", "sweep", dest, *args], catch_exceptions=False)
    return result


def ok_json(result: Any) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return json.loads(result.stdout)


@pytest.fixture
def published(snapshots: SnapshotStore, history: History) -> list[str]:
    """Two published snapshots; the pointer names the second. Token 0: below any lease's, so
    a ``snapshot push`` (which takes the store's lease) may publish after them."""
    return [
        publish_next(snapshots, history.snapshot_at(history.positions[0]), token=0),
        publish_next(snapshots, history.snapshot_at(history.positions[1]), token=0),
    ]


def verify_published(snapshots: SnapshotStore, keys: list[str], tmp_path: Path) -> None:
    """Every published snapshot still downloads with every file checked, the pointer's too."""
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.key == keys[-1]
    for key in keys:
        target = tmp_path / f"check-{key}"
        manifest = snapshots.download(key, target)
        assert digest(target) == manifest.digest
    pulled = restore(snapshots, tmp_path / "check-pulled")
    assert pulled.from_key == pointer.key


# -- an interrupted publish, for real -----------------------------------------------------------


def push_killed_mid_upload(
    snapshots: SnapshotStore, directory: Path, lease_options: list[str], tmp_path: Path
) -> None:
    env = {**os.environ, "RECEIPT_EVENTS_FAULT": "publish.mid_upload", "COLUMNS": "200"}
    done = subprocess.run(
        [str(CLI), "snapshot", "push", str(directory), snapshots.url, *lease_options],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr)


def test_an_interrupted_publish_leaves_an_orphan_that_sweep_removes(
    request: pytest.FixtureRequest,
    snapshots: SnapshotStore,
    history: History,
    published: list[str],
    tmp_path: Path,
) -> None:
    lease_options = []
    if snapshots.url.startswith("s3://"):
        lease_options = ["--lease-table", request.getfixturevalue("lock_table")]
    before = objects(snapshots)
    push_killed_mid_upload(
        snapshots, history.snapshot_at(history.positions[2]), lease_options, tmp_path
    )
    left = {name: size for name, size in objects(snapshots).items() if name not in before}
    keys = {name.split("/")[1] for name in left}
    assert len(keys) == 1, left  # some files of one new key, and no manifest
    (orphan,) = keys
    assert left
    assert all(name.startswith(f"snapshots/{orphan}/files/") for name in left)
    assert {name: before[name] for name in before} == {
        name: size for name, size in objects(snapshots).items() if name in before
    }

    # young: maybe a publish in progress, so the default threshold keeps it
    young = ok_json(sweep_cli(snapshots.url, "--json"))
    assert young["orphans"] == []
    assert [row["key"] for row in young["kept"]] == [orphan]
    assert (young["deleted"], young["bytes"], young["applied"]) == (0, 0, False)

    # a dry run lists it and deletes nothing
    dry = ok_json(sweep_cli(snapshots.url, "--older-than", "0", "--json"))
    assert [(row["key"], row["files"], row["bytes"]) for row in dry["orphans"]] == [
        (orphan, len(left), sum(left.values()))
    ]
    assert (dry["deleted"], dry["bytes"], dry["applied"]) == (0, sum(left.values()), False)
    assert objects(snapshots) == {**before, **left}

    applied = ok_json(sweep_cli(snapshots.url, "--older-than", "0", "--apply", "--json"))
    assert [row["key"] for row in applied["orphans"]] == [orphan]
    assert (applied["deleted"], applied["bytes"], applied["applied"]) == (
        len(left),
        sum(left.values()),
        True,
    )
    assert objects(snapshots) == before  # exactly the orphan's files are gone
    verify_published(snapshots, published, tmp_path)
    assert ok_json(sweep_cli(snapshots.url, "--older-than", "0", "--json"))["orphans"] == []


# -- what is never touched ----------------------------------------------------------------------


def test_the_pointers_key_is_never_swept_even_without_its_manifest(
    snapshots: SnapshotStore, published: list[str]
) -> None:
    snapshots.backend.delete([f"snapshots/{published[-1]}/manifest.json"])  # damage
    pointed = under(snapshots, published[-1])
    orphan = plant_orphan(snapshots)
    result = sweep_orphans(snapshots, apply=True, now=time.time() + LATER)
    assert [row.key for row in result.orphans] == [ORPHAN]
    assert result.deleted == len(orphan)
    assert under(snapshots, published[-1]) == pointed
    assert under(snapshots, ORPHAN) == {}


def test_published_snapshots_and_foreign_keys_are_left_alone(
    snapshots: SnapshotStore, published: list[str], tmp_path: Path
) -> None:
    # a stray file inside a published snapshot's key, an unreadable manifest, and keys that
    # are not named like snapshots: none is an orphan
    snapshots.backend.put_bytes(f"snapshots/{published[0]}/files/stray.bin", b"x")
    damaged = "00000000000000000007-fedcba9876543210-t1"
    snapshots.backend.put_bytes(f"snapshots/{damaged}/manifest.json", b"{not json")
    snapshots.backend.put_bytes(f"snapshots/{damaged}/files/state.sqlite3", b"s")
    snapshots.backend.put_bytes("snapshots/notes/files/readme.txt", b"mine")
    snapshots.backend.put_bytes("snapshots/readme.txt", b"mine")
    elsewhere = "elsewhere/00000000000000000001-0000000000000000-t1/files/a"
    snapshots.backend.put_bytes(elsewhere, b"a")
    before = objects(snapshots)
    result = sweep_orphans(snapshots, apply=True, older_than=0, now=time.time() + LATER)
    assert (result.orphans, result.kept, result.deleted, result.bytes) == ([], [], 0, 0)
    assert objects(snapshots) == before
    assert snapshots.backend.get_bytes(elsewhere) == b"a"
    snapshots.backend.delete([f"snapshots/{published[0]}/files/stray.bin"])
    verify_published(snapshots, published, tmp_path)


def test_a_dry_run_deletes_nothing(snapshots: SnapshotStore, published: list[str]) -> None:
    orphan = plant_orphan(snapshots)
    before = objects(snapshots)
    result = sweep_orphans(snapshots, now=time.time() + LATER)
    assert [(row.key, row.files, row.bytes) for row in result.orphans] == [
        (ORPHAN, len(orphan), sum(orphan.values()))
    ]
    assert (result.deleted, result.bytes, result.applied) == (0, sum(orphan.values()), False)
    assert objects(snapshots) == before


def test_an_orphan_younger_than_the_threshold_is_kept_until_it_is_old_enough(
    snapshots: SnapshotStore, published: list[str]
) -> None:
    orphan = plant_orphan(snapshots)
    now = time.time()
    kept = sweep_orphans(snapshots, apply=True, now=now + DEFAULT_OLDER_THAN / 2)
    assert (kept.orphans, kept.deleted) == ([], 0)
    assert [row.key for row in kept.kept] == [ORPHAN]
    assert under(snapshots, ORPHAN) == orphan
    # a shorter threshold, or the same one later, sweeps it
    swept = sweep_orphans(snapshots, apply=True, older_than=60, now=now + 120)
    assert [row.key for row in swept.orphans] == [ORPHAN]
    assert swept.deleted == len(orphan)
    assert under(snapshots, ORPHAN) == {}


def test_the_newest_file_decides_the_age(snapshots: SnapshotStore, published: list[str]) -> None:
    """A publish still uploading has old files and a new one: the key is young."""
    plant_orphan(snapshots)
    listed = snapshots.backend.list_objects
    fresh = time.time() + LATER  # as if written just now, at the sweep's "now"

    def one_file_written_just_now(prefix: str) -> list[StoredObject]:
        found = listed(prefix)
        return [
            StoredObject(o.key, o.size, fresh) if o.key.endswith("state.sqlite3") else o
            for o in found
        ]

    snapshots.backend.list_objects = one_file_written_just_now  # type: ignore[method-assign]
    result = sweep_orphans(snapshots, apply=True, now=fresh)
    assert [row.key for row in result.kept] == [ORPHAN]
    assert result.orphans == []


def test_a_manifest_that_lands_after_the_listing_saves_its_key(
    snapshots: SnapshotStore, published: list[str]
) -> None:
    """The publish finishes between the sweep's listing and its delete: nothing is deleted."""
    orphan = plant_orphan(snapshots)
    listed = snapshots.backend.list_objects
    manifest = snapshots.backend.get_bytes(f"snapshots/{published[0]}/manifest.json")

    def listing_then_the_publish_finishes(prefix: str) -> list[StoredObject]:
        found = listed(prefix)
        if prefix == "snapshots/":
            snapshots.backend.put_bytes(f"snapshots/{ORPHAN}/manifest.json", manifest)
        return found

    snapshots.backend.list_objects = listing_then_the_publish_finishes  # type: ignore[method-assign]
    result = sweep_orphans(snapshots, apply=True, now=time.time() + LATER)
    assert (result.orphans, result.deleted, result.bytes) == ([], 0, 0)
    assert [row.key for row in result.kept] == [ORPHAN]
    assert set(orphan) < set(under(snapshots, ORPHAN))


def test_a_store_with_nothing_published_can_be_swept(snapshots: SnapshotStore) -> None:
    orphan = plant_orphan(snapshots)
    result = sweep_orphans(snapshots, apply=True, now=time.time() + LATER)
    assert [row.key for row in result.orphans] == [ORPHAN]
    assert result.deleted == len(orphan)
    assert objects(snapshots) == {}
    assert snapshots.pointer() == (None, None)


# -- leftovers only one backend has --------------------------------------------------------------


@pytest.mark.aws
def test_an_incomplete_multipart_upload_under_an_orphan_is_aborted(
    s3_bucket: str, history: History
) -> None:
    """boto3 sends a large file in parts: a publisher killed mid-file leaves an upload that no
    object listing shows, billed all the same. Under an orphan key, the sweep aborts it."""
    import boto3

    from receipt_chroma.snapshots import open_snapshot_store

    snapshots = open_snapshot_store(f"s3://{s3_bucket}/snapshots")
    publish_next(snapshots, history.snapshot_at(history.positions[0]), token=1)
    s3 = boto3.client("s3")
    name = f"snapshots/snapshots/{ORPHAN}/files/chroma/chroma.sqlite3"
    upload = s3.create_multipart_upload(Bucket=s3_bucket, Key=name)["UploadId"]
    s3.upload_part(Bucket=s3_bucket, Key=name, UploadId=upload, PartNumber=1, Body=b"p" * 1234)

    dry = sweep_orphans(snapshots, now=time.time() + LATER)
    assert [(row.key, row.files, row.bytes) for row in dry.orphans] == [(ORPHAN, 1, 1234)]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]] == [
        upload
    ]
    swept = sweep_orphans(snapshots, apply=True, now=time.time() + LATER)
    assert swept.deleted == 1
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_a_local_temporary_file_under_an_orphan_is_swept(tmp_path: Path) -> None:
    """A local put writes a temporary name first: a killed one leaves it behind."""
    from receipt_chroma.snapshots import open_snapshot_store

    snapshots = open_snapshot_store(str(tmp_path / "store"))
    temporary = tmp_path / "store" / "snapshots" / ORPHAN / "files" / ".state.sqlite3.123.tmp"
    temporary.parent.mkdir(parents=True)
    temporary.write_bytes(b"t" * 10)
    result = sweep_orphans(snapshots, apply=True, now=time.time() + LATER)
    assert [(row.key, row.files, row.bytes) for row in result.orphans] == [(ORPHAN, 1, 10)]
    assert not temporary.exists()
    assert not (tmp_path / "store" / "snapshots").exists()  # emptied directories go too


# -- the command line ----------------------------------------------------------------------------


def test_the_human_output_says_what_a_dry_run_would_do(tmp_path: Path) -> None:
    from receipt_chroma.snapshots import open_snapshot_store

    snapshots = open_snapshot_store(str(tmp_path / "store"))
    plant_orphan(snapshots)
    result = sweep_cli(snapshots.url, "--older-than", "0")
    assert result.exit_code == 0, result.stderr
    assert f"would delete snapshots/{ORPHAN}/: 2 files, 1000 bytes" in result.stdout
    assert "dry run, nothing deleted" in result.stdout
    assert "--apply" in result.stdout
    assert under(snapshots, ORPHAN)
    applied = sweep_cli(snapshots.url, "--older-than", "0s", "--apply")
    assert applied.exit_code == 0, applied.stderr
    assert f"deleted snapshots/{ORPHAN}/" in applied.stdout
    assert "deleted 2 files of 1 orphaned snapshot keys" in applied.stdout
    assert sweep_cli(snapshots.url).stdout.endswith("nothing to sweep\n")


@pytest.mark.parametrize("value", ["soon", "-1", "1w", "", "nan", "inf", "h"])
def test_a_bad_older_than_is_a_usage_error_naming_the_format(tmp_path: Path, value: str) -> None:
    result = sweep_cli(str(tmp_path / "store"), "--older-than", value)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "--older-than must be a duration" in result.stderr
    assert "90s, 15m, 1h, 2d" in result.stderr
    assert repr(value) in result.stderr


@pytest.mark.parametrize(
    ("value", "seconds"), [("0", 0.0), ("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0)]
)
def test_older_than_takes_seconds_or_a_unit(tmp_path: Path, value: str, seconds: float) -> None:
    result = ok_json(sweep_cli(str(tmp_path / "store"), "--older-than", value, "--json"))
    assert result["older_than_s"] == seconds


def test_the_help_explains_the_dry_run_and_the_threshold() -> None:
    result = CliRunner().invoke(app, ["snapshot", "sweep", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "dry run by default" in text
    assert "--apply" in text
    assert "--older-than" in text
    assert "publish in progress" in text
    assert "never touched" in text
