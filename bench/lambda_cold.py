"""The stream Lambda: cold import time, handler throughput, and the Powertools peer figure.

    .venv/bin/python bench/lambda_cold.py            # needs PostgreSQL at 127.0.0.1:5432/test
    .venv/bin/python bench/lambda_cold.py --quick

*cold import*: a fresh interpreter imports ``lambdas.stream_processor`` (what Lambda does on a
cold start before the first event); the time of the import itself, median of 10 runs.
*throughput*: the handler called on Lambda events of 1,000 synthetic stream records each
(a realistic mix: most records are skipped words, lines and letters), appending to a
PostgreSQL store in a fresh schema; records per second, median over the events. The first
call (connection and table setup) is reported separately.
*peer_ratio*: the handler's records/s on the same events appending to a fresh SQLite file
(classify + store), ÷ the records/s of AWS Lambda Powertools' ``DynamoDBStreamEvent`` merely
parsing them and deserializing every record's keys and images (what a handler built on it
does before any work of its own). The two run alternately, event by event, in this process,
three rounds over the events (one with ``--quick``), each round on a new SQLite file; per
event the best round counts, and each rate is all the events' records ÷ their total seconds
(events differ in mix: the ratio of each event is reported too). Powertools is a bench-only
dependency (the ``bench`` extra, which ``make bench`` installs). The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psycopg

from synthetic.history import config_for_records, generate_history

PROBE = (
    "import time; started = time.perf_counter(); import lambdas.stream_processor; "
    "print(time.perf_counter() - started)"
)
STORE_ENV = "RECEIPT_EVENTS_STORE"
INSTALL_HINT = (
    "bench/lambda_cold.py compares against AWS Lambda Powertools, a bench-only dependency "
    "that is not installed: run `make bench`, or `.venv/bin/python -m pip install -e '.[bench]'`"
)

Batch = list[dict[str, Any]]
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Parser = Callable[[Batch], int]


def powertools_parser() -> Parser:
    """Powertools parsing a stream event and deserializing each record, or exit with a hint."""
    try:
        from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
    except ImportError:
        sys.exit(INSTALL_HINT)

    def parse(batch: Batch) -> int:
        count = 0
        for record in DynamoDBStreamEvent({"Records": batch}).records:
            body = record.dynamodb
            if record.event_id and record.event_name and body is not None:
                _ = (body.keys, body.new_image, body.old_image, body.sequence_number)
            count += 1
        return count

    return parse


def cold_import(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
        )
        times.append(float(done.stdout.strip()))
    return times


def synthetic_events(batch: int, count: int) -> list[Batch]:
    """``count`` Lambda events' worth of records, ``batch`` records each."""
    records = generate_history(config_for_records(batch * count, seed=3)).records
    batches = [records[i : i + batch] for i in range(0, len(records), batch)][:count]
    # Keep the collector off the generated history: a Lambda's heap holds one event, not this.
    gc.collect()
    gc.freeze()
    return batches


def use_store(url: str) -> Handler:
    """The stream Lambda's handler, pointed at the store ``url`` (opened on its first call)."""
    import lambdas.stream_processor as stream_processor

    close_store()
    os.environ[STORE_ENV] = url
    os.environ.pop("RECEIPT_EVENTS_WAKE_QUEUE", None)
    return stream_processor.handler


def close_store() -> None:
    """Close the store the handler keeps open across calls (as in a warm container)."""
    import lambdas.stream_processor as stream_processor

    stream_processor._store.drop()


def call(handler: Handler, batch: Batch, index: int) -> float:
    """Seconds the handler takes on one event (its logs and metrics are formatted, not shown)."""
    logs = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(logs):
        result = handler({"Records": batch}, None)
    elapsed = time.perf_counter() - started
    if result["batchItemFailures"]:
        raise RuntimeError(f"batch {index} reported failures: {result}")
    return elapsed


def postgres_rates(batches: list[Batch], postgres: str) -> tuple[float, list[float]]:
    """The first call's seconds, then records/s per event, on a fresh PostgreSQL schema."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    handler = use_store(f"{postgres}?schema={schema}")
    try:
        first = call(handler, batches[0], 0)
        rates = [len(b) / call(handler, b, i) for i, b in enumerate(batches[1:], start=1)]
    finally:
        close_store()  # before the schema goes
        with psycopg.connect(postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return first, rates


def peer_times(batches: list[Batch], parse: Parser, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds per event of the handler on a fresh SQLite file and of Powertools, alternately,
    the best of ``rounds`` rounds over the events (each round on a new file: the same work)."""
    ours = [math.inf] * (len(batches) - 1)
    peer = [math.inf] * (len(batches) - 1)
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as directory:
            handler = use_store(f"sqlite:///{Path(directory) / 'events.db'}")
            call(handler, batches[0], 0)  # creates the tables
            for index, batch in enumerate(batches[1:], start=1):
                ours[index - 1] = min(ours[index - 1], call(handler, batch, index))
                started = time.perf_counter()
                parse(batch)
                peer[index - 1] = min(peer[index - 1], time.perf_counter() - started)
            close_store()  # before its directory goes
    return ours, peer


def peer_figures(batches: list[Batch], ours: list[float], peer: list[float]) -> dict[str, Any]:
    """Both rates over all the events (records ÷ total seconds) and their ratio; per event, the
    ratios vary with the event's mix (skipped words and letters, or label writes)."""
    records = sum(len(batch) for batch in batches[1:])
    ratios = [theirs / mine for mine, theirs in zip(ours, peer, strict=True)]
    return {
        "sqlite_records_per_s": round(records / sum(ours)),
        "powertools_records_per_s": round(records / sum(peer)),
        "peer_ratio": round(sum(peer) / sum(ours), 2),
        "peer_ratio_per_event": {
            "median": round(statistics.median(ratios), 2),
            "min": round(min(ratios), 2),
            "max": round(max(ratios), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    events = 3 if args.quick else 10
    parse = powertools_parser()

    imports = cold_import(10)
    print(
        f"cold import of lambdas.stream_processor: median {statistics.median(imports):.3f} s "
        f"(min {min(imports):.3f}, max {max(imports):.3f})"
    )
    batches = synthetic_events(args.batch, events + 1)
    first, timings = postgres_rates(batches, args.postgres)
    print(f"first call (connect, create tables): {first:.2f} s")
    ours, peer = peer_times(batches, parse, rounds=1 if args.quick else 3)
    result = {
        "cold_import_s": round(statistics.median(imports), 3),
        "cold_import_runs": [round(t, 3) for t in imports],
        "records_per_s": round(statistics.median(timings)),
        "batch": args.batch,
        "events_measured": len(timings),
        "goal_cold_import_s": 0.3,
        **peer_figures(batches, ours, peer),
        "goal_peer_ratio": 3,
    }
    print(f"handler on {args.batch}-record events: median {result['records_per_s']:,} records/s")
    print(
        f"same events, SQLite store: {result['sqlite_records_per_s']:,} records/s; Powertools "
        f"parse + deserialize: {result['powertools_records_per_s']:,} records/s; "
        f"peer_ratio {result['peer_ratio']} (per event: {result['peer_ratio_per_event']})"
    )
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
