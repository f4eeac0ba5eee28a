"""Backfill (SPEC §11) against a plain consistent Scan of the same table, on DynamoDB Local.

    .venv/bin/python bench/backfill.py            # about 50,000 items
    .venv/bin/python bench/backfill.py --quick    # about 5,000 items, for a smoke run

DynamoDB Local is started here (``tests/aws/harness.py``, as the AWS tests start it; it needs
``make tools`` and a JDK) and everything goes over HTTP on 127.0.0.1. A table with a
NEW_AND_OLD_IMAGES stream is filled with the final state of a synthetic history (a realistic
mix: letters, words, lines, labels, places, receipts, images, compaction runs), written with
``BatchWriteItem``; the stream records of that population are read and dropped (the table's
past, which the log never sees), then a pump thread hands the stream to the stream Lambda
handler continuously, as the event source mapping would, so the backfill's marker items get
seen.

*scan*: a low-level boto3 ``Scan`` of the whole table (``ConsistentRead``, paginated, the
backfill's page size: what one Scan call returns, 1 MB), after an untimed warm-up scan.
*backfill*: ``run_backfill`` into a fresh SQLite store, one segment, ``--settle`` seconds.
``--repeats`` rounds (3) of one scan then one backfill, alternating; the scan's median time
and the backfill run of median rate are reported. The backfill cannot finish earlier than
``settle`` seconds after its last page was read (every page waits that long for the other
shards: docs/backfill.md), so its rate is taken *excluding* that wait: ``rows_per_s`` =
rows ÷ (seconds - ``settle_s``), ``settle_s`` being the summary's time at the barrier with
nothing left to read. That time also holds the deciding and appending of the pages still
waiting, so ``rows_per_s_work`` takes off only the configured ``settle`` (what no
implementation can avoid), and ``rows_per_s_all`` counts everything. ``ratio`` =
``rows_per_s`` ÷ ``scan_rows_per_s`` (goal >= 0.5), ``ratio_work`` the same with
``rows_per_s_work``. ``rows`` is the table's items; ``read`` can be a few more (the scan may
meet the backfill's own markers).

Also reported: the time Scan calls spend on the wire (request sent → response read, before
botocore parses it: DynamoDB Local's own time), the main thread's CPU time (markers,
deciding, appending), and how long each marker took to be ingested by the stream handler.
``--settle`` defaults to 1 s, and to 3 s from 20,000 items on: DynamoDB Local makes a
PutItem or GetRecords wait behind a Scan page in flight, and its pages slow down as the
table grows (about 1 s each at 50,000 items), so a marker can take over a second to be
seen, and a marker not seen within ``settle`` stops the backfill (``BarrierTimeout``).

``--profile`` (or a missed goal) runs the backfill again, into another fresh store, under
cProfile (the main thread only: the reader thread's Scan calls show up as waits) and prints
the top functions.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

import msgspec

import lambdas.stream_processor
from bench.profiling import top_functions
from receipt_events.backfill.adopt import BackfillOptions, run_backfill
from receipt_events.backfill.run import BackfillSummary
from receipt_events.markers import MARKER_PK
from receipt_events.store import STORE_ENV, open_store
from synthetic.history import History, HistoryConfig, generate_history
from tests.aws.harness import ServerProcess, aws_environment, start_dynamodb_local
from tests.support.receipt_table import create_receipt_table
from tests.support.stream_reader import StreamReader
from tests.support.warm_store import drop_warm_store

GOAL = 0.5
TABLE = "bench-receipts"
NO_SERVICE = "http://127.0.0.1:9"  # only DynamoDB is used: any other AWS service goes nowhere
BATCH = 25  # BatchWriteItem's maximum
PILOT_RECEIPTS = 40
ROOT = Path(__file__).resolve().parent.parent


# -- the table --------------------------------------------------------------------------------


def _wire(value: Mapping[str, Any]) -> Any:
    """A typed attribute value as a stream record holds it → as the low-level client takes it."""
    ((tag, inner),) = value.items()
    if tag == "B":
        return {"B": base64.b64decode(inner)}
    if tag == "BS":
        return {"BS": [base64.b64decode(member) for member in inner]}
    if tag == "L":
        return {"L": [_wire(member) for member in inner]}
    if tag == "M":
        return {"M": {name: _wire(member) for name, member in inner.items()}}
    return {tag: inner}


def final_items(history: History) -> dict[tuple[str, str], dict[str, Any]]:
    """The table a history leaves: every write applied in order (redeliveries are not writes)."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for record, intent in zip(history.records, history.intents, strict=True):
        if intent == "redelivery":
            continue
        body = record["dynamodb"]
        key = (body["Keys"]["PK"]["S"], body["Keys"]["SK"]["S"])
        if record["eventName"] == "REMOVE":
            items.pop(key, None)
        else:
            items[key] = {name: _wire(value) for name, value in body["NewImage"].items()}
    return items


