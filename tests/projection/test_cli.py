"""The projection commands of ``receipt-events`` on a SQLite store and real deltas.

Most tests run the Typer app in-process (``CliRunner``); the store is a SQLite file, so the
command opens the same data the test wrote, and the deltas are real Chroma directories
written with ``write_delta``. Two tests run the installed console script in a subprocess to
see exactly what a user sees: the exit status and one line on stderr, no traceback.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from projections.runner import snapshot_digest
from projections.snapshot_dir import open_snapshot
from receipt_chroma.client import open_chroma
from receipt_chroma.deltas import LocalDeltaSource
from receipt_cli.app import app
from receipt_events.store import EventStore, open_store
from tests.projection.helpers import (
    Log,
    checkpoint,
    digest,
    line_id,
    make_v1,
    project,
    word_id,
    write_deltas,
)

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = ROOT / ".venv" / "bin" / "receipt-events"
W11 = word_id(1, 1)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass
class World:
    url: str
    store: EventStore
    log: Log
    deltas: Path
    snap: Path
    tmp: Path

    def publish(self) -> None:
        """Write every delta the log's runs hold as a real delta directory."""
        shutil.rmtree(self.deltas, ignore_errors=True)
        write_deltas(self.log.deltas, self.deltas)

    def source(self) -> LocalDeltaSource:
        return LocalDeltaSource(self.deltas)


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("RECEIPT_EVENTS_STORE", raising=False)
    monkeypatch.delenv("RECEIPT_EVENTS_DELTAS", raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    store = open_store(sqlite_url)
    log = Log(store)
    log.add(
        log.run("run-1", lines={1: "A", 2: "B"}, words={(1, 1): "A", (1, 2): "B"}),
        log.place(merchant_name="Shop"),
        log.label(1, 1, "TOTAL", "VALID"),
    )
    world = World(sqlite_url, store, log, tmp_path / "deltas", tmp_path / "snap", tmp_path)
    world.publish()
    yield world
    store.close()


def cli(world: World, *args: str | Path) -> Any:
    """Run ``receipt-events`` in-process with the world's store and deltas."""
    command = [str(arg) for arg in args]
    if command[0] != "digest":
        command += ["--store", world.url]
    if command[0] in ("project", "rebuild", "verify", "diff"):
        command += ["--deltas", str(world.deltas)]
    return CliRunner().invoke(app, command, catch_exceptions=False)


def cli_json(world: World, *args: str | Path, exit_code: int = 0) -> Any:
    result = cli(world, *args, "--json")
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert result.stderr == ""
    return json.loads(result.stdout)


def one_line_error(result: Any, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert result.stdout == ""
    text = result.stderr
    assert text.endswith("\n")
    assert text.count("\n") == 1, text
    assert "Traceback" not in text
    assert text.startswith("error: "), text
    return str(text[len("error: ") : -1])


# -- project, status, digest -----------------------------------------------------------------


def test_project_json_reports_from_to_applied_and_records_written(world: World) -> None:
    assert cli_json(world, "project", "--snapshot-dir", world.snap, "--to", "1") == {
        "from": 0,
        "to": 1,
        "applied": 1,
        "records_written": 4,
        "added": 4,
        "updated": 0,
        "deleted": 0,
        "held_deltas": 0,
    }
    assert cli_json(world, "project", "--snapshot-dir", world.snap) == {
        "from": 1,
        "to": 3,
        "applied": 2,
        "records_written": 4,
        "added": 0,
        "updated": 4,
        "deleted": 0,
        "held_deltas": 0,
    }
    assert cli_json(world, "project", "--snapshot-dir", world.snap) == {
        "from": 3,
        "to": 3,
        "applied": 0,
        "records_written": 0,
        "added": 0,
        "updated": 0,
        "deleted": 0,
        "held_deltas": 0,
    }
    # the same as projecting in-process from the same deltas
    project(world.store, world.tmp / "direct", world.source())
    assert digest(world.snap) == digest(world.tmp / "direct")


def test_status_with_chroma_shows_checkpoint_and_lag(world: World) -> None:
    cli_json(world, "project", "--snapshot-dir", world.snap, "--to", "2")
    assert cli_json(world, "status", "--snapshot-dir", world.snap) == {
        "store": world.url,
        "head": 3,
        "parked": 0,
        "checkpoint": 2,
        "lag": 1,
        "inflight_to": None,
        "records": {"lines": 2, "words": 2},
        "held_deltas": [],
        "models": {
            name: {
                "known": False,
                "label": "unknown",
                "function": "unknown",
                "config": {},
                "dimension": 8,
                "deltas": {"unknown": 1},
            }
            for name in ("lines", "words")
        },
    }
    human = cli(world, "status", "--snapshot-dir", world.snap)
    assert human.exit_code == 0
    assert re.search(r"^checkpoint +2$", human.stdout, re.MULTILINE)
    assert re.search(r"^lag +1$", human.stdout, re.MULTILINE)


def test_status_with_chroma_lists_parked_deltas(world: World) -> None:
    log = world.log
    (position,) = log.add(log.run("run-2", words={(1, 1): "A2"}, receipt=2))
    del log.deltas.deltas[("run-2/words", "words")]
    world.publish()
    assert cli_json(
        world, "project", "--snapshot-dir", world.snap, "--on-missing-delta", "hold"
    ) == {
        "from": 0,
        "to": 4,
        "applied": 4,
        "records_written": 4,
        "added": 4,
        "updated": 0,
        "deleted": 0,
        "held_deltas": 1,
    }
    status = cli_json(world, "status", "--snapshot-dir", world.snap)
    assert (status["checkpoint"], status["lag"]) == (4, 0)
    assert status["held_deltas"] == [
        {
            "run_id": "run-2",
            "collection": "words",
            "location": "run-2/words",
            "position": position,
            "error": f"delta run-2/words: not found at {world.deltas / 'run-2/words'}",
        }
    ]


def test_digest_json(world: World) -> None:
    cli_json(world, "project", "--snapshot-dir", world.snap)
    found = cli_json(world, "digest", world.snap)
    assert set(found) == {"position", "digest", "counts"}
    assert DIGEST.match(found["digest"])
    expected = snapshot_digest(world.snap)
    assert found == {
        "position": 3,
        "digest": expected.digest,
        "counts": {"lines": 2, "words": 2},
    }


# -- rebuild -----------------------------------------------------------------------------


def test_rebuild_to_a_position_and_from_a_snapshot(world: World) -> None:
    partial = cli_json(world, "rebuild", "--snapshot-dir", world.tmp / "at-2", "--to", "2")
    assert partial == {
        "position": 2,
        "digest": snapshot_digest(world.tmp / "at-2").digest,
        "counts": {"lines": 2, "words": 2},
        "applied": 2,
        "from_snapshot": None,
    }
    assert DIGEST.match(partial["digest"])
    full = cli_json(world, "rebuild", "--snapshot-dir", world.tmp / "full")
    assert (full["position"], full["applied"], full["from_snapshot"]) == (3, 3, None)
    continued = cli_json(
        world,
        "rebuild",
        "--snapshot-dir",
        world.tmp / "continued",
        "--from-snapshot",
        world.tmp / "at-2",
    )
    assert continued == {
        "position": 3,
        "digest": full["digest"],
        "counts": {"lines": 2, "words": 2},
        "applied": 1,
        "from_snapshot": 2,
    }
    assert checkpoint(world.tmp / "at-2") == (2, None)  # the source snapshot is not touched
    assert partial["digest"] != full["digest"]


# -- verify and diff -------------------------------------------------------------------------


def test_verify_json_ok_and_a_hand_corrupted_record(world: World) -> None:
    cli_json(world, "project", "--snapshot-dir", world.snap)
    ok = cli_json(world, "verify", world.snap)
    assert ok["ok"] is True
    assert (ok["position"], ok["differences"], ok["digest"]) == (
        3,
        [],
        ok["rebuilt_digest"],
    )
    with open_chroma(world.snap / "chroma", create=False) as chroma:
        chroma.collection("words").update(ids=[W11], metadatas=[{"label_status": "unvalidated"}])
    bad = cli_json(world, "verify", world.snap, exit_code=1)
    assert bad["ok"] is False
    assert bad["position"] == 3
    assert bad["rebuilt_digest"] == ok["digest"] != bad["digest"]
    assert bad["differences"] == [
        {"collection": "words", "id": W11, "fields": ["metadata.label_status"]}
    ]
    assert bad["differing_records"] == 1
    human = cli(world, "verify", world.snap)
    assert human.exit_code == 1
    assert f"words {W11}: metadata.label_status" in human.stdout


def test_diff_json(world: World) -> None:
    cli_json(world, "project", "--snapshot-dir", world.snap)
    log = world.log
    log.add(log.label(1, 2, "AMOUNT", "PENDING", by="m"), log.remove_line(2))
    assert cli_json(world, "diff", "--snapshot-dir", world.snap) == {
        "from_position": 3,
        "to_position": 5,
        "events": 2,
        "add": 0,
        "update": 1,
        "delete": 1,
        "records": [
            {"collection": "lines", "id": line_id(2), "operation": "delete"},
            {"collection": "words", "id": word_id(1, 2), "operation": "update"},
        ],
        "stopped": None,
    }
    assert checkpoint(world.snap) == (3, None)


# -- exit statuses -----------------------------------------------------------------------------


def test_a_stopped_projection_exits_1_with_one_line(world: World) -> None:
    log = world.log
    (position,) = log.add(log.run("run-2", words={(1, 1): "A2"}, receipt=2))
    del log.deltas.deltas[("run-2/lines", "lines")]
    world.publish()
    message = one_line_error(cli(world, "project", "--snapshot-dir", world.snap), 1)
    assert message == (
        f"projection stopped: log position {position}: compaction run run-2, collection lines: "
        f"delta run-2/lines: not found at {world.deltas / 'run-2/lines'}"
    )
    assert checkpoint(world.snap) == (3, None)
    assert one_line_error(cli(world, "rebuild", "--snapshot-dir", world.tmp / "r"), 1) == message


@pytest.mark.parametrize("command", ["digest", "verify", "status", "diff"])
def test_a_directory_that_is_not_a_snapshot_exits_2(world: World, command: str) -> None:
    empty = world.tmp / "empty"
    empty.mkdir()
    args: list[str | Path] = {
        "digest": ["digest", empty],
        "verify": ["verify", empty],
        "status": ["status", "--snapshot-dir", empty],
        "diff": ["diff", "--snapshot-dir", empty],
    }[command]
    message = one_line_error(cli(world, *args), 2)
    assert message == f"{empty} is not a snapshot directory (no state.sqlite3)"
    assert list(empty.iterdir()) == []  # nothing was created in it


def test_project_into_a_regular_file_exits_2(world: World) -> None:
    afile = world.tmp / "afile"
    afile.write_text("not a directory")
    message = one_line_error(cli(world, "project", "--snapshot-dir", afile), 2)
    assert message == f"cannot create the snapshot directory {afile}: File exists"
    inside = afile / "snap"
    message = one_line_error(cli(world, "project", "--snapshot-dir", inside), 2)
    assert message == f"cannot create the snapshot directory {inside}: Not a directory"
    assert afile.read_text() == "not a directory"


def test_rebuild_into_a_regular_file_or_a_non_empty_directory_exits_2(world: World) -> None:
    afile = world.tmp / "afile"
    afile.write_text("not a directory")
    assert one_line_error(cli(world, "rebuild", "--snapshot-dir", afile), 2) == (
        f"{afile} is not a directory; rebuild writes a new snapshot directory"
    )
    full = world.tmp / "full"
    (full / "something").mkdir(parents=True)
    assert one_line_error(cli(world, "rebuild", "--snapshot-dir", full), 2) == (
        f"{full} is not empty; rebuild writes a new snapshot directory"
    )
    assert one_line_error(
        cli(world, "rebuild", "--snapshot-dir", world.tmp / "new", "--from-snapshot", full), 2
    ) == (f"{full} is neither a snapshot directory nor a snapshot store")


def test_a_bad_policy_exits_2(world: World) -> None:
    message = one_line_error(
        cli(world, "project", "--snapshot-dir", world.snap, "--on-missing-delta", "skip"), 2
    )
    assert message == "--on-missing-delta must be 'stop' or 'hold', not 'skip'"


def test_a_busy_snapshot_directory_exits_1(world: World) -> None:
    cli_json(world, "project", "--snapshot-dir", world.snap)
    with open_snapshot(world.snap):
        message = one_line_error(cli(world, "project", "--snapshot-dir", world.snap), 1)
    assert "is being written by another process (pid" in message


# -- the installed console script --------------------------------------------------------------


def run_script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "COLUMNS": "80"},
    )


