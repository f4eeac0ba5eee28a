"""The projector's job, as package code the Lambda handler only routes to.

A wake-up runs one compaction that follows the head: lease → restore the latest snapshot, or
reuse the copy a warm container kept in ``/tmp`` → catch up, publishing every N events or T
seconds and at the end → keep going while new events arrive → release.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from projections.compaction import CompactOptions, CompactResult, PublishPolicy, compact
from projections.settings import CACHE_ENV, DELTAS_ENV, LEASE_TTL_ENVS, SNAPSHOTS_ENV
from receipt_chroma.deltas import DeltaSources
from receipt_chroma.lease import LEASE_TABLE_ENVS, Leases, leases_for
from receipt_chroma.snapshots import open_snapshot_store
from receipt_events.store import STORE_ENV, EventStore


class ConfigError(ValueError):
    """The projector's environment is incomplete or wrong."""


class ProjectorConfig(msgspec.Struct, frozen=True, kw_only=True):
    store: str | None
    snapshots: str
    lease_table: str | None
    deltas: str = "."
    snapshot_dir: str = "/tmp/receipt-events/snapshot"
    publish_every_events: int | None = 5000
    publish_every_seconds: float | None = 120.0
    lease_ttl: float = 120.0
    keep: int = 5
    # stop following the head this long before the invocation's deadline, to publish and
    # release in time (a Lambda killed by its timeout keeps its lease until the TTL runs out)
    stop_margin_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProjectorConfig:
        if not env.get(STORE_ENV):
            raise ConfigError(f"{STORE_ENV} is not set (the event store's URL)")
        snapshots = env.get(SNAPSHOTS_ENV)
        if not snapshots:
            raise ConfigError(f"{SNAPSHOTS_ENV} is not set (s3://bucket/prefix)")
        lease_table = _first(env, LEASE_TABLE_ENVS)
        if snapshots.startswith("s3://") and not lease_table:
            raise ConfigError(f"{LEASE_TABLE_ENVS[0]} is not set (the DynamoDB lease table)")
        try:
            return cls(
                store=env.get(STORE_ENV),
                snapshots=snapshots,
                lease_table=lease_table,
                deltas=env.get(DELTAS_ENV, "."),
                snapshot_dir=env.get(CACHE_ENV, "/tmp/receipt-events/snapshot"),
                publish_every_events=_optional(
                    env, "RECEIPT_EVENTS_PUBLISH_EVERY_EVENTS", int, 5000
                ),
                publish_every_seconds=_optional(
                    env, "RECEIPT_EVENTS_PUBLISH_EVERY_SECONDS", float, 120.0
                ),
                lease_ttl=float(_first(env, LEASE_TTL_ENVS) or "120"),
                keep=int(env.get("RECEIPT_EVENTS_KEEP", "5")),
                stop_margin_seconds=float(env.get("RECEIPT_EVENTS_STOP_MARGIN_SECONDS", "60")),
            )
        except ValueError as error:
            raise ConfigError(f"projector configuration: {error}") from None

    def leases(self) -> Leases:
        return leases_for(self.snapshots, self.lease_table)


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The value of the first of ``names`` that is set (a current name before its old one)."""
    return next((env[name] for name in names if env.get(name)), None)


def _optional(env: Mapping[str, str], name: str, kind: type, default: Any) -> Any:
    value = env.get(name)
    if value is None:
        return default
    if value.strip().lower() in ("", "none", "off"):
        return None
    return kind(value)


def run_projector(
    config: ProjectorConfig,
    store: EventStore,
    *,
    to: int | None = None,
    seconds_left: float | None = None,
) -> CompactResult:
    """One projector run: compaction that follows the head unless asked for a position ``to``.

    ``seconds_left`` (the Lambda context's remaining time): the run stops following the head
    ``stop_margin_seconds`` before that, publishes what it applied and releases the lease.
    """
    stop_at = None
    if seconds_left is not None:
        stop_at = time.monotonic() + max(0.0, seconds_left - config.stop_margin_seconds)
    return compact(
        store,
        open_snapshot_store(config.snapshots),
        config.leases(),
        DeltaSources(config.deltas),
        Path(config.snapshot_dir),
        CompactOptions(
            to=to,
            lease_ttl=config.lease_ttl,
            keep=config.keep,
            policy=PublishPolicy(
                every_events=config.publish_every_events,
                every_seconds=config.publish_every_seconds,
            ),
            follow=to is None,
            stop_at=stop_at,
        ),
    )
