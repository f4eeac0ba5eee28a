"""The environment variables that configure the projection's commands and the projector Lambda.

Kept in a module of their own, which imports nothing, so the command line can name them in its
options without loading Chroma.
"""

from __future__ import annotations

DELTAS_ENV = "RECEIPT_EVENTS_DELTAS"  # where relative delta locations are resolved
SNAPSHOTS_ENV = "RECEIPT_EVENTS_SNAPSHOTS"  # the projector's snapshot store
CACHE_ENV = "RECEIPT_EVENTS_CACHE"  # where local snapshot directories of compaction live
# seconds a lease lasts between heartbeats: the current name first, then the name before 0.2
LEASE_TTL_ENVS = ("RECEIPT_EVENTS_LEASE_TTL", "RECEIPT_EVENTS_LOCK_TTL")
