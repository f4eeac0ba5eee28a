"""The snapshot commands of ``receipt-events``: ``snapshot push / list / pull``,
``compact``, ``rebuild --from-snapshot``, on a local snapshot store and on S3 (the moto server,
with the lock on DynamoDB Local).

The Typer app runs in-process (``CliRunner``) on a SQLite event store file, so the command opens
the log the test wrote, with the deltas written as real Chroma directories. Failures are one
line on stderr with the documented exit status: 1 when a check fails (a corrupt snapshot, a
publish refused), 2 for bad usage (no lock table for S3, a non-empty target).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from receipt_chroma.deltas import LocalDeltaSource
from receipt_chroma.snapshots import open_snapshot_store
from receipt_cli.app import app
from receipt_events.store import open_store
from tests.projection.helpers import Log, digest, project, write_deltas
from tests.support.snapshot_history import History
from tests.support.snapshot_site import BACKENDS

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass
class World:
    url: str  # the event store
    log: Log
    history: History
    deltas: Path
    tmp: Path
    dest: str  # the snapshot store: a directory or s3://bucket/prefix
    lock_options: list[str]

    def run(self, *args: str | Path) -> Any:
        return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)

    def run_with_log(self, *args: str | Path) -> Any:
        """A command that reads the log: with this world's store and deltas."""
        return self.run(*args, "--store", self.url, "--deltas", self.deltas)

    def head(self) -> int:
        return self.log.store.head()

    def snapshot_at(self, position: int) -> Path:
        """A snapshot directory projected to ``position`` from the deltas on disk (those the
        commands read: Chroma hands vectors back renormalised, so not the in-memory ones)."""
        path = self.tmp / "directories" / f"at-{position}"
        if not path.exists():
            project(self.log.store, path, LocalDeltaSource(self.deltas), to=position)
        return path


