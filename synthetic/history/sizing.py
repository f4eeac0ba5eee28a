"""Record-count sizing: the config whose history has about ``n`` records.

Benchmarks ask for a number of records, not of receipts; the answer is measured from a pilot
history rather than estimated, so it stays right when the simulation changes.
"""

from __future__ import annotations

import functools

from synthetic.history.config import HistoryConfig
from synthetic.history.generate import generate_history


def config_for_records(n: int, seed: int = 0) -> HistoryConfig:
    """A default config whose history has roughly ``n`` records (within about 20 %).

    Measured, not estimated: a pilot history of the same seed gives the records per receipt,
    so the answer stays right when the simulation changes. Tiny ``n`` get one receipt.
    """
    return HistoryConfig(seed=seed, receipts=max(1, round(n / _records_per_receipt(seed))))


@functools.lru_cache(maxsize=32)
def _records_per_receipt(seed: int) -> float:
    pilot_receipts = 40
    pilot = generate_history(HistoryConfig(seed=seed, receipts=pilot_receipts))
    return len(pilot.records) / pilot_receipts
