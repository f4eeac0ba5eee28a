"""A log's contents as comparable values: each event as (originator id, encoded event).

Positions are kept apart: two stores holding the same events may number them differently
(PostgreSQL leaves a gap after a rolled-back append).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from receipt_events.store import Recorded, open_store

Events = list[tuple[str, bytes]]  # (originator id, encoded event) in log order


def events_of(recorded: Iterable[Recorded]) -> Events:
    """Each recorded event as (originator id, encoded event), positions left out."""
    return [(r.event.originator_id, msgspec.json.encode(r.event)) for r in recorded]


def read_log(url: str) -> tuple[Events, list[int]]:
    """The log's events (without their positions) and, apart, their positions."""
    store = open_store(url)
    try:
        recorded = list(store.iter_events())
    finally:
        store.close()
    return events_of(recorded), [r.position for r in recorded]


def read_events(url: str) -> Events:
    return read_log(url)[0]
