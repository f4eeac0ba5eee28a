"""Opening the embedded SQLite store: many processes creating one new file at once, and a file
that is not a database."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from eventsourcing.persistence import PersistenceError
from typer.testing import CliRunner

from receipt_cli.app import app
from receipt_events.store.sqlite import open_sqlite

ROUNDS = 10
OPENERS = 6


def _open_when_released(path: str, start: object) -> None:
    start.wait(timeout=60)  # type: ignore[attr-defined]
    datastore, _recorders = open_sqlite(path)
    datastore.close()


def test_many_processes_creating_the_same_new_file_all_open_it(tmp_path: Path) -> None:
    """SQLite refuses a journal-mode change it cannot make at once without waiting; before the
    store set WAL itself with retries, about one opener in twenty failed with "database is
    locked" here (and in CI)."""
    context = multiprocessing.get_context("fork")  # cheap enough for many rounds
    exit_codes: list[int | None] = []
    for round_number in range(ROUNDS):
        path = str(tmp_path / f"round-{round_number}" / "events.db")
        start = context.Barrier(OPENERS)
        openers = [
            context.Process(target=_open_when_released, args=(path, start)) for _ in range(OPENERS)
        ]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=60)
        exit_codes += [opener.exitcode for opener in openers]
    assert exit_codes == [0] * (ROUNDS * OPENERS)


def test_a_file_that_is_not_a_database_is_a_persistence_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.write_text("these are not the bytes of a SQLite database\n" * 100)
    with pytest.raises(PersistenceError, match="not a database") as raised:
        open_sqlite(str(path))
    assert str(path) in str(raised.value)


def test_the_cli_reports_a_file_that_is_not_a_database_without_a_traceback(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    path.write_text("these are not the bytes of a SQLite database\n" * 100)
    result = CliRunner().invoke(app, ["status", "--store", f"sqlite:///{path}"])
    assert result.exit_code == 1
    assert f"cannot open the event store sqlite:///{path}" in result.stderr
    assert "not a database" in result.stderr
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stderr
