"""Ingest throughput against raw sqlite3 writing the same rows, measured in one run.

    .venv/bin/python bench/ingest.py            # 100,000 synthetic stream records
    .venv/bin/python bench/ingest.py --quick    # 10,000, for a smoke run

*ingest* = split the JSON Lines input into records, parse and validate each, detect changes,
encode events and append them (plus parked records) to a fresh SQLite store file through the
eventsourcing recorder, in batches of ``--batch-size``. *raw* = plain ``sqlite3`` inserting
exactly the rows that ingest stored, into a fresh file with the same table, the same WAL mode
and synchronous setting, and the same rows per transaction. Both rates are input records per
second, so the ratio is raw time / ingest time: the cost of everything we do on top of the
bare database writes. For context, *archive* = plain ``sqlite3`` storing every input record's
bytes as one row (the naive alternative: dump the stream as it comes), same batching.
Runs alternate (ingest, raw, archive, ...) and medians are reported. The last line of output
is one JSON object.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from receipt_events.ingest import ingest
from receipt_events.records import InputRecord, read_input
from receipt_events.store import open_store
from synthetic.history import config_for_records, generate_history, to_jsonl

Row = tuple[str, int, str, bytes]


def time_ingest(data: bytes, path: Path, batch_size: int) -> tuple[float, int]:
    store = open_store(f"sqlite:///{path}")
    started = time.perf_counter()
    summary = ingest(store, read_input(data, "bench.jsonl"), batch_size=batch_size)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed, summary.appended + summary.parked


def stored_rows(path: Path) -> list[list[Row]]:
    """The rows ingest wrote, grouped per table, in insertion order."""
    with sqlite3.connect(path) as connection:
        return [
            connection.execute(
                "SELECT originator_id, originator_version, topic, state "
                f"FROM {table} ORDER BY rowid"
            ).fetchall()
            for table in ("events", "parked_records")
        ]


def time_raw(tables: list[list[Row]], path: Path, batch_size: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    for table in ("events", "parked_records"):
        connection.execute(
            f"CREATE TABLE {table} (originator_id TEXT, originator_version INTEGER, topic TEXT, "
            "state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
    started = time.perf_counter()
    for table, rows in zip(("events", "parked_records"), tables, strict=True):
        for offset in range(0, len(rows), batch_size):
            connection.execute("BEGIN")
            connection.executemany(
                f"INSERT INTO {table} VALUES (?,?,?,?)", rows[offset : offset + batch_size]
            )
            connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def time_archive(records: list[InputRecord], path: Path, batch_size: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE stream (origin TEXT PRIMARY KEY, record BLOB)")
    rows = [(record.origin, record.raw) for record in records]
    started = time.perf_counter()
    for offset in range(0, len(rows), batch_size):
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO stream VALUES (?,?)", rows[offset : offset + batch_size]
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 records")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    target = 10_000 if args.quick else args.records

    history = generate_history(config_for_records(target, seed=args.seed))
    data = to_jsonl(history.records)
    records = len(history.records)
    print(f"input: {records} stream records, {len(data) / 1e6:.1f} MB of JSON Lines")

    ingest_times: list[float] = []
    raw_times: list[float] = []
    archive_times: list[float] = []
    split = read_input(data, "bench.jsonl")
    rows = 0
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as workdir:
        for run in range(args.repeats):
            ingest_path = Path(workdir) / f"ingest-{run}.db"
            elapsed, rows = time_ingest(data, ingest_path, args.batch_size)
            ingest_times.append(elapsed)
            raw_times.append(
                time_raw(stored_rows(ingest_path), Path(workdir) / f"raw-{run}.db", args.batch_size)
            )
            archive_times.append(
                time_archive(split, Path(workdir) / f"archive-{run}.db", args.batch_size)
            )
            print(
                f"run {run + 1}: ingest {elapsed:.2f} s, raw {raw_times[-1]:.2f} s "
                f"({rows} rows stored), archive {archive_times[-1]:.2f} s"
            )

    ingest_time = statistics.median(ingest_times)
    raw_time = statistics.median(raw_times)
    archive_time = statistics.median(archive_times)
    result = {
        "records": records,
        "rows": rows,
        "batch_size": args.batch_size,
        "ingest_s": round(ingest_time, 3),
        "raw_s": round(raw_time, 3),
        "ingest_per_s": round(records / ingest_time),
        "raw_per_s": round(records / raw_time),
        "ratio": round(raw_time / ingest_time, 3),
        "goal": 0.6,
        "events_per_s": round(rows / ingest_time),
        "archive_per_s": round(records / archive_time),
        "archive_ratio": round(archive_time / ingest_time, 3),
    }
    print(
        f"ingest {result['ingest_per_s']:,} records/s, raw sqlite3 {result['raw_per_s']:,} "
        f"records/s (same rows), ratio {result['ratio']} (goal >= 0.6); archiving every "
        f"record raw: {result['archive_per_s']:,} records/s (ratio {result['archive_ratio']})"
    )
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