def population(target: int, seed: int) -> list[dict[str, Any]]:
    """About ``target`` items: the final state of a history with enough receipts."""
    pilot = len(final_items(generate_history(HistoryConfig(seed=seed, receipts=PILOT_RECEIPTS))))
    receipts = max(1, round(target * PILOT_RECEIPTS / pilot))
    return list(final_items(generate_history(HistoryConfig(seed=seed, receipts=receipts))).values())


def write_items(client: Any, table: str, items: list[dict[str, Any]], threads: int = 4) -> None:
    def write(chunk: list[dict[str, Any]]) -> None:
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": item}} for item in chunk]
        while requests:
            response = client.batch_write_item(RequestItems={table: requests})
            requests = response.get("UnprocessedItems", {}).get(table, [])

    chunks = [items[start : start + BATCH] for start in range(0, len(items), BATCH)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(write, chunks))


# -- the stream processor, pumped ------------------------------------------------------------


class _QuietThreads(io.TextIOBase):
    """``sys.stdout`` that drops what given threads write (the handler's JSON log lines)."""

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self.quiet: set[int] = set()

    def write(self, text: str) -> int:
        if threading.get_ident() in self.quiet:
            return len(text)
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()


class Pump:
    """A thread handing the stream to the stream Lambda handler, as the event source mapping."""

    def __init__(self, reader: StreamReader, stdout: _QuietThreads) -> None:
        self.reader = reader
        self.stdout = stdout
        self.errors: list[BaseException] = []
        self.seen: dict[str, float] = {}  # marker → when the handler had ingested it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, store_url: str) -> None:
        """Start pumping into ``store_url`` (the handler opens it from its environment)."""
        os.environ[STORE_ENV] = store_url
        drop_warm_store(lambdas.stream_processor)
        with contextlib.redirect_stdout(io.StringIO()):  # a warm function: the store is open
            lambdas.stream_processor.handler({"Records": []}, None)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        drop_warm_store(lambdas.stream_processor)
        if self.errors:
            raise self.errors[0]

    def _run(self) -> None:
        self.stdout.quiet.add(threading.get_ident())
        try:
            while not self._stop.is_set():
                self.reader.deliver(self._handle)
                time.sleep(0.05)
        except BaseException as error:  # reported by stop()
            self.errors.append(error)

    def _handle(self, event: dict[str, Any], context: Any) -> Any:
        response = lambdas.stream_processor.handler(event, context)
        now = time.perf_counter()
        for record in event["Records"]:
            keys = record["dynamodb"]["Keys"]
            if record["eventName"] == "INSERT" and keys["PK"]["S"] == MARKER_PK:
                self.seen.setdefault(keys["SK"]["S"], now)
        return response


# -- the measurements -------------------------------------------------------------------------


