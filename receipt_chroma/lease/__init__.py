"""Fenced lease locks: one holder at a time, for a while, with a token that proves the order.

A lease is held by a fresh ``owner`` id until ``expires_at`` (epoch seconds) unless its holder
extends it with :meth:`Lease.heartbeat`. Every acquire of a name, ever, increments its fencing
``token``, so a writer can stamp its work with the token and a publisher can refuse work stamped
with a lower one: a holder that paused past its expiry and woke up after someone else took the
lock can be told apart from the new holder, whatever the clocks say.

Two backends, one behaviour (``tests/aws/test_lease.py`` runs the same suite on both):
:class:`DynamoDBLocks` (one item per lock name, conditional ``UpdateItem``; never enable TTL on
a lock table) and :class:`FileLocks` (a JSON file per name under ``<root>/.locks/``, changed
under ``flock``). Time comes from an injectable ``clock`` (default :func:`time.time`), so expiry
is testable without sleeping. Each party compares against its own clock: clocks of the holders
must agree to well within a ttl, and the fencing token covers what they cannot.
:class:`LeaseKeeper` heartbeats a lease on a daemon thread while a long job runs.

Modules: ``interface`` (the protocols, ``Clock``), ``errors`` (``LockBusy``, ``LockLost``),
``values`` (names, ttls, owner ids, time formats), ``state`` (a lock record, why it was lost),
``dynamodb``, ``file`` (the backends) and ``keeper``. Import from this package.
"""

from __future__ import annotations

from receipt_chroma.lease.dynamodb import DynamoDBLease, DynamoDBLocks, ensure_lock_table
from receipt_chroma.lease.errors import LockBusy, LockLost
from receipt_chroma.lease.file import LOCKS_DIR, FileLease, FileLocks
from receipt_chroma.lease.interface import Clock, Lease, Locks
from receipt_chroma.lease.keeper import LeaseKeeper
from receipt_chroma.lease.state import LOCK_KEY
from receipt_chroma.lease.values import new_owner_id

__all__ = [
    "LOCKS_DIR",
    "LOCK_KEY",
    "Clock",
    "DynamoDBLease",
    "DynamoDBLocks",
    "FileLease",
    "FileLocks",
    "Lease",
    "LeaseKeeper",
    "LockBusy",
    "LockLost",
    "Locks",
    "ensure_lock_table",
    "new_owner_id",
]
