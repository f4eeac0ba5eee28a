"""LtHash: a multiset hash that can add and remove elements (SPEC §7.4).

Each element (a record's 32-byte hash) is expanded with SHAKE-128 to 1024 lanes of 16 bits;
the multiset's hash is their lane-wise sum mod 2^16. Adding a record adds its lanes, removing
it subtracts them, so a collection's hash follows its writes in O(changes) and equals the hash
of a full dump of the same records, in any order. Unlike a sum or XOR of 256-bit hashes, the
2048-byte lattice form resists generalized-birthday collision search.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

LANES = 1024
LANE_BYTES = LANES * 2
_LANE = np.dtype("<u2")

Lanes = npt.NDArray[np.uint16]


def element_lanes(element: bytes) -> Lanes:
    """One element expanded to its lanes (SHAKE-128, little-endian 16-bit words)."""
    return np.frombuffer(hashlib.shake_128(element).digest(LANE_BYTES), dtype=_LANE)


def lanes_sum(elements: Iterable[bytes]) -> Lanes:
    """The lane-wise sum (mod 2^16) of many elements' lanes."""
    expanded = b"".join(hashlib.shake_128(e).digest(LANE_BYTES) for e in elements)
    if not expanded:
        return np.zeros(LANES, dtype=_LANE)
    matrix = np.frombuffer(expanded, dtype=_LANE).reshape(-1, LANES)
    summed: Lanes = (matrix.sum(axis=0, dtype=np.uint64) % 65536).astype(_LANE)
    return summed


class LtHash:
    """A multiset hash of 32-byte elements, with the number of elements it holds."""

    __slots__ = ("count", "lanes")

    def __init__(self, lanes: Lanes | None = None, count: int = 0) -> None:
        self.lanes: Lanes = np.zeros(LANES, dtype=_LANE) if lanes is None else lanes.copy()
        self.count = count

    @classmethod
    def of(cls, elements: Iterable[bytes]) -> LtHash:
        listed = list(elements)
        return cls(lanes_sum(listed), len(listed))

    @classmethod
    def from_bytes(cls, data: bytes, count: int) -> LtHash:
        if len(data) != LANE_BYTES:
            raise ValueError(f"LtHash lanes are {LANE_BYTES} bytes, not {len(data)}")
        return cls(np.frombuffer(data, dtype=_LANE), count)

    def update(self, added: Iterable[bytes], removed: Iterable[bytes]) -> None:
        """Add some elements and remove others (each removed one must be held)."""
        plus, minus = list(added), list(removed)
        self.lanes = (self.lanes + lanes_sum(plus) - lanes_sum(minus)).astype(_LANE)
        self.count += len(plus) - len(minus)

    def to_bytes(self) -> bytes:
        return self.lanes.astype(_LANE).tobytes()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LtHash):
            return NotImplemented
        return self.count == other.count and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash((self.count, self.to_bytes()))

    def __repr__(self) -> str:
        return f"LtHash(count={self.count}, lanes={self.to_bytes()[:8].hex()}…)"
