"""``generate``: a seeded synthetic stream history, as AWS would deliver it, for trying things."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from receipt_events.cli.options import JsonOption
from receipt_events.cli.output import console, emit_json
from synthetic.history import HistoryConfig, corrupt_lines, generate_history, to_jsonl


def generate_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Write the JSON Lines here ('-' = stdout).")
    ],
    receipts: Annotated[int, typer.Option("--receipts", min=1, help="Receipts to simulate.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same history.")] = 0,
    corrupt: Annotated[
        int, typer.Option("--corrupt", min=0, help="Malformed records to mix in.")
    ] = 0,
    json: JsonOption = False,
) -> None:
    """Write a seeded synthetic stream history (as AWS emits it) as JSON Lines."""
    history = generate_history(HistoryConfig(seed=seed, receipts=receipts))
    data = to_jsonl(history.records)
    if corrupt:
        data = corrupt_lines(data, corrupt, seed)
    if str(out) == "-":
        sys.stdout.buffer.write(data)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    lines = data.count(b"\n")
    if json:
        emit_json({"path": str(out), "records": lines, "runs": len(history.runs)})
    else:
        console.print(f"wrote {lines} records ({len(history.runs)} compaction runs) to {out}")
