"""Parked records: inputs that could not become events, kept whole with the reason.

A parked record is its own little event stream in the ``parked_records`` table: version 1
parks it, version 2 resolves it (after a redrive). Its identity is the record's ``eventID`` when
one can be read, else the sha256 of its bytes, so a redelivered bad record is parked once.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Literal

import msgspec
from eventsourcing.utils import register_topic

Resolution = Literal["appended", "duplicate", "superseded", "skipped", "unchanged"]


class ParkedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A record that could not be turned into an event, with why and where it was read."""

    originator_version: ClassVar[int] = 1

    parked_id: str
    origin: str
    error: str
    payload: bytes
    event_id: str | None = None
    sequence_number: str | None = None
    log_head: int = 0  # the log's head when parked: a redrive checks what came after

    @classmethod
    def topic(cls) -> str:
        return "receipt_events.RecordParked.v1"

    @property
    def originator_id(self) -> str:
        return f"parked:{self.parked_id}"


class ParkedResolved(msgspec.Struct, frozen=True, kw_only=True):
    """A parked record that a redrive has dealt with, and how."""

    originator_version: ClassVar[int] = 2

    parked_id: str
    outcome: Resolution
    position: int | None = None

    @classmethod
    def topic(cls) -> str:
        return "receipt_events.ParkedRecordResolved.v1"

    @property
    def originator_id(self) -> str:
        return f"parked:{self.parked_id}"


register_topic(ParkedRecord.topic(), ParkedRecord)
register_topic(ParkedResolved.topic(), ParkedResolved)


def parked_id_for(payload: bytes, event_id: str | None) -> str:
    """The stable identity of a parked record."""
    if event_id:
        return event_id
    return "sha256:" + hashlib.sha256(payload).hexdigest()
