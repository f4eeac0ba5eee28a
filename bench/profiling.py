"""Reading a cProfile run: the functions with the most own time, named short."""

from __future__ import annotations

import cProfile
import pstats
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def top_functions(profile: cProfile.Profile, count: int) -> list[tuple[str, float, float, int]]:
    """The functions with the most own time: (name, own s, cumulative s, calls)."""
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.items():
        short = filename.split("site-packages/")[-1].removeprefix(f"{ROOT}/")
        rows.append((f"{short}:{line}({function})", own, cumulative, calls))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows[:count]
