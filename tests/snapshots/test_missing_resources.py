"""A resource the user must create first (the lease table, the bucket) is named, with the
command that creates it: exit 2, one line, not an AWS failure to retry.

The commands run in-process on DynamoDB Local and the moto server, against a snapshot
directory projected from a small synthetic history; ``lease create-table`` is the fix the
message names, and after it the same push succeeds.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runs import ingested_history, ok_json, run


def usage_error(result: Any) -> str:
    """The one line a usage error prints on stderr (exit 2), without its ``error:`` prefix."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert "run the command again" not in result.stderr  # not reported as a passing failure
    return str(result.stderr)[len("error: ") : -1]


@pytest.fixture
def snapshot_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A snapshot directory projected by the CLI from a three-receipt synthetic history."""
    for name in ("RECEIPT_EVENTS_LEASE_TABLE", "RECEIPT_EVENTS_LOCK_TABLE", "RECEIPT_EVENTS_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    store = ingested_history(tmp_path, seed=3)
    directory = tmp_path / "snapshot"
    projected = ok_json(
        run(
            "project", "--snapshot-dir", directory, "--store", store, "--deltas", tmp_path, "--json"
        )
    )
    assert projected["applied"] > 0
    return directory


def compact_args(dest: str, table: str, root: Path) -> list[str | Path]:
    """``compact`` from the store ``snapshot_dir`` was projected from, to ``dest``."""
    store = f"sqlite:///{root / 'events.db'}"
    return [
        *("compact", "--snapshot-store", dest, "--snapshot-dir", root / "work"),
        *("--lease-table", table, "--store", store, "--deltas", root),
    ]


def test_a_missing_lease_table_names_the_command_that_creates_it(
    snapshot_dir: Path, s3_bucket: str, dynamodb_client: Any
) -> None:
    table = f"leases-{uuid.uuid4().hex[:12]}"
    dest = f"s3://{s3_bucket}/snapshots"

    message = usage_error(run("snapshot", "push", snapshot_dir, dest, "--lease-table", table))
    assert f"the lease table {table!r} does not exist" in message
    assert f"receipt-events lease create-table --lease-table {table}" in message
    assert table not in dynamodb_client.list_tables()["TableNames"]  # nothing was made for us

    created = ok_json(run("lease", "create-table", "--lease-table", table, "--json"))
    assert created == {"table": table, "created": True}
    again = ok_json(run("lease", "create-table", "--lease-table", table, "--json"))
    assert again == {"table": table, "created": False}  # idempotent
    described = dynamodb_client.describe_table(TableName=table)["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    pushed = ok_json(run("snapshot", "push", snapshot_dir, dest, "--lease-table", table, "--json"))
    assert pushed["position"] > 0


def test_compact_with_a_missing_lease_table_is_the_same_usage_error(
    snapshot_dir: Path, s3_bucket: str, aws_clean: object, tmp_path: Path
) -> None:
    table = f"leases-{uuid.uuid4().hex[:12]}"
    message = usage_error(run(*compact_args(f"s3://{s3_bucket}/snapshots", table, tmp_path)))
    assert f"receipt-events lease create-table --lease-table {table}" in message


@pytest.mark.parametrize("command", ["push", "list", "compact"])
def test_a_missing_bucket_names_the_step_that_creates_it(
    command: str, snapshot_dir: Path, s3_bucket: str, aws_clean: object, tmp_path: Path
) -> None:
    table = f"leases-{uuid.uuid4().hex[:12]}"
    ok_json(run("lease", "create-table", "--lease-table", table, "--json"))
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    dest = f"s3://{bucket}/snapshots"
    args: dict[str, list[str | Path]] = {
        "push": ["snapshot", "push", snapshot_dir, dest, "--lease-table", table],
        "list": ["snapshot", "list", dest],
        "compact": compact_args(dest, table, tmp_path),
    }
    message = usage_error(run(*args[command]))
    assert f"the bucket {bucket!r} does not exist" in message
    assert f"aws s3 mb s3://{bucket}" in message
