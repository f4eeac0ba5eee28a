"""What a lease operation raises: the lock is busy, or this holder has lost it.

Kept apart from the backends so callers can catch them without importing either backend.
"""

from __future__ import annotations

from receipt_chroma.lease.values import _iso, _number
from receipt_events.errors import MissingResource


class LeaseBusy(Exception):
    """The lock is held by someone else. Names the holder and when its lease expires."""

    def __init__(
        self,
        name: str,
        *,
        holder: str | None,
        token: int | None,
        expires_at: float | None,
        now: float,
    ) -> None:
        self.name = name
        self.holder = holder
        self.token = token
        self.expires_at = expires_at
        if holder is None or expires_at is None:
            message = f"lease {name!r} is busy (its holder changed while it was being read)"
        else:
            message = (
                f"lease {name!r} is held by {holder} (token {token}) until "
                f"{_iso(expires_at)} (expires_at={_number(expires_at)}, "
                f"{expires_at - now:.1f} s from now)"
            )
        super().__init__(message)


class LeaseLost(Exception):
    """This holder no longer holds the lock: it expired (and maybe was taken), was released,
    or its token moved on."""

    def __init__(self, name: str, *, owner: str, token: int, reason: str) -> None:
        self.name = name
        self.owner = owner
        self.token = token
        self.reason = reason
        super().__init__(f"lease {name!r} is no longer held by {owner} (token {token}): {reason}")


class LeaseTableMissing(MissingResource):
    """The DynamoDB lease table does not exist (create it once per deployment)."""

    def __init__(self, table: str) -> None:
        super().__init__(
            f"the lease table {table!r}",
            f"create it with `receipt-events lease create-table --lease-table {table}` "
            "(or deploy/template.yaml), or pass the name of an existing one",
        )
        self.table = table
