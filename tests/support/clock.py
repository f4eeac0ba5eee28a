"""A clock that only moves when a test moves it, so a lease expires exactly when the test says."""

from __future__ import annotations

START = 1_700_000_000.25  # a realistic epoch with a fraction, so rounding would show


class FakeClock:
    """A clock that only moves when told to: call it for the time, set ``now`` or advance it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
