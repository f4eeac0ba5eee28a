"""Concurrency: 4 projector processes and 2 ingesting processes on one PostgreSQL store, one S3
snapshot store (moto server) and one DynamoDB Local lock table; no change lost, nothing doubled.

A synthetic history (at least 1,000 events in the fast profile, ten times that in deep, with
its own redeliveries) is split into two stream shards by partition key. Two ingester processes
deliver them through the stream Lambda handler, in batches, with retried batches and windows
of each other's shard (so both race to append the same records), while four projector
processes, each with its own cache, keep invoking the projector Lambda handler (direct, SQS,
scheduled and ``{"to": P}`` wake-ups), publishing every few hundred events under the fenced
DynamoDB lock (see ``concurrency_workers.py``). Each invocation has a Lambda-like time budget
of a few seconds: a run that follows the busy head stops in time, publishes and releases, so
the lock changes hands while ingestion goes on. When ingestion is over, one last compaction
runs here, from a cold cache.

Then: exactly one pointer; its snapshot pulls and verifies (digest equal to a rebuild of the
log); it is at the log head; the log holds every event of the stream exactly once, equal to a
clean single-process ingest of the same records, each shard in stream order; and the pulled
snapshot equals, record by record, both the rebuild of this log (*lost updates*: records that
differ, goal 0) and the rebuild of the clean log (*divergence*). Figures: processes, events,
publishes, lost swaps and fenced-out publishes (conflicts), stand-downs, lost updates,
divergence.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from projections.compaction import CompactOptions, compact
from projections.runner import rebuild, snapshot_digest
from projections.verify import compare, verify
from receipt_chroma.client import open_chroma
from receipt_chroma.deltas import DeltaSources
from receipt_chroma.digest import dump
from receipt_chroma.lease import DynamoDBLeases
from receipt_chroma.snapshots import open_snapshot_store
from receipt_events.ingest import ingest
from receipt_events.records import records_from_lambda_event
from receipt_events.store import open_store
from synthetic.deltas import write_run_deltas
from synthetic.history import EVENT_INTENTS, HistoryConfig, generate_history, to_jsonl
from tests.aws.harness import AwsEnv
from tests.reliability.concurrency_workers import (
    SHARDS,
    STOP_MARGIN,
    ingester,
    projector,
    shard_of,
)
from tests.support.reliability_figures import record_case
from tests.support.reliability_profile import PROFILE

pytestmark = pytest.mark.slow

SCALE = PROFILE.scale
RECEIPTS = 24 * SCALE  # about 1,400 events per 24 receipts
MIN_EVENTS = 1_000 * SCALE
PROJECTORS = 4
INGESTERS = 2
DIMENSION = 16
INGEST_SECONDS = 20 * SCALE**0.5  # roughly how long ingestion is spread over
PUBLISH_EVERY = 200 * SCALE  # events between publishes within one projector run
LOCK_TTL = 30 if SCALE == 1 else 10  # deep: short enough for a slow holder to lose it
DEADLINE = 240 * SCALE  # seconds for the workers, well past what they need
SEED = 31
EXPECTED_FAILURES = {"LeaseLost", "FencedOut", "CompactionGaveUp"}  # refusals, not bugs


def test_four_projectors_and_two_ingesters_lose_nothing(
    aws_env: AwsEnv,
    s3_bucket: str,
    lock_table: str,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    history = generate_history(
        HistoryConfig(seed=SEED, receipts=RECEIPTS, redelivery_rate=0.05, delta_root="deltas")
    )
    stream_events = sum(intent in EVENT_INTENTS for intent in history.intents)
    assert stream_events >= MIN_EVENTS, f"the history has only {stream_events} events"
    for index, run in enumerate(history.runs):
        write_run_deltas(
            run, tmp_path, dimension=DIMENSION, layout="tarball" if index % 2 else "directory"
        )
    records_path = tmp_path / "stream.jsonl"
    records_path.write_bytes(to_jsonl(history.records))
    snapshots_url = f"s3://{s3_bucket}/snapshots"
    deltas = DeltaSources(str(tmp_path))
    with open_store(postgres_url):
        pass  # tables made once here, not raced by six processes

    # -- the six processes ----------------------------------------------------------------
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(INGESTERS + PROJECTORS + 1)
    done = context.Event()
    progress = context.Array("q", SHARDS)
    bursts = len(history.records) / INGESTERS / 55 / 5  # batches of 55, bursts of 5, on average
    pause = INGEST_SECONDS / bursts
    ingest_env = {"RECEIPT_EVENTS_STORE": postgres_url}
    project_env = {
        "RECEIPT_EVENTS_STORE": postgres_url,
        "RECEIPT_EVENTS_SNAPSHOTS": snapshots_url,
        "RECEIPT_EVENTS_LEASE_TABLE": lock_table,
        "RECEIPT_EVENTS_DELTAS": str(tmp_path),
        "RECEIPT_EVENTS_PUBLISH_EVERY_EVENTS": str(PUBLISH_EVERY),
        "RECEIPT_EVENTS_PUBLISH_EVERY_SECONDS": "off",
        "RECEIPT_EVENTS_LEASE_TTL": str(LOCK_TTL),
        "RECEIPT_EVENTS_KEEP": "3",
        "RECEIPT_EVENTS_STOP_MARGIN_SECONDS": STOP_MARGIN,
    }
    ingesters = [
        context.Process(
            target=ingester,
            args=(
                shard,
                str(records_path),
                ingest_env,
                progress,
                start,
                SEED,
                pause,
                str(tmp_path / f"ingester-{shard}.json"),
            ),
            name=f"ingester-{shard}",
        )
        for shard in range(INGESTERS)
    ]
    projectors = [
        context.Process(
            target=projector,
            args=(
                number,
                {**project_env, "RECEIPT_EVENTS_CACHE": str(tmp_path / f"cache-{number}")},
                postgres_url,
                done,
                start,
                SEED,
                str(tmp_path / f"projector-{number}.json"),
            ),
            name=f"projector-{number}",
        )
        for number in range(PROJECTORS)
    ]
    processes = ingesters + projectors
    for process in processes:
        process.start()
    try:
        start.wait(timeout=DEADLINE)
        ingest_started = time.monotonic()
        for process in ingesters:
            process.join(timeout=DEADLINE)
        ingest_seconds = time.monotonic() - ingest_started
        done.set()
        for process in projectors:
            process.join(timeout=DEADLINE)
    finally:
        done.set()
        for process in processes:
            if process.exitcode is None:
                process.terminate()
                process.join()
    results = {p.name: _result(tmp_path / f"{p.name}.json") for p in processes}
    crashed = {p.name: p.exitcode for p in processes if p.exitcode != 0}
    if crashed:
        record_case(SCENARIO, crashes=len(crashed), exit_codes=crashed)
    assert not crashed, f"worker processes failed: {crashed}\n{_crashes(results)}"

    # -- one last compaction, from a cold cache -------------------------------------------
    snapshots = open_snapshot_store(snapshots_url)
    with open_store(postgres_url) as store:
        head = store.head()
        final = compact(
            store,
            snapshots,
            DynamoDBLeases(lock_table),
            deltas,
            tmp_path / "final-cache",
            CompactOptions(lease_ttl=LOCK_TTL, follow=True),
        )
        assert final.position == head

        # exactly one pointer, at the head, naming a snapshot that pulls and verifies
        keys = snapshots.backend.list_keys("")
        assert [key for key in keys if key.endswith("latest.json")] == ["latest.json"]
        pointer, _ = snapshots.pointer()
        assert pointer is not None
        assert pointer.position == head == store.head()
        pulled = tmp_path / "pulled"
        manifest = snapshots.download(pointer.key, pulled)
        assert manifest.position == pointer.position
        assert snapshot_digest(pulled).digest == manifest.digest == pointer.digest
        verified = verify(store, pulled, deltas)
        assert verified.digest == verified.rebuilt_digest
        lost_updates = verified.differing_records

        # every event of the stream exactly once: the clean single-process ingest's events
        log = list(store.iter_events())
    clean = open_store("memory://")
    clean_summary = ingest(clean, records_from_lambda_event({"Records": history.records}))
    clean_log = list(clean.iter_events())
    ids = [recorded.event.source.event_id for recorded in log]
    doubled = sum(n - 1 for n in Counter(ids).values())
    clean_events = {r.event.source.event_id: r.event for r in clean_log}
    assert doubled == 0, f"{doubled} events stored more than once"
    assert len(log) == len(clean_log) == stream_events
    assert {r.event.source.event_id: r.event for r in log} == clean_events
    shard_of_event = {
        record["eventID"]: shard_of(record)
        for record, intent in zip(history.records, history.intents, strict=True)
        if intent in EVENT_INTENTS
    }
    for shard in range(SHARDS):
        ours = [i for i in ids if shard_of_event[i] == shard]
        theirs = [
            r.event.source.event_id
            for r in clean_log
            if shard_of_event[r.event.source.event_id] == shard
        ]
        assert ours == theirs, f"shard {shard} is not in stream order in the log"

    # the pulled snapshot equals the clean log's rebuild, record by record
    rebuild(clean, tmp_path / "clean-rebuild", deltas)
    with open_chroma(pulled / "chroma", create=False) as chroma:
        ours_dump = dump(chroma)
    with open_chroma(tmp_path / "clean-rebuild" / "chroma", create=False) as chroma:
        clean_dump = dump(chroma)
    divergence = len(compare(ours_dump, clean_dump))
    clean.close()

    # -- figures, and proof that the processes really did contend -------------------------
    ingested = [results[p.name] for p in ingesters]
    projected = [results[p.name] for p in projectors]
    total = Counter[str]()
    for result in projected:
        total.update({k: v for k, v in result.items() if isinstance(v, int)})
    failures = Counter[str]()
    for result in projected:
        failures.update(result.get("failures", {}))
    interleaving = sum(shard_of_event[a] != shard_of_event[b] for a, b in itertools.pairwise(ids))
    figures = {
        "processes": len(processes),
        "events": len(log),
        "records": len(history.records),
        "deliveries": sum(r.get("deliveries", 0) for r in ingested),
        "duplicates": sum(r.get("duplicates", 0) for r in ingested),
        "overlap_records": sum(r.get("overlap_records", 0) for r in ingested),
        "overlap_ahead": sum(r.get("overlap_ahead", 0) for r in ingested),
        "ingest_seconds": round(ingest_seconds, 1),
        "projector_invocations": total["invocations"],
        "projector_runs": total["runs"],
        "publishes": total["publish_published"] + int(final.published),
        "publishes_while_ingesting": total["publish_published_while_ingesting"],
        "publishers": sum(r.get("publish_published", 0) > 0 for r in projected),
        "lost_swaps": total["publish_lost_swaps"],
        "fenced_out": total["publish_fenced_out"],
        "refused_lock_lost": total["publish_refused_lock_lost"],
        "conflicts": total["publish_lost_swaps"] + total["publish_fenced_out"],
        "stand_downs": total["stand_downs"],
        "failed_runs": dict(failures),
        "final_applied": final.applied,
        "lost_updates": lost_updates,
        "divergences": divergence,
        "doubled": doubled,
        "crashes": 0,
        "seconds": round(time.monotonic() - started, 1),
    }
    record_case(SCENARIO, **figures)
    print(f"\nconcurrency figures: {figures}")

    assert lost_updates == 0, f"{lost_updates} records differ from a rebuild of the log"
    assert divergence == 0, f"{divergence} records differ from a rebuild of the clean log"
    unexpected = {name: n for name, n in failures.items() if name not in EXPECTED_FAILURES}
    assert not unexpected, f"projector runs failed: {unexpected}\n{_samples(projected)}"
    assert total["publish_other_errors"] == 0
    # the scenario really was concurrent (otherwise it proves little)
    assert figures["publishes_while_ingesting"] >= 2, "no publishes while ingestion went on"
    assert total["runs_applying_while_ingesting"] >= 2, "one run did everything"
    assert figures["publishers"] >= 2, "only one projector process ever published"
    assert figures["stand_downs"] >= 1, "the projectors never contended for the lock"
    assert figures["overlap_ahead"] >= 1, "the ingesters never raced for the same records"
    assert figures["duplicates"] > clean_summary.duplicates, "no duplicates beyond the stream's own"
    assert interleaving >= 2, "the two shards' events did not interleave in the log"


SCENARIO = f"concurrency/{PROJECTORS}-projectors-{INGESTERS}-ingesters/postgres+s3+dynamodb"


def _result(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"crash": f"{path.name} was never written"}
    document: dict[str, Any] = msgspec.json.decode(path.read_bytes())
    return document


def _crashes(results: dict[str, dict[str, Any]]) -> str:
    return "\n".join(f"{name}: {r['crash']}" for name, r in results.items() if "crash" in r)


def _samples(results: list[dict[str, Any]]) -> str:
    return "\n".join(sample for r in results for sample in r.get("failure_samples", []))
