"""Fenced leases: one holder at a time, for a while, with a token that proves the order.

A lease is held by a fresh ``owner`` id until ``expires_at`` (epoch seconds) unless its holder
extends it with :meth:`Lease.heartbeat`. Every acquire of a name, ever, increments its fencing
``token``, so a writer can stamp its work with the token and a publisher can refuse work stamped
with a lower one: a holder that paused past its expiry and woke up after someone else took the
lease can be told apart from the new holder, whatever the clocks say.

Two backends, one behaviour (``tests/aws/test_lease.py`` runs the same suite on both):
:class:`DynamoDBLeases` (one item per lease name, conditional ``UpdateItem``; never enable TTL
on a lease table) and :class:`FileLeases` (a JSON file per name under ``<root>/.locks/``,
changed under ``flock``); :func:`leases_for` picks the one a snapshot store needs. Time comes
from an injectable ``clock`` (default :func:`time.time`), so expiry is testable without
sleeping. Each party compares against its own clock: clocks of the holders must agree to well
within a ttl, and the fencing token covers what they cannot. :class:`LeaseKeeper` heartbeats a
lease on a daemon thread while a long job runs.

The stored names predate the word *lease* and stay as they are, so existing tables and
directories keep their tokens: the DynamoDB key attribute ``lock_id``, the ``.locks/``
directory and its ``lock-*.json`` files.

Modules: ``interface`` (the protocols, ``Clock``), ``errors`` (``LeaseBusy``, ``LeaseLost``,
``LeaseTableMissing``), ``values`` (names, ttls, owner ids, time formats), ``state`` (a lease
record, why it was lost), ``dynamodb``, ``file`` (the backends), ``select`` and ``keeper``.
Import from this package.
"""

from __future__ import annotations

from receipt_chroma.lease.dynamodb import DynamoDBLease, DynamoDBLeases, create_lease_table
from receipt_chroma.lease.errors import LeaseBusy, LeaseLost, LeaseTableMissing
from receipt_chroma.lease.file import LEASES_DIR, FileLease, FileLeases
from receipt_chroma.lease.interface import Clock, Lease, Leases
from receipt_chroma.lease.keeper import LeaseKeeper
from receipt_chroma.lease.select import LEASE_TABLE_ENVS, LeaseTableRequired, leases_for
from receipt_chroma.lease.state import LEASE_KEY
from receipt_chroma.lease.values import new_owner_id

__all__ = [
    "LEASES_DIR",
    "LEASE_KEY",
    "LEASE_TABLE_ENVS",
    "Clock",
    "DynamoDBLease",
    "DynamoDBLeases",
    "FileLease",
    "FileLeases",
    "Lease",
    "LeaseBusy",
    "LeaseKeeper",
    "LeaseLost",
    "LeaseTableMissing",
    "LeaseTableRequired",
    "Leases",
    "create_lease_table",
    "leases_for",
    "new_owner_id",
]
