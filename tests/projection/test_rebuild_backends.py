"""A rebuild reads the same log whatever the store: from DynamoDB it equals one from SQLite.

The same generated history (real Chroma deltas, both layouts) is ingested into a SQLite store
and into a DynamoDB store (DynamoDB Local, in batches: many transactions), and each is rebuilt
from zero, to the head and to a position in the middle. The two logs hold the same events in
the same order, and every rebuild (the API on both, and ``receipt-events rebuild`` on the
DynamoDB one) ends at the same position with the same digest and counts.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from projections.runner import RebuildResult, rebuild, snapshot_digest
from receipt_chroma.deltas import DeltaSources
from receipt_cli.app import app
from receipt_events.ingest import ingest
from receipt_events.records import records_from_lambda_event
from receipt_events.store import open_store
from synthetic.deltas import Layout, write_run_deltas
from synthetic.history import HistoryConfig, generate_history
from tests.support.log_contents import events_of

DIMENSION = 8
INGEST_BATCH = 25


def test_a_rebuild_from_dynamodb_has_the_digest_of_a_rebuild_from_sqlite(
    sqlite_url: str, dynamodb_url: str, tmp_path: Path
) -> None:
    history = generate_history(
        HistoryConfig(seed=11, receipts=4, lines_per_receipt=(3, 6), removal_rate=0.3)
    )
    deltas = tmp_path / "deltas"
    for index, run in enumerate(history.runs):
        layout: Layout = "tarball" if index % 2 else "directory"
        write_run_deltas(run, deltas, dimension=DIMENSION, layout=layout)
    assert history.runs
    source = DeltaSources(str(deltas))

    logs, heads, results = {}, {}, {}
    for name, url in (("sqlite", sqlite_url), ("dynamodb", dynamodb_url)):
        with open_store(url) as store:
            records = records_from_lambda_event({"Records": history.records})
            summary = ingest(store, records, batch_size=INGEST_BATCH)
            assert summary.appended > INGEST_BATCH  # several appends (transactions)
            logs[name] = events_of(store.iter_events())
            heads[name] = store.head()
            results[name] = rebuild(store, tmp_path / name / "head", source)
            results[f"{name} middle"] = rebuild(
                store, tmp_path / name / "middle", source, to=heads[name] // 2
            )

    assert logs["dynamodb"] == logs["sqlite"]
    assert heads["dynamodb"] == heads["sqlite"] == len(logs["sqlite"])
    head, middle = heads["sqlite"], heads["sqlite"] // 2
    assert 0 < middle < head

    # the CLI on the DynamoDB store (region and endpoint from the AWS variables aws_env set)
    cli = CliRunner().invoke(
        app,
        [
            "rebuild",
            "--store",
            dynamodb_url,
            "--deltas",
            str(deltas),
            "--snapshot-dir",
            str(tmp_path / "dynamodb" / "cli"),
            "--json",
        ],
        catch_exceptions=False,
    )
    assert cli.exit_code == 0, (cli.stdout, cli.stderr)
    printed = json.loads(cli.stdout)
    results["dynamodb cli"] = RebuildResult(
        position=printed["position"],
        digest=printed["digest"],
        counts=printed["counts"],
        applied=printed["applied"],
    )

    def summary_of(result: RebuildResult) -> tuple[int, str, dict[str, int], int]:
        return result.position, result.digest, result.counts, result.applied

    reference = summary_of(results["sqlite"])
    assert reference[0] == head
    assert reference[2]["lines"] > 0
    assert reference[2]["words"] > 0
    assert summary_of(results["dynamodb"]) == reference
    assert summary_of(results["dynamodb cli"]) == reference
    assert snapshot_digest(tmp_path / "dynamodb" / "head").digest == reference[1]
    assert snapshot_digest(tmp_path / "dynamodb" / "cli").digest == reference[1]
    at_middle = summary_of(results["sqlite middle"])
    assert at_middle[0] == middle
    assert at_middle[1] != reference[1]
    assert summary_of(results["dynamodb middle"]) == at_middle
