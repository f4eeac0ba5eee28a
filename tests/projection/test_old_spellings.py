"""Flags renamed in 0.2 still work under their old spellings, for one release: hidden from
``--help``, each use warned about on stderr, and doing exactly what the new flag does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli_runs import ingested_history, ok_json, run

RENAMED = {  # command → (old flag, new flag)
    "project": [("--chroma", "--snapshot-dir")],
    "diff": [("--chroma", "--snapshot-dir")],
    "status": [("--chroma", "--snapshot-dir")],
    "rebuild": [("--out", "--snapshot-dir")],
    "compact": [
        ("--cache", "--snapshot-dir"),
        ("--snapshots", "--snapshot-store"),
        ("--lock-table", "--lease-table"),
        ("--lock-ttl", "--lease-ttl"),
    ],
    "snapshot push": [("--lock-table", "--lease-table"), ("--lock-ttl", "--lease-ttl")],
}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A SQLite store holding a small synthetic history, and the root of its deltas."""
    for name in ("RECEIPT_EVENTS_STORE", "RECEIPT_EVENTS_CACHE", "RECEIPT_EVENTS_DELTAS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    return ingested_history(tmp_path, seed=5), tmp_path


@pytest.mark.parametrize(
    ("command", "old", "new"), [(c, o, n) for c, p in RENAMED.items() for o, n in p]
)
def test_help_shows_the_new_flag_only(command: str, old: str, new: str) -> None:
    shown = run(*command.split(), "--help")
    assert shown.exit_code == 0
    flags = set(shown.stdout.replace(",", " ").split())
    assert new in flags
    assert old not in flags


def test_old_flags_do_what_the_new_ones_do_and_say_so(world: tuple[str, Path]) -> None:
    store, root = world
    common = ["--store", store, "--deltas", root, "--json"]
    new = ok_json(run("project", "--snapshot-dir", root / "new", "--to", "40", *common))
    old = run("project", "--chroma", root / "old", "--to", "40", *common)
    assert ok_json(old) == new
    assert "--chroma is now --snapshot-dir" in old.stderr

    # --chroma=DIR (one argument) is rewritten too; both directories answer the same
    status_old = run("status", f"--chroma={root / 'old'}", "--store", store, "--json")
    status_new = run("status", "--snapshot-dir", root / "new", "--store", store, "--json")
    assert ok_json(status_old)["checkpoint"] == ok_json(status_new)["checkpoint"] == 40

    diffs = [
        run("diff", flag, root / name, *common)
        for flag, name in (("--chroma", "old"), ("--snapshot-dir", "new"))
    ]
    assert ok_json(diffs[0])["records"] == ok_json(diffs[1])["records"]

    rebuilt_old = run("rebuild", "--out", root / "rebuilt-old", *common)
    rebuilt_new = ok_json(run("rebuild", "--snapshot-dir", root / "rebuilt-new", *common))
    assert ok_json(rebuilt_old)["digest"] == rebuilt_new["digest"]
    assert "--out is now --snapshot-dir" in rebuilt_old.stderr


def test_compact_under_its_old_flags(world: tuple[str, Path]) -> None:
    store, root = world
    old = run(
        "compact",
        "--snapshots",
        root / "store",
        "--cache",
        root / "work",
        "--lock-ttl",
        "30",
        "--store",
        store,
        "--deltas",
        root,
        "--json",
    )
    result = ok_json(old)
    assert result["published"] is True
    assert (root / "work" / "state.sqlite3").is_file()  # --cache named the snapshot directory
    assert (root / "store" / "latest.json").is_file()  # --snapshots named the store
    for warned in ("--snapshots is now --snapshot-store", "--cache is now --snapshot-dir"):
        assert warned in old.stderr


def test_park_is_read_as_hold(world: tuple[str, Path]) -> None:
    store, root = world
    result = run(
        "project",
        "--snapshot-dir",
        root / "snap",
        "--store",
        store,
        "--deltas",
        root / "nowhere",  # every delta missing: held back, not a stop
        "--on-missing-delta",
        "park",
        "--json",
    )
    assert ok_json(result)["held_deltas"] > 0
    assert "--on-missing-delta park is now hold" in result.stderr


def test_a_value_after_a_double_dash_is_not_rewritten() -> None:
    from receipt_events.cli.aliases import with_aliases

    command = with_aliases({"--out": "--snapshot-dir"})
    assert command.rewrite(["--out", "a", "--", "--out"]) == ["--snapshot-dir", "a", "--", "--out"]
