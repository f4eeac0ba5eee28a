"""Hypothesis profiles for the property suite, chosen by ``HYPOTHESIS_PROFILE``.

* ``ci`` (default): small histories and few examples, so the whole suite stays within a
  few minutes on a small, busy machine.
* ``deep``: ten times the examples over larger histories (3 receipts of up to 3 lines of
  3 words, up to 30 operations); run it by hand or nightly, it takes about 10 minutes:
  ``HYPOTHESIS_PROFILE=deep .venv/bin/pytest tests/properties``.

The reference-model property runs three times the profile's examples (it is the cheapest).

Every example opens real Chroma directories, so examples are slow by hypothesis' standards:
no deadline, and the ``too_slow`` health check is off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, settings

PROFILE_ENV = "HYPOTHESIS_PROFILE"


@dataclass(frozen=True)
class Sizes:
    max_receipts: int
    max_lines: int
    max_words: int
    min_ops: int
    max_ops: int


CI_SIZES = Sizes(max_receipts=2, max_lines=2, max_words=2, min_ops=3, max_ops=14)
DEEP_SIZES = Sizes(max_receipts=3, max_lines=3, max_words=3, min_ops=3, max_ops=30)

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}

settings.register_profile("ci", max_examples=30, **_COMMON)
settings.register_profile("deep", max_examples=300, **_COMMON)

PROFILE = os.environ.get(PROFILE_ENV, "ci")
SIZES: Sizes = DEEP_SIZES if PROFILE == "deep" else CI_SIZES


def load() -> None:
    settings.load_profile(PROFILE)
