"""The stream Lambda: cold import time, and handler throughput against PostgreSQL.

    .venv/bin/python bench/lambda_cold.py            # needs PostgreSQL at 127.0.0.1:5432/test
    .venv/bin/python bench/lambda_cold.py --quick

*cold import*: a fresh interpreter imports ``lambdas.stream_processor`` (what Lambda does on a
cold start before the first event); the time of the import itself, median of 10 runs.
*throughput*: the handler called on Lambda events of 1,000 synthetic stream records each
(a realistic mix: most records are skipped words, lines and letters), appending to a
PostgreSQL store in a fresh schema; records per second, median over the events. The first
call (connection and table setup) is reported separately. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
import uuid

import msgspec
import psycopg

from synthetic.history import config_for_records, generate_history

PROBE = (
    "import time; started = time.perf_counter(); import lambdas.stream_processor; "
    "print(time.perf_counter() - started)"
)


def cold_import(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
        )
        times.append(float(done.stdout.strip()))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    events = 3 if args.quick else 10

    imports = cold_import(10)
    print(
        f"cold import of lambdas.stream_processor: median {statistics.median(imports):.3f} s "
        f"(min {min(imports):.3f}, max {max(imports):.3f})"
    )

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    os.environ["RECEIPT_EVENTS_STORE"] = f"{args.postgres}?schema={schema}"
    os.environ.pop("RECEIPT_EVENTS_WAKE_QUEUE", None)
    from lambdas.stream_processor import handler

    records = generate_history(config_for_records(args.batch * (events + 1), seed=3)).records
    batches = [records[i : i + args.batch] for i in range(0, len(records), args.batch)]
    timings = []
    try:
        for index, batch in enumerate(batches[: events + 1]):
            logs = io.StringIO()  # the handler's JSON logs and EMF metrics: formatted, not shown
            started = time.perf_counter()
            with contextlib.redirect_stdout(logs):
                result = handler({"Records": batch}, None)
            elapsed = time.perf_counter() - started
            if result["batchItemFailures"]:
                raise RuntimeError(f"batch {index} reported failures: {result}")
            if index == 0:
                print(f"first call (connect, create tables): {elapsed:.2f} s")
            else:
                timings.append(len(batch) / elapsed)
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    result = {
        "cold_import_s": round(statistics.median(imports), 3),
        "cold_import_runs": [round(t, 3) for t in imports],
        "records_per_s": round(statistics.median(timings)),
        "batch": args.batch,
        "events_measured": len(timings),
        "goal_cold_import_s": 0.3,
    }
    print(f"handler on {args.batch}-record events: median {result['records_per_s']:,} records/s")
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
