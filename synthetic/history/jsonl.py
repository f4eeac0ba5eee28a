"""JSON Lines export, and the one encoder every part of the generator shares.

The encoder writes dict keys in insertion order, which is what makes the output bytes
deterministic; stream sizes, redelivered copies and damaged lines all go through it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

ENCODER: Final = msgspec.json.Encoder()


def to_jsonl(records: Sequence[dict[str, Any]]) -> bytes:
    """One compact JSON object per line, keys in their insertion order: deterministic bytes."""
    return ENCODER.encode_lines(records)
