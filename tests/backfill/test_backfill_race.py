"""SPEC §11 on DynamoDB Local: a backfill racing live writes, with the stream pumped into the
stream Lambda handler the whole time, never reverts an item and adopts every one.

Each seed cuts a synthetic history in two: the table's past (which the log never sees) and
writes made by another thread while the backfill reads (label and place changes, removals,
new runs, some before and some after the scan reads each item). After the backfill and the
stream drain, the rebuilt snapshot must equal what the final table implies (the reference
oracle of SPEC §7), and a second backfill must append nothing.
"""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from projections.baseline import adopt_baseline
from receipt_chroma.deltas import DeltaSources
from receipt_events.backfill.adopt import BackfillOptions, run_backfill
from receipt_events.store import open_store
from tests.aws.harness import AwsEnv
from tests.support.adoption import (
    Adoption,
    as_json_item,
    assert_snapshot_matches_table,
    events_per_item,
    past_runs,
    reverted_items,
    upload_tree,
    write_old_snapshot,
)
from tests.support.cli_runs import ok_json, run
from tests.support.exports import write_export
from tests.support.reliability_profile import PROFILE

# 6 seeds in CI; RELIABILITY_PROFILE=deep runs 30 (and 10 from exports, 10 touched)
SEEDS = [11 + n for n in range(3 * PROFILE.seeds)]
EXPORT_SEEDS = [101 + n for n in range(PROFILE.seeds)]
TOUCH_SEEDS = [201 + n for n in range(PROFILE.seeds)]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_backfill_racing_live_writes_adopts_everything_and_reverts_nothing(
    seed: int, aws_clean: AwsEnv, dynamodb_client: Any, stream_store: str, tmp_path: Path
) -> None:
    race_a_scan_backfill(seed, aws_clean, dynamodb_client, stream_store, tmp_path)


def test_a_backfill_into_a_dynamodb_event_store_racing_live_writes(
    aws_clean: AwsEnv, dynamodb_client: Any, dynamodb_stream_store: str, tmp_path: Path
) -> None:
    """The same race with the log in DynamoDB (the serverless deployment): the conditional
    append, the progress table and the markers all on ``dynamodb://``."""
    race_a_scan_backfill(SEEDS[0], aws_clean, dynamodb_client, dynamodb_stream_store, tmp_path)


def race_a_scan_backfill(
    seed: int, aws_clean: AwsEnv, dynamodb_client: Any, stream_store: str, tmp_path: Path
) -> None:
    adoption = Adoption.create(
        aws_clean,
        dynamodb_client,
        f"receipts-{uuid.uuid4().hex[:8]}",
        seed=seed,
        deltas=tmp_path / "deltas",
    )
    adoption.start_pump()
    adoption.start_writes(seconds=2.0)
    options = BackfillOptions(table=adoption.table.name, segments=2, settle=5.0, page_rows=5)
    with open_store(stream_store) as store:
        try:
            first = run_backfill(store, options, dynamodb=dynamodb_client)
            adoption.wait_for_writes()
            again = run_backfill(store, options, dynamodb=dynamodb_client)  # the pump still runs
        finally:
            adoption.finish()
        assert first.read > 0
        assert first.appended > 0
        assert again.appended == 0, again
        assert again.run == first.run + 1
        assert reverted_items(store) == []
        origins = events_per_item(store)
    # every item of the table's past that the stream never touched is in the log once
    touched_items = {
        f"{keys['PK']['S']}|{keys['SK']['S']}"
        for record in adoption.history.records[adoption.cut :]
        for keys in [record["dynamodb"]["Keys"]]
    }
    for item, kinds in origins.items():
        if "backfill" in kinds:
            assert kinds.count("backfill") == 1, item
            assert item not in touched_items or kinds[0] == "backfill", (item, kinds)
    snapshot = tmp_path / "rebuilt"
    ok_json(run("rebuild", "--snapshot-dir", snapshot, "--store", stream_store, "--json"))
    assert_snapshot_matches_table(snapshot, adoption)


@pytest.mark.parametrize("seed", EXPORT_SEEDS)
def test_a_backfill_from_an_export_on_s3_racing_live_writes(
    seed: int,
    aws_clean: AwsEnv,
    dynamodb_client: Any,
    s3_bucket: str,
    stream_store: str,
    tmp_path: Path,
) -> None:
    adoption = Adoption.create(
        aws_clean,
        dynamodb_client,
        f"receipts-{uuid.uuid4().hex[:8]}",
        seed=seed,
        deltas=tmp_path / "deltas",
    )
    s3 = aws_clean.client("s3")
    rows = [
        as_json_item(item)
        for page in dynamodb_client.get_paginator("scan").paginate(
            TableName=adoption.table.name, ConsistentRead=True
        )
        for item in page["Items"]
    ]
    table_arn = dynamodb_client.describe_table(TableName=adoption.table.name)["Table"]["TableArn"]
    exported_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    url = write_export(
        rows,
        root=f"s3://{s3_bucket}/exports",
        table_arn=table_arn,
        export_time=exported_at,
        files=3,
        s3_client=s3,
    )
    time.sleep(0.01)
    adoption.start_pump()
    adoption.start_writes(seconds=2.0)
    options = BackfillOptions(export=url, settle=5.0, export_fuzz=0.0)
    with open_store(stream_store) as store:
        try:
            first = run_backfill(store, options, dynamodb=dynamodb_client, s3=s3)
            adoption.wait_for_writes()
            again = run_backfill(store, options, dynamodb=dynamodb_client, s3=s3)
        finally:
            adoption.finish()
        assert first.read == len(rows), first
        assert first.appended > 0, first
        assert first.job.startswith("export:")
        assert again.appended == 0, again
        assert reverted_items(store) == []
    snapshot = tmp_path / "rebuilt"
    ok_json(run("rebuild", "--snapshot-dir", snapshot, "--store", stream_store, "--json"))
    assert_snapshot_matches_table(snapshot, adoption)


