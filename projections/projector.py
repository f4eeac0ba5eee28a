"""The projector's job, as package code the Lambda handler only routes to.

A wake-up (an SQS batch, a schedule, or a direct invoke with an optional ``{"to": P}``) runs
one compaction that follows the head: lock → restore the latest snapshot, or reuse the copy
a warm container kept in ``/tmp`` → catch up, publishing every N events or T seconds and at
the end → keep going while new events arrive → release.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from projections.compaction import CompactResult, PublishPolicy, compact
from receipt_chroma.deltas import DeltaSources
from receipt_chroma.lease import DynamoDBLocks, FileLocks, Locks
from receipt_chroma.snapshots import open_snapshot_store
from receipt_events.store import EventStore

Trigger = Literal["sqs", "schedule", "direct"]


class ConfigError(ValueError):
    """The projector's environment is incomplete or wrong."""


class ProjectorConfig(msgspec.Struct, frozen=True, kw_only=True):
    store: str | None
    snapshots: str
    lock_table: str | None
    deltas: str = "."
    cache: str = "/tmp/receipt-events/snapshot"
    publish_every_events: int | None = 5000
    publish_every_seconds: float | None = 120.0
    lock_ttl: float = 120.0
    keep: int = 5
    # stop following the head this long before the invocation's deadline, to publish and
    # release in time (a Lambda killed by its timeout keeps its lock until the TTL runs out)
    stop_margin_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProjectorConfig:
        if not env.get("RECEIPT_EVENTS_STORE"):
            raise ConfigError("RECEIPT_EVENTS_STORE is not set (the event store's URL)")
        snapshots = env.get("RECEIPT_EVENTS_SNAPSHOTS")
        if not snapshots:
            raise ConfigError("RECEIPT_EVENTS_SNAPSHOTS is not set (s3://bucket/prefix)")
        lock_table = env.get("RECEIPT_EVENTS_LOCK_TABLE")
        if snapshots.startswith("s3://") and not lock_table:
            raise ConfigError("RECEIPT_EVENTS_LOCK_TABLE is not set (the DynamoDB lock table)")
        try:
            return cls(
                store=env.get("RECEIPT_EVENTS_STORE"),
                snapshots=snapshots,
                lock_table=lock_table,
                deltas=env.get("RECEIPT_EVENTS_DELTAS", "."),
                cache=env.get("RECEIPT_EVENTS_CACHE", "/tmp/receipt-events/snapshot"),
                publish_every_events=_optional(
                    env, "RECEIPT_EVENTS_PUBLISH_EVERY_EVENTS", int, 5000
                ),
                publish_every_seconds=_optional(
                    env, "RECEIPT_EVENTS_PUBLISH_EVERY_SECONDS", float, 120.0
                ),
                lock_ttl=float(env.get("RECEIPT_EVENTS_LOCK_TTL", "120")),
                keep=int(env.get("RECEIPT_EVENTS_KEEP", "5")),
                stop_margin_seconds=float(env.get("RECEIPT_EVENTS_STOP_MARGIN_SECONDS", "60")),
            )
        except ValueError as error:
            raise ConfigError(f"projector configuration: {error}") from None

    def locks(self) -> Locks:
        if self.snapshots.startswith("s3://"):
            assert self.lock_table is not None
            return DynamoDBLocks(self.lock_table)
        return FileLocks(Path(self.snapshots))


def _optional(env: Mapping[str, str], name: str, kind: type, default: Any) -> Any:
    value = env.get(name)
    if value is None:
        return default
    if value.strip().lower() in ("", "none", "off"):
        return None
    return kind(value)


class Wakeup(msgspec.Struct, frozen=True):
    trigger: Trigger
    message_ids: list[str]
    to: int | None = None


def parse_trigger(event: Any) -> Wakeup:
    """What woke the projector: SQS messages (by id), a schedule, or a direct invoke."""
    if isinstance(event, dict):
        records = event.get("Records")
        if isinstance(records, list) and records:
            if all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records):
                return Wakeup("sqs", [str(r.get("messageId")) for r in records])
            raise ValueError("Records that are not SQS messages: not a projector wake-up")
        if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
            return Wakeup("schedule", [])
        to = event.get("to")
        if to is None or (isinstance(to, int) and not isinstance(to, bool) and to >= 0):
            unknown = set(event) - {"to"}
            if not unknown:
                return Wakeup("direct", [], to)
    raise ValueError(f'not a projector wake-up (SQS, schedule, or {{"to": P}}): {event!r:.200}')


def run_projector(
    config: ProjectorConfig,
    store: EventStore,
    wakeup: Wakeup,
    *,
    seconds_left: float | None = None,
) -> CompactResult:
    """One projector run: compaction that follows the head unless asked for a position.

    ``seconds_left`` (the Lambda context's remaining time): the run stops following the head
    ``stop_margin_seconds`` before that, publishes what it applied and releases the lock.
    """
    stop_at = None
    if seconds_left is not None:
        stop_at = time.monotonic() + max(0.0, seconds_left - config.stop_margin_seconds)
    return compact(
        store,
        open_snapshot_store(config.snapshots),
        config.locks(),
        DeltaSources(config.deltas),
        Path(config.cache),
        to=wakeup.to,
        ttl=config.lock_ttl,
        keep=config.keep,
        policy=PublishPolicy(
            every_events=config.publish_every_events,
            every_seconds=config.publish_every_seconds,
        ),
        follow=wakeup.to is None,
        stop_at=stop_at,
    )
