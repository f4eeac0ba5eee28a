"""The shape every lease backend has (:class:`Leases`, :class:`Lease`) and the injectable clock.

Callers type against these protocols, so a DynamoDB table and a local directory are
interchangeable (``tests/aws/test_lease.py`` runs one suite on both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Clock = Callable[[], float]


class Lease(Protocol):
    """A held lock. ``token`` is its fencing token; ``expires_at`` is epoch seconds."""

    name: str
    owner: str
    token: int
    expires_at: float
    ttl: float

    def heartbeat(self) -> None:
        """Extend to now + ttl. Succeeds only for the current owner with this token, before
        expiry; otherwise raises :class:`LeaseLost` and changes nothing."""
        ...

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless this owner and token still hold the lock and it has
        not expired (a consistent read)."""
        ...

    def release(self) -> None:
        """Let go. Idempotent; releasing a lock already lost is not an error and changes
        nothing. The token is kept."""
        ...


class Leases(Protocol):
    def acquire(self, name: str, *, ttl: float) -> Lease:
        """Take the lock ``name`` for ``ttl`` seconds, or raise :class:`LeaseBusy`. Never waits."""
        ...
