"""The projector's configuration from its environment, and what counts as a wake-up."""

from __future__ import annotations

import pytest

from lambdas.triggers import Wakeup, parse_wakeup
from projections.projector import ConfigError, ProjectorConfig
from receipt_chroma.lease import DynamoDBLeases, FileLeases

BASE = {
    "RECEIPT_EVENTS_STORE": "postgresql://u@h/db",
    "RECEIPT_EVENTS_SNAPSHOTS": "s3://bucket/snapshots",
    "RECEIPT_EVENTS_LEASE_TABLE": "leases",
}


def test_a_complete_environment_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # the lock's client needs one
    config = ProjectorConfig.from_env(BASE)
    assert config.store == "postgresql://u@h/db"
    assert (config.publish_every_events, config.publish_every_seconds) == (5000, 120.0)
    assert (config.lease_ttl, config.keep, config.deltas) == (120.0, 5, ".")
    assert config.snapshot_dir == "/tmp/receipt-events/snapshot"
    assert isinstance(config.leases(), DynamoDBLeases)


def test_policy_values_can_be_set_or_turned_off() -> None:
    config = ProjectorConfig.from_env(
        {
            **BASE,
            "RECEIPT_EVENTS_PUBLISH_EVERY_EVENTS": "off",
            "RECEIPT_EVENTS_PUBLISH_EVERY_SECONDS": "30.5",
            "RECEIPT_EVENTS_KEEP": "2",
        }
    )
    assert (config.publish_every_events, config.publish_every_seconds, config.keep) == (
        None,
        30.5,
        2,
    )


def test_a_local_snapshot_store_uses_a_file_lock(tmp_path: object) -> None:
    config = ProjectorConfig.from_env(
        {"RECEIPT_EVENTS_STORE": "sqlite:////tmp/x.db", "RECEIPT_EVENTS_SNAPSHOTS": "/tmp/store"}
    )
    assert isinstance(config.leases(), FileLeases)


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("RECEIPT_EVENTS_STORE", "RECEIPT_EVENTS_STORE is not set"),
        ("RECEIPT_EVENTS_SNAPSHOTS", "RECEIPT_EVENTS_SNAPSHOTS is not set"),
        ("RECEIPT_EVENTS_LEASE_TABLE", "RECEIPT_EVENTS_LEASE_TABLE is not set"),
    ],
)
def test_a_missing_setting_is_named(missing: str, message: str) -> None:
    env = {key: value for key, value in BASE.items() if key != missing}
    with pytest.raises(ConfigError, match=message):
        ProjectorConfig.from_env(env)


def test_the_names_before_0_2_are_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    old = {
        "RECEIPT_EVENTS_STORE": "postgresql://u@h/db",
        "RECEIPT_EVENTS_SNAPSHOTS": "s3://bucket/snapshots",
        "RECEIPT_EVENTS_LOCK_TABLE": "old-locks",
        "RECEIPT_EVENTS_LOCK_TTL": "45",
    }
    config = ProjectorConfig.from_env(old)
    assert (config.lease_table, config.lease_ttl) == ("old-locks", 45.0)
    # the current name wins where both are set
    both = {**old, "RECEIPT_EVENTS_LEASE_TABLE": "leases", "RECEIPT_EVENTS_LEASE_TTL": "90"}
    assert (
        ProjectorConfig.from_env(both).lease_table,
        ProjectorConfig.from_env(both).lease_ttl,
    ) == (
        "leases",
        90.0,
    )


def test_a_malformed_number_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="projector configuration"):
        ProjectorConfig.from_env({**BASE, "RECEIPT_EVENTS_LEASE_TTL": "two minutes"})


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"Records": [{"eventSource": "aws:sqs", "messageId": "m1"}]}, Wakeup("sqs", ["m1"])),
        ({"source": "aws.events", "detail-type": "Scheduled Event"}, Wakeup("schedule", [])),
        ({}, Wakeup("direct", [], None)),
        ({"to": 42}, Wakeup("direct", [], 42)),
    ],
)
def test_wakeups(event: dict[str, object], expected: Wakeup) -> None:
    assert parse_wakeup(event) == expected


@pytest.mark.parametrize(
    "event",
    [
        {"to": -1},
        {"to": "42"},
        {"to": True},
        {"to": 3, "extra": 1},
        {"Records": [{"eventSource": "aws:dynamodb"}]},
        [],
        "wake up",
    ],
)
def test_anything_else_is_refused(event: object) -> None:
    with pytest.raises(ValueError, match="wake-up"):
        parse_wakeup(event)
