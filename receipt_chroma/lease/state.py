"""A lease record as both backends compare it, and the words for why a holder lost it.

Each backend decodes its own storage into a :class:`_State`, so "is it still held" and the
:class:`~receipt_chroma.lease.errors.LeaseLost` reason are decided the same way for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from receipt_chroma.lease.errors import LeaseLost
from receipt_chroma.lease.values import _iso

LEASE_KEY = "lock_id"


class _State:
    """A lease record: who holds it (None once released), its token, when it expires."""

    __slots__ = ("expires_at", "owner", "token")

    def __init__(self, owner: str | None, token: int, expires_at: float) -> None:
        self.owner = owner
        self.token = token
        self.expires_at = expires_at

    def held_by(self, owner: str, token: int, now: float) -> bool:
        return self.owner == owner and self.token == token and now < self.expires_at


def _lost_reason(
    state: _State | None, *, owner: str, token: int, now: float, released_locally: bool
) -> str:
    if state is None:
        return "the lease record is gone"
    if state.token != token:
        if state.owner is None:
            return f"it was taken (token {state.token}) and released since"
        return f"it was taken by {state.owner} (token {state.token})"
    if state.owner is None:
        return "it was released" + (" by this holder" if released_locally else "")
    if state.owner != owner:
        return f"it is held by {state.owner} with the same token {token} (corrupt lease record)"
    return f"it expired at {_iso(state.expires_at)} (now {_iso(now)})"


class _LeaseRecords(Protocol):
    """What a lease needs of its backend to check it still holds the lock."""

    clock: Callable[[], float]

    def read(self, name: str) -> dict[str, Any] | None: ...


LeasesT = TypeVar("LeasesT", bound=_LeaseRecords)


class HeldLease(Generic[LeasesT]):
    """What a lease of either backend holds, and how it words losing the lock."""

    def __init__(
        self,
        leases: LeasesT,
        name: str,
        *,
        owner: str,
        token: int,
        expires_at: float,
        ttl: float,
    ) -> None:
        self.leases = leases
        self.name = name
        self.owner = owner
        self.token = token
        self.expires_at = expires_at
        self.ttl = ttl
        self._released = False

    def _where(self) -> str:
        """Where the lock lives, for ``repr``."""
        raise NotImplementedError

    @staticmethod
    def _state_of(record: dict[str, Any] | None, /) -> _State | None:
        """Decode the backend's stored lease record."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._where()}, name={self.name!r}, owner={self.owner!r}, "
            f"token={self.token}, expires_at={self.expires_at!r})"
        )

    def _lost_from(self, state: _State | None, now: float) -> LeaseLost:
        reason = _lost_reason(
            state, owner=self.owner, token=self.token, now=now, released_locally=self._released
        )
        return LeaseLost(self.name, owner=self.owner, token=self.token, reason=reason)

    def _lost(self, record: dict[str, Any] | None, now: float) -> LeaseLost:
        return self._lost_from(self._state_of(record), now)

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless this lease still holds the lock, as stored now."""
        record = self.leases.read(self.name)
        now = self.leases.clock()
        state = self._state_of(record)
        if state is None or not state.held_by(self.owner, self.token, now):
            raise self._lost_from(state, now)
