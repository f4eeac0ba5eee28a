"""The figures the reliability suite reports: one row per case, summed per scenario.

A test records one row per case with :func:`record_case` (or the ``figures`` fixture), naming
its scenario and what happened. At the end of the session (the ``pytest_terminal_summary``
hook in ``tests/reliability/conftest.py``) the rows are summed per scenario, printed as a
table, and written with the rows themselves to ``tests/reliability/.last-figures.json`` (or
``$RELIABILITY_FIGURES``). The counted keys of a row (each defaults to 0): ``divergences`` (a
snapshot or log that differs from a clean rebuild), ``lost_updates`` (changes missing at the
end), ``doubled`` (changes stored twice), ``crashes`` (unexpected process deaths or
exceptions), ``kills`` (injected SIGKILLs that landed); any other key is kept in the row as it
is.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.reliability_profile import PROFILE

FIGURES_ENV = "RELIABILITY_FIGURES"  # write the figures there instead (bench/reliability.py)
FIGURES_FILE = Path(
    os.environ.get(FIGURES_ENV) or Path(__file__).parents[1] / "reliability" / ".last-figures.json"
)
COUNTED = ("divergences", "lost_updates", "doubled", "crashes", "kills")

_rows: list[dict[str, Any]] = []
_rows_lock = threading.Lock()
_started = time.time()


def record_case(scenario: str, **row: Any) -> None:
    """Record one case of a scenario (see the module docstring for the counted keys)."""
    with _rows_lock:
        _rows.append({"scenario": scenario, **row})


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    scenarios: dict[str, dict[str, int]] = {}
    for row in rows:
        totals = scenarios.setdefault(row["scenario"], {"cases": 0, **dict.fromkeys(COUNTED, 0)})
        totals["cases"] += 1
        for key in COUNTED:
            totals[key] += int(row.get(key, 0) or 0)
    return dict(sorted(scenarios.items()))


def figures_document() -> dict[str, Any]:
    with _rows_lock:
        rows = list(_rows)
    scenarios = summarise(rows)
    return {
        "profile": PROFILE.name,
        "seeds_per_scenario": PROFILE.seeds,
        "seconds": round(time.time() - _started, 1),
        "totals": {
            "cases": sum(s["cases"] for s in scenarios.values()),
            **{key: sum(s[key] for s in scenarios.values()) for key in COUNTED},
        },
        "scenarios": scenarios,
        "cases": rows,
    }


def report_figures(terminalreporter: Any) -> None:
    """Write the figures file and print the table, if any case was recorded."""
    if not _rows:
        return
    document = figures_document()
    try:
        FIGURES_FILE.write_text(json.dumps(document, indent=1, default=str) + "\n")
    except OSError as error:  # a read-only checkout must not fail the run
        terminalreporter.write_line(f"could not write {FIGURES_FILE}: {error}")
    write = terminalreporter.write_line
    terminalreporter.section(f"reliability figures (profile {PROFILE.name})")
    header = f"{'scenario':<52} {'cases':>5} " + " ".join(f"{key:>12}" for key in COUNTED)
    write(header)
    for name, totals in document["scenarios"].items():
        write(
            f"{name:<52} {totals['cases']:>5} " + " ".join(f"{totals[key]:>12}" for key in COUNTED)
        )
    totals = document["totals"]
    write(f"{'total':<52} {totals['cases']:>5} " + " ".join(f"{totals[k]:>12}" for k in COUNTED))
    write(f"figures written to {FIGURES_FILE}")
