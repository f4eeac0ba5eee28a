"""Attribute values written the way the old system's entities store them.

Timestamps, 8-decimal numbers, merchant slugs and OCR geometry all appear in several item
types; one definition keeps the items consistent with each other and with the run contents.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

from receipt_events.attributes import Value


def iso(t: int, micros: int) -> str:
    """An ISO timestamp on the simulated clock, as Python writes ``datetime.isoformat()``."""
    return datetime.fromtimestamp(t, UTC).replace(microsecond=micros).isoformat()


def decimal8(value: float) -> Decimal:
    """A float as the entities store it: a DynamoDB number with 8 decimals."""
    return Decimal(f"{value:.8f}")


def slug(name: str) -> str:
    """A merchant name as the GSI keys spell it: upper case, runs of other characters as ``_``."""
    out = []
    previous_sep = True
    for char in name.upper():
        if "A" <= char <= "Z" or "0" <= char <= "9":
            out.append(char)
            previous_sep = False
        elif not previous_sep:
            out.append("_")
            previous_sep = True
    return "".join(out).strip("_")


def geometry(x: float, y: float, width: float, height: float, slope: float) -> dict[str, Value]:
    """Bounding box, the four corners and the angle, as the OCR entities store them."""
    rise = width * slope
    angle = math.atan(slope)
    left, bottom, right, top = decimal8(x), decimal8(y), decimal8(x + width), decimal8(y + height)
    return {
        "bounding_box": {
            "x": left,
            "y": bottom,
            "width": decimal8(width),
            "height": decimal8(height),
        },
        "top_right": {"x": right, "y": decimal8(y + height + rise)},
        "top_left": {"x": left, "y": top},
        "bottom_right": {"x": right, "y": decimal8(y + rise)},
        "bottom_left": {"x": left, "y": bottom},
        "angle_degrees": decimal8(math.degrees(angle)),
        "angle_radians": decimal8(angle),
    }


def stored_floats(
    x: float, y: float, width: float, height: float
) -> tuple[float, float, float, float]:
    """The values exactly as stored (8 decimals), so a delta matches the table."""
    return (
        float(f"{x:.8f}"),
        float(f"{y:.8f}"),
        float(f"{width:.8f}"),
        float(f"{height:.8f}"),
    )
