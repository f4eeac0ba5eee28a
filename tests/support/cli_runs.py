"""Running the ``receipt-events`` app in-process, on a small synthetic history of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from receipt_cli.app import app
from synthetic.deltas import write_run_deltas
from synthetic.history import HistoryConfig, generate_history, to_jsonl


def run(*args: str | Path) -> Any:
    """One command, in-process; the result has ``exit_code``, ``stdout`` and ``stderr``."""
    return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def ok_json(result: Any) -> Any:
    """The JSON document a command that succeeded printed."""
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def ingested_history(root: Path, *, seed: int, receipts: int = 3) -> str:
    """A SQLite store under ``root`` holding a synthetic history ingested by the CLI, with the
    history's deltas (8-d) written under ``root``; returns the store's URL."""
    history = generate_history(HistoryConfig(seed=seed, receipts=receipts, delta_root="deltas"))
    for content in history.runs:
        write_run_deltas(content, root, dimension=8)
    stream = root / "stream.jsonl"
    stream.write_bytes(to_jsonl(history.records))
    store = f"sqlite:///{root / 'events.db'}"
    ok_json(run("ingest", stream, "--store", store, "--json"))
    return store
