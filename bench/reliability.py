"""The reliability suite (tests/reliability) in its deep profile, and the figures it reports.

    .venv/bin/python bench/reliability.py                    # deep: 10 seeds, every variant
    .venv/bin/python bench/reliability.py --profile fast     # what CI runs
    .venv/bin/python bench/reliability.py --tests tests/reliability/test_crash.py
    .venv/bin/python bench/reliability.py -- -k postgres     # pytest arguments after --

Runs ``pytest tests/reliability`` in a subprocess with ``RELIABILITY_PROFILE`` set and the
figures written to a file of its own (``RELIABILITY_FIGURES``), so a concurrent test session
cannot mix its figures in. Prints per scenario the cases run, divergences (a published
snapshot or a log that differs from a clean rebuild), lost updates (changes missing at the
end), doubled changes, crashes (unexpected deaths or errors) and the SIGKILLs injected.
The deep profile needs PostgreSQL and the AWS test services (``make tools``) and takes about
45 minutes on two cores.

The last line of output is one JSON object: the profile, the pytest exit status, the wall
time, the totals and the per-scenario figures. Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COUNTED = ("divergences", "lost_updates", "doubled", "crashes", "kills")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="deep", choices=("fast", "deep"))
    parser.add_argument(
        "--tests",
        nargs="+",
        default=["tests/reliability"],
        help="Test files or directories to run (default: the whole suite).",
    )
    parser.add_argument("--keep", type=Path, help="Also copy the full figures (every case) here.")
    parser.add_argument("pytest_args", nargs="*", help="Extra pytest arguments (after --).")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="reliability-figures-") as scratch:
        figures_path = Path(scratch) / "figures.json"
        env = {
            **os.environ,
            "RELIABILITY_PROFILE": options.profile,
            "RELIABILITY_FIGURES": str(figures_path),
        }
        env.pop("RECEIPT_EVENTS_FAULT", None)
        argv = [
            sys.executable,
            "-m",
            "pytest",
            *options.tests,
            "-q",
            "-p",
            "no:cacheprovider",
            *options.pytest_args,
        ]
        started = time.monotonic()
        status = subprocess.call(argv, cwd=ROOT, env=env)
        seconds = round(time.monotonic() - started, 1)
        document: dict[str, Any] = (
            json.loads(figures_path.read_text()) if figures_path.exists() else {}
        )
        if options.keep is not None and document:
            options.keep.write_text(json.dumps(document, indent=1) + "\n")

    scenarios: dict[str, dict[str, int]] = document.get("scenarios", {})
    print()
    print(f"{'scenario':<58} {'cases':>5} " + " ".join(f"{key:>12}" for key in COUNTED))
    for name, totals in scenarios.items():
        print(
            f"{name:<58} {totals['cases']:>5} "
            + " ".join(f"{totals.get(key, 0):>12}" for key in COUNTED)
        )
    summary = {
        "profile": options.profile,
        "pytest_exit": status,
        "seconds": seconds,
        "totals": document.get("totals", {}),
        "scenarios": scenarios,
    }
    print(json.dumps(summary, separators=(",", ":")))
    return status


if __name__ == "__main__":
    sys.exit(main())