def test_the_console_script_stops_with_exit_1_and_one_line(world: World) -> None:
    log = world.log
    (position,) = log.add(log.run("run-2", words={(1, 1): "A2"}, receipt=2))
    world.publish()
    shutil.rmtree(world.deltas / "run-2" / "words")
    done = run_script(
        "project", "--snapshot-dir", world.snap, "--store", world.url, "--deltas", world.deltas
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"error: projection stopped: log position {position}: compaction run run-2, "
        f"collection words: delta run-2/words: not found at {world.deltas / 'run-2/words'}\n"
    )
    bad = run_script("digest", world.tmp / "nothing-here", "--json")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == f"error: {world.tmp / 'nothing-here'} is not a snapshot directory " + (
        "(no state.sqlite3)\n"
    )


def test_verify_of_a_snapshot_from_before_digest_v2_exits_2_naming_rebuild(world: World) -> None:
    cli_json(world, "project", "--snapshot-dir", world.snap)
    assert (
        cli_json(world, "verify", world.snap)["manifest_digest"]
        == snapshot_digest(world.snap).digest
    )
    make_v1(world.snap)  # as receipt-events wrote it before digest v2
    message = one_line_error(cli(world, "verify", world.snap), 2)
    assert "is a snapshot from before canonical digest v2" in message
    assert "receipt-events rebuild --out NEW_DIR" in message
    assert str(world.snap) in message
