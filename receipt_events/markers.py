"""Backfill markers: items the backfill writes to the table to learn how far the stream has
been ingested (docs/backfill.md).

A marker lives under its own partition key, so ingest never reads it as a receipt entity; when
the stream processor meets a marker's INSERT it records :class:`MarkerSeen` in the store's
progress table, after appending every event before it in the same batch. Seeing a marker
proves the processor is running and has passed the point the marker was written at on that
marker's shard; other shards are covered by the backfill's settle time.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec
from eventsourcing.utils import register_topic

MARKER_PK = "RECEIPT_EVENTS#BACKFILL"
MARKER_KIND = "BACKFILL_MARKER"


class MarkerKey(msgspec.Struct, frozen=True):
    """A backfill marker item (``PK = RECEIPT_EVENTS#BACKFILL``, ``SK`` = the marker's name)."""

    marker: str

    kind: ClassVar[str] = MARKER_KIND


class MarkerSeen(msgspec.Struct, frozen=True):
    """The stream processor ingested a marker's INSERT (a progress entry, stored once)."""

    originator_version: ClassVar[int] = 1

    marker: str

    @classmethod
    def topic(cls) -> str:
        return "receipt_events.MarkerSeen.v1"

    @property
    def originator_id(self) -> str:
        return f"marker:{self.marker}"


register_topic(MarkerSeen.topic(), MarkerSeen)
