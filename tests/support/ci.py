"""Whether the tests run under CI, where a missing service fails a test instead of skipping it."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """``CI`` is set to true (``true``, ``1`` or ``yes``): CI must never pass by skipping."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