class WireTimer:
    """Time each Scan spends on the wire (request sent → response read, before botocore parses
    it): DynamoDB Local's own time plus loopback; the rest of a Scan call is the client's."""

    def __init__(self, client: Any) -> None:
        self.seconds = 0.0
        self._sent = threading.local()
        client.meta.events.register("before-send.dynamodb.Scan", self._before_send)
        client.meta.events.register("before-parse.dynamodb.Scan", self._before_parse)

    def _before_send(self, **_: Any) -> None:
        self._sent.at = time.perf_counter()

    def _before_parse(self, **_: Any) -> None:
        self.seconds += time.perf_counter() - self._sent.at

    def lap(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def scan_all(client: Any, table: str) -> tuple[int, float, int]:
    """One consistent, paginated Scan of the whole table: rows, seconds, pages."""
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    rows = pages = 0
    started = time.perf_counter()
    while True:
        response = client.scan(**request)
        rows += len(response.get("Items", []))
        pages += 1
        next_key = response.get("LastEvaluatedKey")
        if not next_key:
            break
        request["ExclusiveStartKey"] = next_key
    return rows, time.perf_counter() - started, pages


class TimedClient:
    """The low-level client, timing the calls the backfill makes (Scan, markers)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.last_scan_at = 0.0
        self.markers: dict[str, float] = {}  # marker → when it was written

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in ("scan", "put_item", "delete_item"):
            return attribute

        def timed(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(**kwargs)
            finally:
                now = time.perf_counter()
                self.seconds[name] = self.seconds.get(name, 0.0) + now - started
                self.calls[name] = self.calls.get(name, 0) + 1
                if name == "scan":
                    self.last_scan_at = now
                elif name == "put_item" and kwargs["Item"]["PK"]["S"] == MARKER_PK:
                    self.markers[kwargs["Item"]["SK"]["S"]] = now

        return timed


class Run(msgspec.Struct, kw_only=True):
    """One backfill, timed."""

    summary: BackfillSummary
    seconds: float  # the whole run_backfill call
    read_s: float  # from the start until the last Scan response came back
    scan_calls_s: float  # in Scan calls (the reader thread)
    wire_s: float  # of which on the wire (DynamoDB Local and loopback)
    marker_calls_s: float  # writing and deleting markers (the main thread)
    main_cpu_s: float  # CPU time of the main thread: markers, deciding, appending, waiting
    marker_lag_s: list[float]  # per marker: written → ingested by the stream handler


def backfill_once(
    client: Any,
    wire: WireTimer,
    pump: Pump,
    store_url: str,
    settle: float,
    profile: cProfile.Profile | None = None,
) -> Run:
    """One backfill into a fresh store at ``store_url``, the pump feeding that store."""
    timed = TimedClient(client)
    options = BackfillOptions(table=TABLE, segments=1, settle=settle, page_rows=None)
    pump.start(store_url)
    try:
        with open_store(store_url) as store:
            wire.lap()
            cpu = time.thread_time()
            started = time.perf_counter()
            if profile is not None:
                profile.enable()
            try:
                summary = run_backfill(store, options, dynamodb=timed)
            finally:
                if profile is not None:
                    profile.disable()
            seconds = time.perf_counter() - started
            cpu = time.thread_time() - cpu
    finally:
        pump.stop()
    lags = sorted(pump.seen[name] - at for name, at in timed.markers.items() if name in pump.seen)
    return Run(
        summary=summary,
        seconds=seconds,
        read_s=timed.last_scan_at - started,
        scan_calls_s=timed.seconds.get("scan", 0.0),
        wire_s=wire.lap(),
        marker_calls_s=timed.seconds.get("put_item", 0.0) + timed.seconds.get("delete_item", 0.0),
        main_cpu_s=cpu,
        marker_lag_s=lags,
    )


@contextlib.contextmanager
def dynamodb_local(log_dir: Path) -> Iterator[ServerProcess]:
    server = start_dynamodb_local(log_dir)
    try:
        with aws_environment(NO_SERVICE, server.url):
            yield server
    finally:
        server.stop()


def make_table(client: Any, target: int, seed: int) -> tuple[int, str]:
    """The table, filled with about ``target`` items; returns how many and the stream ARN."""
    started = time.perf_counter()
    items = population(target, seed)
    generated = time.perf_counter() - started
    stream_arn = create_receipt_table(client, TABLE)
    started = time.perf_counter()
    write_items(client, TABLE, items)
    print(
        f"table: {len(items)} items, the final state of a synthetic history (generated in "
        f"{generated:.1f} s, written with BatchWriteItem in {time.perf_counter() - started:.1f} s)"
    )
    return len(items), stream_arn


def scan_once(client: Any, wire: WireTimer, rows: int, run: int) -> tuple[float, float]:
    """The baseline, once: seconds of a whole-table Scan, and its time on the wire."""
    wire.lap()
    read, seconds, pages = scan_all(client, TABLE)
    on_wire = wire.lap()
    print(
        f"round {run}: scan {read} rows in {pages} pages, {seconds:.2f} s ({on_wire:.2f} s on "
        "the wire, the rest parsing them in botocore)"
    )
    if read != rows:
        raise RuntimeError(f"the scan read {read} rows, the table was given {rows}")
    return seconds, on_wire


def report_run(run: Run, number: int, settle: float) -> None:
    summary, lags = run.summary, run.marker_lag_s
    print(
        f"round {number}: backfill read {summary.read} rows in {run.seconds:.2f} s; reading done "
        f"at {run.read_s:.2f} s ({run.scan_calls_s:.2f} s in Scan calls, {run.wire_s:.2f} s of "
        f"it on the wire); settle_s {summary.settle_s:.2f} s (--settle {settle:g}); main "
        f"thread CPU {run.main_cpu_s:.2f} s; {len(lags)} markers, {run.marker_calls_s:.2f} s "
        f"writing and deleting them, seen by the stream handler after "
        f"{statistics.median(lags):.3f} s median, {max(lags):.3f} s max"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 5,000 items")
    parser.add_argument("--items", type=int, default=None, help="about how many items")
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="the backfill's --settle (default 1 s; 3 s at full size, see the docstring)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of scan then backfill (medians)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="profile even if the goal is met")
    args = parser.parse_args()
    target = args.items or (5_000 if args.quick else 50_000)
    if args.settle is None:
        args.settle = 1.0 if target <= 20_000 else 3.0

    stdout = _QuietThreads(sys.stdout)
    sys.stdout = stdout  # the pump thread's handler logs go nowhere
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-backfill-") as scratch,
            dynamodb_local(Path(scratch) / "logs"),
        ):
            result, profiled = measure(args, target, Path(scratch), stdout)
    finally:
        sys.stdout = stdout.target
    if profiled:
        print("profile of the backfill call (main thread), top functions by own time:")
        print(f"{'tottime':>8} {'cumtime':>8} {'calls':>8}  function")
        for name, own, cumulative, calls in profiled:
            print(f"{own:8.3f} {cumulative:8.3f} {calls:8d}  {name}")
        result["profile_top"] = [[name, round(own, 3)] for name, own, _, _ in profiled[:8]]
    print(
        f"backfill {result['rows_per_s']:,} rows/s excluding settle_s "
        f"({result['rows_per_s_work']:,} excluding only --settle, {result['rows_per_s_all']:,} "
        f"all in), Scan {result['scan_rows_per_s']:,} rows/s: ratio {result['ratio']} "
        f"(goal >= {GOAL}; {result['ratio_work']} excluding only --settle)"
    )
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


def measure(
    args: argparse.Namespace, target: int, scratch: Path, stdout: _QuietThreads
) -> tuple[dict[str, Any], list[tuple[str, float, float, int]]]:
    import boto3

    session = boto3.session.Session()
    client = session.client("dynamodb")
    wire = WireTimer(client)
    rows, stream_arn = make_table(client, target, args.seed)
    reader = StreamReader(
        session.client("dynamodbstreams"), stream_arn, region=session.region_name, limit=1000
    )
    started = time.perf_counter()
    dropped = sum(len(d.event["Records"]) for d in reader.deliver(lambda event, context: None))
    drained = time.perf_counter() - started
    print(f"{dropped} stream records of the population read and dropped ({drained:.1f} s)")
    reader.limit = 100  # the event source mapping's default batch size
    scan_all(client, TABLE)  # warm-up: DynamoDB Local's JIT, the connection pool
    pump = Pump(reader, stdout)
    scans: list[tuple[float, float]] = []
    runs: list[Run] = []
    for number in range(1, args.repeats + 1):  # alternating, so drift hits both alike
        scans.append(scan_once(client, wire, rows, number))
        url = f"sqlite:///{scratch / f'store-{number}' / 'events.db'}"
        runs.append(backfill_once(client, wire, pump, url, args.settle))
        report_run(runs[-1], number, args.settle)
        if runs[-1].summary.read < rows:  # more: the scan can meet the backfill's own markers
            raise RuntimeError(f"the backfill read {runs[-1].summary.read} rows of {rows}")
    scan_s = statistics.median(seconds for seconds, _ in scans)
    scan_wire_s = statistics.median(on_wire for _, on_wire in scans)
    # the run with the median rate (excluding settle_s) stands for the backfill
    run = sorted(runs, key=lambda r: r.seconds - r.summary.settle_s)[len(runs) // 2]
    summary, lags = run.summary, run.marker_lag_s
    print(
        f"appended {summary.appended} ({summary.runs_appended} compaction runs), skipped "
        f"{summary.skipped} {dict(summary.skipped_by_kind)}, superseded {summary.superseded}, "
        f"parked {summary.parked}"
    )
    scan_rate = rows / scan_s
    busy = run.seconds - summary.settle_s
    work = run.seconds - args.settle
    result: dict[str, Any] = {
        "rows": rows,
        "read": summary.read,
        "seconds": round(run.seconds, 3),
        "settle": args.settle,
        "settle_s": round(summary.settle_s, 3),
        "read_s": round(run.read_s, 3),
        "rows_per_s": round(rows / busy),
        "rows_per_s_work": round(rows / work),
        "rows_per_s_all": round(rows / run.seconds),
        "scan_s": round(scan_s, 3),
        "scan_wire_s": round(scan_wire_s, 3),
        "scan_rows_per_s": round(scan_rate),
        "ratio": round(rows / busy / scan_rate, 3),
        "ratio_work": round(rows / work / scan_rate, 3),
        "goal": GOAL,
        "repeats": args.repeats,
        "ratios": [
            round(rows / (r.seconds - r.summary.settle_s) / (rows / seconds), 3)
            for r, (seconds, _) in zip(runs, scans, strict=True)
        ],
        "backfill_scan_calls_s": round(run.scan_calls_s, 3),
        "backfill_wire_s": round(run.wire_s, 3),
        "main_cpu_s": round(run.main_cpu_s, 3),
        "marker_calls_s": round(run.marker_calls_s, 3),
        "markers": len(lags),
        "marker_lag_median_s": round(statistics.median(lags), 3),
        "marker_lag_max_s": round(max(max(r.marker_lag_s) for r in runs), 3),
        "appended": summary.appended,
        "runs_appended": summary.runs_appended,
        "superseded": summary.superseded,
        "skipped": summary.skipped,
        "skipped_by_kind": summary.skipped_by_kind,
        "parked": summary.parked,
        "head": summary.head,
    }
    profiled: list[tuple[str, float, float, int]] = []
    if args.profile or result["ratio"] < GOAL:
        profile = cProfile.Profile()
        url = f"sqlite:///{scratch / 'store-profiled' / 'events.db'}"
        print("one more backfill, under cProfile")
        backfill_once(client, wire, pump, url, args.settle, profile)
        profiled = top_functions(profile, 15)
    return result, profiled


if __name__ == "__main__":
    main()