@pytest.mark.parametrize("layout", ["directory", "old-layout-on-s3"])
def test_a_backfill_with_the_old_snapshot_as_embeddings_baseline(
    layout: str,
    aws_clean: AwsEnv,
    dynamodb_client: Any,
    s3_bucket: str,
    stream_store: str,
    tmp_path: Path,
) -> None:
    deltas = tmp_path / "deltas"
    adoption = Adoption.create(
        aws_clean, dynamodb_client, f"receipts-{uuid.uuid4().hex[:8]}", seed=51, deltas=deltas
    )
    old = tmp_path / "old-snapshot"
    write_old_snapshot(adoption, old, layout="directory" if layout == "directory" else "old")
    src = str(old)
    if layout != "directory":
        src = upload_tree(aws_clean.client("s3"), old, s3_bucket, "chromadb")
    gone = past_runs(adoption)[::2]  # their deltas were lost: only the old snapshot has them
    assert gone
    for run_ in gone:
        shutil.rmtree(deltas / run_.run_id)
    delta_root = tmp_path / "delta-root"
    delta_root.mkdir()
    adoption.start_pump()
    adoption.start_writes(seconds=2.0)
    options = BackfillOptions(table=adoption.table.name, segments=2, settle=5.0, page_rows=5)
    sources = DeltaSources(str(delta_root))
    with open_store(stream_store) as store:
        try:
            first = run_backfill(
                store,
                options,
                dynamodb=dynamodb_client,
                delta_check=sources.absent,
                baseline=lambda table: adopt_baseline(src, str(delta_root), table=table),
            )
            adoption.wait_for_writes()
            again = run_backfill(
                store,
                options,
                dynamodb=dynamodb_client,
                delta_check=sources.absent,
                baseline=lambda table: adopt_baseline(src, str(delta_root), table=table),
            )
        finally:
            adoption.finish()
        assert first.baseline == "appended"
        assert again.baseline == "already in the log"
        assert again.appended == 0
        assert reverted_items(store) == []
        parked = store.parked_records()
    gone_ids = {run_.run_id for run_ in gone}
    parked_runs = {record.parked_id.rsplit("#", 1)[1] for record in parked}
    assert parked_runs <= gone_ids
    assert parked_runs  # at least one lost run was not superseded by a streamed one
    assert all("the old system's snapshot" in record.error for record in parked)
    assert len(list((delta_root / "baseline").iterdir())) == 1  # copied once
    snapshot = tmp_path / "rebuilt"
    ok_json(
        run(
            "rebuild",
            "--snapshot-dir",
            snapshot,
            "--store",
            stream_store,
            "--deltas",
            delta_root,
            "--json",
        )
    )
    assert_snapshot_matches_table(snapshot, adoption)


@pytest.mark.parametrize("seed", TOUCH_SEEDS)
def test_the_touch_mode_brings_every_item_through_its_own_stream_record(
    seed: int, aws_clean: AwsEnv, dynamodb_client: Any, stream_store: str, tmp_path: Path
) -> None:
    adoption = Adoption.create(
        aws_clean,
        dynamodb_client,
        f"receipts-{uuid.uuid4().hex[:8]}",
        seed=seed,
        deltas=tmp_path / "deltas",
    )
    adoption.start_pump()
    adoption.start_writes(seconds=2.0)
    options = BackfillOptions(
        table=adoption.table.name, segments=2, page_rows=5, touch=True, settle=5.0
    )
    with open_store(stream_store) as store:
        try:
            first = run_backfill(store, options, dynamodb=dynamodb_client)
            adoption.wait_for_writes()
            adoption.drain(store)
            again = run_backfill(store, options, dynamodb=dynamodb_client)
        finally:
            adoption.finish()
        assert first.appended == first.runs_appended  # only runs are appended
        assert first.touched > 0
        assert again.touched == 0, again
        origins = events_per_item(store)
    # places and labels came through their own stream records; only runs were appended
    backfilled = [item for item, kinds in origins.items() if "backfill" in kinds]
    assert all("#COMPACTION_RUN#" in item for item in backfilled), backfilled
    with open_store(stream_store) as store:
        assert reverted_items(store) == []
    snapshot = tmp_path / "rebuilt"
    ok_json(run("rebuild", "--snapshot-dir", snapshot, "--store", stream_store, "--json"))
    assert_snapshot_matches_table(snapshot, adoption)
