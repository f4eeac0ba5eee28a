"""The values every lease backend checks and renders: names, ttls, owner ids, times.

Shared by the errors (their messages) and both backends, so a lease name, a ttl or a time is
validated and written the same way wherever it appears.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from datetime import UTC, datetime
from decimal import Decimal


def _number(value: float) -> str:
    """The exact decimal string of ``value`` (no exponent, no rounding): float(s) == value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


def _iso(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return f"epoch {epoch}"


def _check_ttl(ttl: float) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise TypeError(f"ttl must be a finite number of seconds, got {ttl!r}")
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, got {ttl!r}")
    return float(ttl)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a lease name must be a non-empty string, got {name!r}")
    return name


def new_owner_id() -> str:
    """A fresh owner id: ``host:pid:uuid4-hex``, unique per acquire, readable in messages."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
