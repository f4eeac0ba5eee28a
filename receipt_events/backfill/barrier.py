"""The barrier: rows read at time *t* are decided only once the stream is ingested past *t*.

For each page the backfill writes a marker item after reading it, then waits until (1) the
stream processor has recorded that marker as seen (docs/backfill.md: it proves the processor
runs and has passed the marker's point on the marker's shard) and (2) ``settle`` seconds have
passed since the page was read (the bound assumed for every other shard's lag: the
processor's IteratorAge, with an alarm on it). A marker not seen within ``settle`` seconds of
being written means the processor is not running, or lags more than the assumption allows:
the backfill stops with :class:`BarrierTimeout` rather than decide on a log that is behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from receipt_events.backfill.errors import BarrierTimeout
from receipt_events.markers import MARKER_PK, MarkerSeen
from receipt_events.store import EventStore

MARKER_LIFETIME_SECONDS = 86_400  # a TTL attribute, should a crash leave a marker behind
POLL_SECONDS = 0.1
DEFAULT_TTL_ATTRIBUTE = "time_to_live"


class Marker(msgspec.Struct, frozen=True):
    name: str
    written_at: float


class Barrier:
    """Writes markers to the table and tells when a page's rows may be decided."""

    def __init__(
        self,
        client: Any,
        table: str,
        store: EventStore,
        *,
        job: str,
        settle: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._store = store
        self._prefix = f"MARKER#{job}#{int(clock() * 1000)}#"
        self._count = 0
        self.settle = settle
        self._clock = clock
        self._seen: set[str] = set()
        self._seen_after = 0
        self._ttl_attribute = _ttl_attribute(client, table)

    def mark(self) -> Marker:
        """Write a new marker item (after the page it vouches for was read)."""
        self._count += 1
        name = f"{self._prefix}{self._count:08d}"
        now = self._clock()
        self._client.put_item(
            TableName=self._table,
            Item={
                "PK": {"S": MARKER_PK},
                "SK": {"S": name},
                self._ttl_attribute: {"N": str(int(now) + MARKER_LIFETIME_SECONDS)},
            },
        )
        return Marker(name, now)

    def passed(self, marker: Marker, read_at: float) -> bool:
        """Whether rows read at ``read_at`` may be decided; raises when the marker is late."""
        now = self._clock()
        if marker.name not in self._seen:
            self._refresh()
        if marker.name not in self._seen:
            if now - marker.written_at > self.settle:
                raise BarrierTimeout(marker.name, self._table, self.settle)
            return False
        return now >= read_at + self.settle

    def waiting_for(self, marker: Marker, read_at: float) -> str:
        """What the barrier waits for, for the progress line."""
        if marker.name not in self._seen:
            return "waiting for the stream processor to ingest a marker"
        return f"settling ({max(0.0, read_at + self.settle - self._clock()):.1f} s)"

    def forget(self, marker: Marker) -> None:
        """Delete a marker that has served (its REMOVE is skipped by ingest)."""
        self._client.delete_item(
            TableName=self._table, Key={"PK": {"S": MARKER_PK}, "SK": {"S": marker.name}}
        )
        self._seen.discard(marker.name)

    def _refresh(self) -> None:
        for position, entry in self._store.progress_after(self._seen_after):
            self._seen_after = position
            if isinstance(entry, MarkerSeen):
                self._seen.add(entry.marker)


def _ttl_attribute(client: Any, table: str) -> str:
    """The table's TTL attribute (so a marker a crash leaves behind expires), if it has one."""
    try:
        description = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    except Exception:  # no permission or not supported: the default name does no harm
        return DEFAULT_TTL_ATTRIBUTE
    if description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return str(description.get("AttributeName") or DEFAULT_TTL_ATTRIBUTE)
    return DEFAULT_TTL_ATTRIBUTE