@pytest.fixture(params=BACKENDS)
def world(
    request: pytest.FixtureRequest,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    for variable in (
        "RECEIPT_EVENTS_STORE",
        "RECEIPT_EVENTS_DELTAS",
        "RECEIPT_EVENTS_LOCK_TABLE",
        "RECEIPT_EVENTS_CACHE",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    store = open_store(sqlite_url)
    log = Log(store)
    history = History(log, tmp_path / "directories")
    write_deltas(log.deltas, tmp_path / "deltas")
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        dest, lock = (
            f"s3://{bucket}/snapshots",
            ["--lease-table", request.getfixturevalue("lock_table")],
        )
    else:
        dest, lock = str(tmp_path / "store"), []
    yield World(sqlite_url, log, history, tmp_path / "deltas", tmp_path, dest, lock)
    store.close()


def ok_json(result: Any) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return json.loads(result.stdout)


def one_line_error(result: Any, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert result.stdout == ""
    text: str = result.stderr
    assert text.endswith("\n")
    assert text.count("\n") == 1, text
    assert "Traceback" not in text
    assert text.startswith("error: "), text
    return text[len("error: ") : -1]


def push(world: World, directory: Path) -> Any:
    return ok_json(
        world.run("snapshot", "push", directory, world.dest, *world.lock_options, "--json")
    )


# -- push, list, pull ------------------------------------------------------------------------


def test_push_list_and_pull(world: World) -> None:
    positions = world.history.positions
    first = world.snapshot_at(positions[1])
    second = world.snapshot_at(positions[2])
    pushed = push(world, first)
    assert pushed["position"] == positions[1]
    prefix = f"{positions[1]:020d}-{digest(first).removeprefix('sha256:')[:16]}-t"
    assert pushed["key"].startswith(prefix)
    assert pushed["key"].removeprefix(prefix).isdigit()  # the publisher's fencing token
    newer = push(world, second)
    assert newer["position"] == positions[2]

    listed = ok_json(world.run("snapshot", "list", world.dest, "--json"))
    assert listed["latest"] == newer["key"]
    assert [
        (row["key"], row["position"], row["latest"], row["parent"]) for row in listed["snapshots"]
    ] == [
        (pushed["key"], positions[1], False, None),
        (newer["key"], positions[2], True, pushed["key"]),
    ]
    assert all(DIGEST.match(row["digest"]) for row in listed["snapshots"])
    tokens = [row["token"] for row in listed["snapshots"]]
    assert tokens[0] < tokens[1]  # each push took the lock anew

    pulled = ok_json(world.run("snapshot", "pull", world.dest, world.tmp / "pulled", "--json"))
    assert (pulled["position"], pulled["digest"]) == (positions[2], digest(second))
    assert digest(world.tmp / "pulled") == pulled["digest"]

    # an older snapshot is not published over a newer one
    refused = one_line_error(
        world.run("snapshot", "push", first, world.dest, *world.lock_options, "--json"), 1
    )
    assert refused.startswith("not published: ")
    assert f"already holds position {positions[2]}" in refused
    listed_again = ok_json(world.run("snapshot", "list", world.dest, "--json"))
    assert listed_again["latest"] == newer["key"]


def test_pull_to_a_position_equals_rebuild_to_it(world: World) -> None:
    positions = world.history.positions
    push(world, world.snapshot_at(positions[0]))
    push(world, world.snapshot_at(positions[2]))
    for target in (positions[2] + 1, positions[1], world.head()):
        pulled = ok_json(
            world.run_with_log(
                "snapshot", "pull", world.dest, world.tmp / f"pulled-{target}",
                "--position", str(target), "--json",
            )
        )  # fmt: skip
        rebuilt = ok_json(
            world.run_with_log(
                "rebuild",
                "--snapshot-dir",
                world.tmp / f"rebuilt-{target}",
                "--to",
                str(target),
                "--json",
            )
        )
        assert (pulled["position"], pulled["digest"]) == (target, rebuilt["digest"])
        assert pulled["from_position"] == (positions[2] if target > positions[2] else positions[0])
        assert pulled["applied"] == target - pulled["from_position"]


def test_rebuild_from_a_snapshot_store_to_a_position(world: World) -> None:
    positions = world.history.positions
    push(world, world.snapshot_at(positions[1]))
    target = positions[2] + 1
    restored = ok_json(
        world.run_with_log(
            "rebuild", "--snapshot-dir", world.tmp / "restored", "--from-snapshot", world.dest,
            "--to", str(target), "--json",
        )
    )  # fmt: skip
    rebuilt = ok_json(
        world.run_with_log(
            "rebuild", "--snapshot-dir", world.tmp / "rebuilt", "--to", str(target), "--json"
        )
    )
    assert (restored["position"], restored["digest"]) == (target, rebuilt["digest"])
    assert restored["from_snapshot"] == positions[1]
    assert restored["applied"] == target - positions[1]
    assert digest(world.tmp / "restored") == rebuilt["digest"]
    # without --to: the head of the log
    to_head = ok_json(
        world.run_with_log(
            "rebuild", "--snapshot-dir", world.tmp / "head", "--from-snapshot", world.dest, "--json"
        )
    )
    assert to_head["position"] == world.head()


# -- compact -------------------------------------------------------------------------------------


def test_compact_publishes_what_is_new_and_only_that(world: World) -> None:
    cache = world.tmp / "cache"

    def compact() -> Any:
        return ok_json(
            world.run_with_log(
                "compact",
                "--snapshot-store",
                world.dest,
                "--snapshot-dir",
                cache,
                *world.lock_options,
                "--json",
            )
        )

    first = compact()
    head = world.head()
    assert (first["published"], first["position"], first["applied"]) == (True, head, head)
    again = compact()
    assert (again["published"], again["position"], again["applied"]) == (False, head, 0)
    assert again["key"] == first["key"]
    world.log.add(world.log.label(2, 1, "CASH", "VALID"))
    write_deltas(world.log.deltas, world.deltas)
    third = compact()
    assert (third["published"], third["position"], third["applied"]) == (True, head + 1, 1)
    assert third["reused_cache"] is True
    listed = ok_json(world.run("snapshot", "list", world.dest, "--json"))
    assert [row["position"] for row in listed["snapshots"]] == [head, head + 1]
    assert listed["latest"] == third["key"]
    rebuilt = ok_json(
        world.run_with_log("rebuild", "--snapshot-dir", world.tmp / "rebuilt", "--json")
    )
    pulled = ok_json(world.run("snapshot", "pull", world.dest, world.tmp / "pulled", "--json"))
    assert pulled["digest"] == rebuilt["digest"]


@pytest.mark.parametrize("command", ["compact", "push"])
def test_publishing_to_s3_without_a_lock_table_is_bad_usage(
    command: str, sqlite_url: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECEIPT_EVENTS_LOCK_TABLE", raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    dest = f"s3://{s3_bucket}/snapshots"
    store = open_store(sqlite_url)
    log = Log(store)
    history = History(log, tmp_path / "directories")
    write_deltas(log.deltas, tmp_path / "deltas")
    if command == "compact":
        args = ["compact", "--snapshot-store", dest, "--snapshot-dir", str(tmp_path / "cache")]
        args += ["--store", sqlite_url, "--deltas", str(tmp_path / "deltas")]
    else:
        args = ["snapshot", "push", str(history.snapshot_at(history.positions[0])), dest]
    store.close()
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    message = one_line_error(result, 2)
    assert "--lease-table" in message
    assert dest in message
    assert open_snapshot_store(dest).pointer() == (None, None)


# -- refusals ------------------------------------------------------------------------------------


def test_a_corrupted_snapshot_file_is_refused_by_pull(world: World) -> None:
    pushed = push(world, world.snapshot_at(world.history.positions[-1]))
    backend = open_snapshot_store(world.dest).backend
    victim = f"snapshots/{pushed['key']}/files/state.sqlite3"
    data = backend.get_bytes(victim)
    backend.put_bytes(victim, data[:-1] + bytes([data[-1] ^ 1]))  # one bit
    message = one_line_error(
        world.run("snapshot", "pull", world.dest, world.tmp / "pulled", "--json"), 1
    )
    assert message.startswith("refused: ")
    assert pushed["key"] in message
    assert "state.sqlite3" in message
    assert not (world.tmp / "pulled").exists()
    # and restoring to a position from it is refused the same way
    message = one_line_error(
        world.run_with_log(
            "rebuild",
            "--snapshot-dir",
            world.tmp / "rebuilt",
            "--from-snapshot",
            world.dest,
            "--json",
        ),
        1,
    )
    assert message.startswith("refused: ")
    assert "state.sqlite3" in message


def test_pulling_into_a_non_empty_directory_is_bad_usage(world: World) -> None:
    push(world, world.snapshot_at(world.history.positions[0]))
    target = world.tmp / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    message = one_line_error(world.run("snapshot", "pull", world.dest, target, "--json"), 2)
    assert str(target) in message
    assert "not empty" in message
    assert [path.name for path in target.iterdir()] == ["keep.txt"]


def test_pulling_from_an_empty_store_is_refused(world: World) -> None:
    message = one_line_error(
        world.run("snapshot", "pull", world.dest, world.tmp / "pulled", "--json"), 1
    )
    assert "no published snapshot" in message
    assert not (world.tmp / "pulled").exists()
