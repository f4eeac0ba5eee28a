"""Lambda redeliveries: windows of records (a retried batch) emitted again a little later.

Exact copies, same eventID, so ingest must recognise them as duplicates. Kept apart from the
simulation because they are a property of the delivery, not of any writer.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

from synthetic.history.jsonl import ENCODER


def redeliver(
    rng: random.Random, records: list[dict[str, Any]], intents: list[str], rate: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """The records and intents with about ``rate`` of them copied in again, a little later.

    Copies are deep (decoded from the original's JSON), so changing one never changes the
    other. With nothing to copy the same lists come back.
    """
    copies = _windows(rng, len(records), rate)
    if not copies:
        return records, intents
    woven: list[dict[str, Any]] = []
    woven_intents: list[str] = []
    for index, record in enumerate(records):
        woven.append(record)
        woven_intents.append(intents[index])
        for start, length in copies.get(index, ()):
            for original in records[start : start + length]:
                woven.append(msgspec.json.decode(ENCODER.encode(original)))
                woven_intents.append("redelivery")
    return woven, woven_intents


def _windows(rng: random.Random, size: int, rate: float) -> dict[int, list[tuple[int, int]]]:
    """Windows of records (a retried batch) re-emitted a little later: after index → windows."""
    wanted = round(size * rate)
    windows: dict[int, list[tuple[int, int]]] = {}
    copied = 0
    while copied < wanted:
        length = min(rng.choice((1, 2, 3, 5, 8, 10)), wanted - copied, size)
        start = rng.randrange(size - length + 1)
        after = min(size - 1, start + length - 1 + rng.randint(0, 100))
        windows.setdefault(after, []).append((start, length))
        copied += length
    return windows
