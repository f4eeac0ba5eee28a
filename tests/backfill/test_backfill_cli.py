"""``backfill`` from the command line: killed midway and run again, and the errors that
name their fix (no stream, the wrong view type, a stream processor that is not running)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from receipt_events.backfill.progress import PagePassed
from receipt_events.store import open_store
from tests.aws.harness import AwsEnv
from tests.support.adoption import Adoption, assert_snapshot_matches_table, reverted_items
from tests.support.cli_runs import ok_json, run

CLI = [sys.executable, "-c", "from receipt_cli.app import main; main()"]


def backfill_json(args: list[str]) -> Any:
    """Run the command in its own process (the pump's logs go to this one's stdout)."""
    done = subprocess.run([*CLI, *args], env=dict(os.environ), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def pages_passed(store_url: str) -> int:
    with open_store(store_url) as store:
        return sum(isinstance(entry, PagePassed) for _, entry in store.progress_after(0))


def test_a_backfill_killed_midway_continues_from_its_checkpoint(
    aws_clean: AwsEnv, dynamodb_client: Any, stream_store: str, tmp_path: Path
) -> None:
    adoption = Adoption.create(
        aws_clean,
        dynamodb_client,
        f"receipts-{uuid.uuid4().hex[:8]}",
        seed=31,
        deltas=tmp_path / "deltas",
    )
    adoption.start_pump()
    adoption.start_writes(seconds=3.0)
    args = ["backfill", "--table", adoption.table.name, "--store", stream_store]
    args += ["--settle", "3", "--page-rows", "3", "--segments", "2", "--json"]
    try:
        process = subprocess.Popen([*CLI, *args], env=dict(os.environ), stdout=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while pages_passed(stream_store) < 3:
            assert process.poll() is None, "the backfill ended before it could be killed"
            assert time.monotonic() < deadline, "no page was checkpointed"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        checkpointed = pages_passed(stream_store)
        resumed = backfill_json(args)
        adoption.wait_for_writes()
        again = backfill_json(args)
    finally:
        adoption.finish()
    assert resumed["resumed"] is True
    assert resumed["pass"] == 1
    assert pages_passed(stream_store) > checkpointed
    assert again["appended"] == 0
    assert again["pass"] == 2
    with open_store(stream_store) as store:
        assert reverted_items(store) == []
    snapshot = tmp_path / "rebuilt"
    ok_json(run("rebuild", "--snapshot-dir", snapshot, "--store", stream_store, "--json"))
    assert_snapshot_matches_table(snapshot, adoption)


def new_table(client: Any, stream: dict[str, Any] | None) -> str:
    name = f"plain-{uuid.uuid4().hex[:8]}"
    extra = {"StreamSpecification": stream} if stream else {}
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    return name


def test_a_table_without_a_stream_is_refused_with_the_command_that_enables_it(
    dynamodb_client: Any, sqlite_url: str
) -> None:
    table = new_table(dynamodb_client, None)
    result = run("backfill", "--table", table, "--store", sqlite_url)
    assert result.exit_code == 2
    assert f"table {table!r} has no stream" in result.stderr
    assert "StreamViewType=NEW_AND_OLD_IMAGES" in result.stderr


def test_a_stream_without_both_images_is_refused(dynamodb_client: Any, sqlite_url: str) -> None:
    table = new_table(dynamodb_client, {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    result = run("backfill", "--table", table, "--store", sqlite_url)
    assert result.exit_code == 2
    assert "streams KEYS_ONLY, but the log needs NEW_AND_OLD_IMAGES" in result.stderr


def test_a_missing_table_names_the_flag_to_check(dynamodb_client: Any, sqlite_url: str) -> None:
    result = run("backfill", "--table", "no-such-table", "--store", sqlite_url)
    assert result.exit_code == 2
    assert "DynamoDB table 'no-such-table' does not exist" in result.stderr


def test_without_a_stream_processor_the_barrier_times_out_and_says_what_is_missing(
    dynamodb_client: Any, sqlite_url: str
) -> None:
    stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    table = new_table(dynamodb_client, stream)
    dynamodb_client.put_item(
        TableName=table,
        Item={
            "PK": {"S": "IMAGE#x"},
            "SK": {"S": "RECEIPT#00001#PLACE"},
            "merchant_name": {"S": "A"},
        },
    )
    started = time.monotonic()
    result = run("backfill", "--table", table, "--store", sqlite_url, "--settle", "1")
    assert result.exit_code == 1  # the work could not complete; running it again continues
    assert time.monotonic() - started < 30
    assert "the stream processor did not ingest backfill marker" in result.stderr
    assert "within --settle 1 s" in result.stderr
    assert "run backfill again to continue" in result.stderr
    with open_store(sqlite_url) as store:
        assert store.head() == 0  # nothing was decided behind a barrier that never passed


def test_backfill_needs_a_source(sqlite_url: str) -> None:
    result = run("backfill", "--store", sqlite_url)
    assert result.exit_code == 2
    assert "--table NAME" in result.stderr


def test_the_json_summary_has_the_documented_keys(
    aws_clean: AwsEnv, dynamodb_client: Any, stream_store: str, tmp_path: Path
) -> None:
    adoption = Adoption.create(
        aws_clean,
        dynamodb_client,
        f"receipts-{uuid.uuid4().hex[:8]}",
        seed=41,
        deltas=tmp_path / "deltas",
    )
    adoption.start_pump()
    try:
        summary = backfill_json(
            [
                "backfill",
                "--table",
                adoption.table.name,
                "--store",
                stream_store,
                "--settle",
                "2",
                "--json",
            ]
        )
    finally:
        adoption.finish()
    assert {"read", "appended", "superseded", "skipped_by_kind", "parked", "head"} <= set(summary)
    assert (
        summary["read"]
        == sum(summary[key] for key in ("appended", "superseded", "parked", "skipped"))
        - summary["runs_appended"]
        + summary["runs_appended"]
    )
    assert json.dumps(summary)
