"""How much work each reliability scenario does, chosen by ``RELIABILITY_PROFILE``.

* ``fast`` (default, what CI runs): a few seeds per scenario, so the whole of
  ``tests/reliability`` stays within a few minutes on a small, busy machine;
* ``deep``: many seeds per scenario, for the figures in RELIABILITY.md
  (``.venv/bin/python bench/reliability.py`` runs it and prints them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

PROFILE_ENV = "RELIABILITY_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str
    seeds: int  # seeds (cases) per scenario
    scale: int  # a size multiplier for scenarios that count records rather than seeds
    # whether every variant of a scenario (backend, step) runs every seed; if not, a scenario's
    # seeds are spread over its variants, one variant per seed
    every_variant: bool


PROFILES = {
    "fast": Profile("fast", seeds=2, scale=1, every_variant=False),
    "deep": Profile("deep", seeds=10, scale=10, every_variant=True),
}


def _profile() -> Profile:
    name = os.environ.get(PROFILE_ENV, "fast").strip().lower() or "fast"
    if name not in PROFILES:
        raise pytest.UsageError(
            f"{PROFILE_ENV}={name!r}: expected one of {', '.join(sorted(PROFILES))}"
        )
    return PROFILES[name]


PROFILE = _profile()
SEEDS = list(range(1, PROFILE.seeds + 1))  # for @pytest.mark.parametrize("seed", SEEDS)
