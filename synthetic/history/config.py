"""What to simulate: the one input of the generator, and its validation.

A frozen struct so a config can key caches (the sizing pilot) and be echoed in reports.
"""

from __future__ import annotations

import msgspec


class HistoryConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What to simulate. Sizes are inclusive ranges; rates are per-record or per-item odds."""

    seed: int = 0
    receipts: int = 20  # spread over about receipts/2 images, at least 1
    lines_per_receipt: tuple[int, int] = (6, 20)
    words_per_line: tuple[int, int] = (1, 6)
    letters_per_word: tuple[int, int] = (0, 2)  # RECEIPT_LETTER noise items
    redelivery_rate: float = 0.03  # fraction of records re-emitted later as exact copies
    removal_rate: float = 0.1  # drives label, word, line and receipt removals
    region: str = "eu-west-1"
    table: str = "receipts"
    start_time: int = 1767225600  # simulated clock start, epoch seconds (2026-01-01)
    delta_root: str = "deltas"  # runs point at f"{delta_root}/{run_id}/lines" and ".../words"


def check_config(config: HistoryConfig) -> None:
    """Refuse a config the simulation cannot honour, before any record is made."""
    for name in ("lines_per_receipt", "words_per_line", "letters_per_word"):
        low, high = getattr(config, name)
        minimum = 0 if name == "letters_per_word" else 1
        if not minimum <= low <= high:
            raise ValueError(f"{name} must be an inclusive range ({minimum} <= low <= high)")
    if config.receipts < 0:
        raise ValueError("receipts must not be negative")
    for name in ("redelivery_rate", "removal_rate"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
