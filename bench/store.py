"""Event store write throughput per backend: SQLite, PostgreSQL and DynamoDB (Local), one run.

    .venv/bin/python bench/store.py            # 5 s per measurement, 3 rounds (about 6 minutes)
    .venv/bin/python bench/store.py --quick    # 1.5 s per measurement, 1 round (about 1 minute)

Context figures, no goal. For each backend:

* *append*: one writer appending batches of 100 events (and of 10, and of 1): events/s. The
  stream Lambda gets up to 500 stream records a call and ingest's default batch is 500
  records; at the synthetic history's events per record (below) that is about 140 events per
  append, so 100 is the realistic size.
* *commits*: 1, 2 and 4 writers at once, each its own OS process (multiprocessing ``spawn``),
  each appending 1 event per commit, then 10 events per commit, for ``--seconds``: aggregate
  commits/s and events/s, and each append's latency. On DynamoDB, also how many
  ``TransactWriteItems`` calls were cancelled because another writer had moved the counter
  (the append reads the head again and retries) or by a transaction conflict (backoff, retry):
  counted with botocore's event hooks on the writer's own client. SQLite and PostgreSQL never
  retry: writers queue on a lock (SQLite's write lock, PostgreSQL's ``LOCK TABLE``).

Every measurement gets a fresh store: a SQLite file in a temporary directory, a PostgreSQL
schema ``bench_store_*`` (``--postgres``, dropped after), a DynamoDB table made with
``create_store_table`` (deleted after). The writers are started once and reused; each opens
the store, then all start together at one wall-clock instant, so opening is not measured.
Each writer's events are its own (event ids ``<run>-w<writer>-<i>``), copies of the events a
synthetic history really produces (word labels, word/line removals, places, embedding runs),
so sizes are realistic. After each measurement the store's head must equal the events the
writers appended (no gap, no duplicate). With ``--repeats`` > 1 the whole grid runs that many
times and medians are reported.

*events per record*: the synthetic history (``--receipts``) ingested into ``memory://``:
events appended ÷ stream records (skipped kinds, unchanged MODIFYs, redeliveries included).
The DynamoDB item sizes of those events (the event item, its dedup item) give the write units
a transactional append costs on AWS (2 WCU per KB per item).

DynamoDB Local is started here (``tests/aws/harness.py``, as ``bench/backfill.py`` does; it
needs ``make tools`` and a JDK), 127.0.0.1 only. DynamoDB Local is one JVM on this machine's
cores, sharing them with the writers: its figures are the shape of the curve (how commits/s
moves with writers and batch size under the counter design), not DynamoDB's.

``--profile`` also runs one writer (batches of 10) in this process under cProfile, for each
backend, and prints the top functions. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from bench.profiling import top_functions
from receipt_events.events import EmbeddingsAdopted, EventSource, ReceiptEvent
from receipt_events.ingest import ingest
from receipt_events.records import read_input
from receipt_events.store import DynamoDBTarget, EventStore, open_store, parse_store_url
from receipt_events.store.content import content_hash
from receipt_events.store.dynamodb import dynamodb_client, open_dynamodb
from receipt_events.store.dynamodb_items import Pending, counter_action, write_actions
from receipt_events.store.mapper import MsgspecMapper
from synthetic.history import HistoryConfig, generate_history, to_jsonl
from tests.aws.harness import ServerProcess, aws_environment, start_dynamodb_local

BACKENDS = ("sqlite", "postgres", "dynamodb")
WRITERS = (1, 2, 4)
COMMIT_BATCHES = (1, 10)  # events per commit, for the concurrent writers
APPEND_BATCHES = (100, 10, 1)  # events per append, one writer
NO_SERVICE = "http://127.0.0.1:9"  # only DynamoDB is used: any other AWS service goes nowhere
START_DELAY = 0.3  # seconds between "all ready" and the common start
KB = 1024
PARTITION_WCU = 1000  # what one partition (so one partition key at the tail) takes per second
ROOT = Path(__file__).resolve().parent.parent


# -- the events --------------------------------------------------------------------------------


def realistic_events(receipts: int, seed: int) -> tuple[list[ReceiptEvent], dict[str, Any]]:
    """A synthetic history ingested into ``memory://``: its events, and events per record."""
    started = time.perf_counter()
    history = generate_history(HistoryConfig(seed=seed, receipts=receipts))
    data = to_jsonl(history.records)
    generated = time.perf_counter() - started
    with open_store(f"memory://bench-store-{uuid.uuid4().hex}") as store:
        summary = ingest(store, read_input(data, "bench.jsonl"))
        events = [recorded.event for recorded in store.iter_events()]
    templates = [
        event
        for event in events
        if not isinstance(event, EmbeddingsAdopted) and isinstance(event.source, EventSource)
    ]
    ratio = summary.appended / summary.records
    kinds: dict[str, int] = {}
    for event in templates:
        kinds[type(event).__name__] = kinds.get(type(event).__name__, 0) + 1
    print(
        f"synthetic history: {receipts} receipts, {summary.records} stream records (generated in "
        f"{generated:.1f} s) → {summary.appended} events: {ratio:.3f} events per record "
        f"({summary.skipped} skipped, {summary.unchanged} unchanged, {summary.duplicates} "
        "redelivered)"
    )
    info = {
        "records": summary.records,
        "events": summary.appended,
        "skipped": summary.skipped,
        "unchanged": summary.unchanged,
        "duplicates": summary.duplicates,
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "ratio": round(ratio, 4),
    }
    return templates, info


def copy_as(template: ReceiptEvent, event_id: str) -> ReceiptEvent:
    """The template under another stream event id: another event, same shape and size."""
    source = template.source
    assert isinstance(source, EventSource)
    return msgspec.structs.replace(
        template, source=msgspec.structs.replace(source, event_id=event_id)
    )


def attribute_bytes(value: dict[str, Any]) -> int:
    """An attribute value's size as DynamoDB counts it (strings UTF-8, numbers ~digits/2)."""
    ((tag, inner),) = value.items()
    if tag == "S":
        return len(inner.encode())
    if tag == "B":
        return len(inner)
    if tag == "N":
        digits = len(inner.lstrip("-").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    raise ValueError(f"unexpected attribute type {tag}")


def item_bytes(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_bytes(value) for name, value in item.items())


def dynamodb_item_sizes(events: list[ReceiptEvent]) -> dict[str, Any]:
    """What these events weigh as DynamoDB items, and the write units a transaction costs."""
    mapper = MsgspecMapper()
    event_sizes: list[int] = []
    dedup_sizes: list[int] = []
    wcu: list[int] = []
    position = 1_234_567  # a realistic position: a few digits
    for index, event in enumerate(events):
        pending = Pending(index, mapper.to_stored_event(event), content_hash(event))
        dedup, item, *parts = write_actions("log", "t", pending, position)
        if parts:
            raise RuntimeError("an event of the synthetic history needs parts: not expected")
        dedup_size = item_bytes(dedup["Put"]["Item"])
        event_size = item_bytes(item["Put"]["Item"])
        dedup_sizes.append(dedup_size)
        event_sizes.append(event_size)
        wcu.append(2 * math.ceil(event_size / KB) + 2 * math.ceil(dedup_size / KB))
    counter = counter_action("log", "t", position, position + 1)["Update"]["Key"]
    event_sizes.sort()
    return {
        "event_item_mean": round(statistics.fmean(event_sizes)),
        "event_item_p95": event_sizes[int(0.95 * (len(event_sizes) - 1))],
        "event_item_max": event_sizes[-1],
        "event_items_over_1kb": round(sum(size > KB for size in event_sizes) / len(event_sizes), 4),
        "dedup_item_mean": round(statistics.fmean(dedup_sizes)),
        "counter_item": item_bytes(counter) + len("last") + 4,
        "tx_wcu_per_event_mean": round(statistics.fmean(wcu), 3),
        "tx_wcu_per_commit": 2,  # the counter, under 1 KB
        "tx_wcu_event_item_mean": round(
            statistics.fmean(2 * math.ceil(size / KB) for size in event_sizes), 3
        ),
    }


# -- the writers (child processes) -------------------------------------------------------------


class Command(msgspec.Struct, frozen=True):
    url: str
    prefix: str
    batch: int
    seconds: float


class WriterResult(msgspec.Struct):
    commits: int = 0  # store.append calls
    events: int = 0  # events they appended
    started: float = 0.0  # wall clock
    ended: float = 0.0
    latencies: list[float] = msgspec.field(default_factory=list)  # per append, seconds
    # DynamoDB only: TransactWriteItems calls, of which cancelled because the counter had moved
    # (another writer appended first) or by a transaction conflict; botocore's own resends;
    # head reads (GetItem on the counter).
    transact_calls: int = 0
    counter_moved: int = 0
    conflicts: int = 0
    other_cancels: int = 0
    resends: int = 0
    head_reads: int = 0


class TransactCounts:
    """Counts a DynamoDB client's transactions and why they were cancelled (botocore hooks)."""

    def __init__(self, result: WriterResult) -> None:
        self.result = result

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-call.dynamodb.TransactWriteItems", self._call)
        events.register("before-send.dynamodb.TransactWriteItems", self._send)
        events.register("after-call.dynamodb.TransactWriteItems", self._after)
        events.register("before-call.dynamodb.GetItem", self._head)

    def _call(self, **_: Any) -> None:
        self.result.transact_calls += 1
        self.result.resends -= 1  # the first send of a call is not a resend

    def _send(self, **_: Any) -> None:
        self.result.resends += 1

    def _head(self, **_: Any) -> None:
        self.result.head_reads += 1

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        reasons = parsed.get("CancellationReasons") if "Error" in parsed else None
        if not reasons:
            return
        codes = [reason.get("Code", "None") for reason in reasons]
        if "TransactionConflict" in codes:
            self.result.conflicts += 1
        elif codes[0] == "ConditionalCheckFailed":  # the counter is the first action
            self.result.counter_moved += 1
        else:
            self.result.other_cancels += 1


def open_counted(url: str, result: WriterResult) -> EventStore:
    """The store at ``url``; on DynamoDB, through a client whose transactions are counted."""
    target = parse_store_url(url)
    if not isinstance(target, DynamoDBTarget):
        return open_store(url)
    client = dynamodb_client(target)
    TransactCounts(result).attach(client)
    _, recorders = open_dynamodb(target, client)
    return EventStore(url, recorders, close=client.close)


def write_for(
    store: EventStore,
    templates: list[ReceiptEvent],
    command: Command,
    deadline: float,
    result: WriterResult,
) -> None:
    """Append batches of new events until the wall clock passes ``deadline``."""
    count = len(templates)
    index = 0
    clock = time.perf_counter
    while time.time() < deadline:
        batch = [
            copy_as(templates[i % count], f"{command.prefix}-{i}")
            for i in range(index, index + command.batch)
        ]
        index += command.batch
        started = clock()
        positions = store.append(batch)
        result.latencies.append(clock() - started)
        appended = sum(position is not None for position in positions)
        if appended != len(batch):
            raise RuntimeError(f"{command.prefix}: {len(batch) - appended} new events not appended")
        result.commits += 1
        result.events += appended
    result.ended = time.time()


def writer_main(connection: Connection, encoded_templates: bytes) -> None:
    """A writer process: for each command, open the store, say ready, wait for the start time,
    append until the end, reply with the counts; ``None`` ends it."""
    templates = msgspec.json.decode(encoded_templates, type=list[ReceiptEvent])
    while True:
        command = connection.recv()
        if command is None:
            return
        result = WriterResult()
        try:
            with open_counted(command.url, result) as store:
                connection.send("ready")
                start_at = connection.recv()
                if start_at is None:
                    continue
                time.sleep(max(0.0, start_at - time.time()))
                result.started = time.time()
                write_for(store, templates, command, start_at + command.seconds, result)
        except BaseException:
            connection.send(("error", traceback.format_exc()))
            continue
        connection.send(msgspec.msgpack.encode(result))


class Writers:
    """``count`` writer processes, started once (spawn) and reused for every measurement."""

    def __init__(self, count: int, templates: list[ReceiptEvent]) -> None:
        context = multiprocessing.get_context("spawn")
        encoded = msgspec.json.encode(templates)
        self.connections: list[Connection] = []
        self.processes: list[Any] = []
        for number in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=writer_main, args=(theirs, encoded), name=f"writer-{number}", daemon=True
            )
            process.start()
            theirs.close()
            self.connections.append(ours)
            self.processes.append(process)

    def run(
        self, url: str, prefix: str, writers: int, batch: int, seconds: float
    ) -> list[WriterResult]:
        connections = self.connections[:writers]
        for number, connection in enumerate(connections):
            connection.send(Command(url, f"{prefix}-w{number}", batch, seconds))
        replies = [connection.recv() for connection in connections]
        errors = [reply[1] for reply in replies if isinstance(reply, tuple)]
        start_at = None if errors else time.time() + START_DELAY
        for connection, reply in zip(connections, replies, strict=True):
            if reply == "ready":
                connection.send(start_at)
        if errors:
            raise RuntimeError(f"a writer could not open {url}:\n{errors[0]}")
        results = []
        for connection in connections:
            reply = connection.recv()
            if isinstance(reply, tuple):
                errors.append(reply[1])
            else:
                results.append(msgspec.msgpack.decode(reply, type=WriterResult))
        if errors:
            raise RuntimeError(f"a writer failed on {url}:\n{errors[0]}")
        return results

    def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.send(None)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()


# -- the stores --------------------------------------------------------------------------------


class Stores:
    """Fresh stores per measurement, and their cleanup."""

    def __init__(self, scratch: Path, postgres: str, token: str) -> None:
        self.scratch = scratch
        self.postgres = postgres
        self.token = token
        self.made = 0
        self._dynamodb: Any = None

    @contextlib.contextmanager
    def fresh(self, backend: str) -> Iterator[str]:
        """A fresh, empty store's URL (tables made), removed afterwards."""
        self.made += 1
        name = f"{self.token}_{self.made}"
        if backend == "sqlite":
            url = "sqlite:///" + str(self.scratch / f"store-{name}" / "events.db")
        elif backend == "postgres":
            url = f"{self.postgres}?schema=bench_store_{name}"
        elif backend == "dynamodb":
            from receipt_events.store.dynamodb_table import create_store_table

            create_store_table(self.dynamodb, f"bench-store-{name}")
            url = f"dynamodb://bench-store-{name}"
        else:
            raise ValueError(backend)
        try:
            with open_store(url) as store:  # tables made here, before the writers open it
                if store.head() != 0:
                    raise RuntimeError(f"{url} is not empty")
            yield url
        finally:
            if backend == "postgres":
                self._drop_schema(f"bench_store_{name}")
            elif backend == "dynamodb":
                self.dynamodb.delete_table(TableName=f"bench-store-{name}")

    @property
    def dynamodb(self) -> Any:
        if self._dynamodb is None:
            import boto3

            self._dynamodb = boto3.session.Session().client("dynamodb")
        return self._dynamodb

    def _drop_schema(self, schema: str) -> None:
        import psycopg

        with psycopg.connect(self.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- measuring ---------------------------------------------------------------------------------


class Measured(msgspec.Struct, kw_only=True):
    backend: str
    writers: int
    batch: int
    seconds: float
    commits: int
    events: int
    commits_per_s: float
    events_per_s: float
    p50_ms: float
    p95_ms: float
    transactions: int = 0  # DynamoDB: committed TransactWriteItems
    counter_moved: int = 0
    conflicts: int = 0
    other_cancels: int = 0
    resends: int = 0
    head_reads: int = 0


def measure(
    writers: Writers, stores: Stores, backend: str, count: int, batch: int, seconds: float
) -> Measured:
    with stores.fresh(backend) as url:
        prefix = f"{stores.token}-{stores.made}"
        results = writers.run(url, prefix, count, batch, seconds)
        with open_store(url) as store:
            head = store.head()
    commits = sum(r.commits for r in results)
    events = sum(r.events for r in results)
    if head != events:
        raise RuntimeError(f"{backend}: the head is {head} after {events} events appended")
    elapsed = max(r.ended for r in results) - min(r.started for r in results)
    latencies = sorted(latency for r in results for latency in r.latencies)
    cancelled = sum(r.counter_moved + r.conflicts + r.other_cancels for r in results)
    return Measured(
        backend=backend,
        writers=count,
        batch=batch,
        seconds=round(elapsed, 3),
        commits=commits,
        events=events,
        commits_per_s=commits / elapsed,
        events_per_s=events / elapsed,
        p50_ms=1000 * latencies[len(latencies) // 2],
        p95_ms=1000 * latencies[int(0.95 * (len(latencies) - 1))],
        transactions=sum(r.transact_calls for r in results) - cancelled,
        counter_moved=sum(r.counter_moved for r in results),
        conflicts=sum(r.conflicts for r in results),
        other_cancels=sum(r.other_cancels for r in results),
        resends=sum(r.resends for r in results),
        head_reads=sum(r.head_reads for r in results),
    )


def grid() -> list[tuple[int, int]]:
    """(writers, events per append), in the order they are measured."""
    single = [(1, batch) for batch in APPEND_BATCHES]
    concurrent = [(count, batch) for count in WRITERS[1:] for batch in COMMIT_BATCHES]
    return single + concurrent


def report(run: Measured) -> None:
    retries = ""
    if run.backend == "dynamodb":
        retries = (
            f"  {run.transactions} tx, {run.counter_moved} counter moved, {run.conflicts} "
            f"conflicts, {run.resends} resends"
        )
    print(
        f"{run.backend:<9} {run.writers:>2} writers x {run.batch:>3} events/append: "
        f"{run.commits_per_s:8,.0f} appends/s {run.events_per_s:9,.0f} events/s  p50 "
        f"{run.p50_ms:6.2f} ms p95 {run.p95_ms:7.2f} ms{retries}"
    )


def median_run(runs: list[Measured]) -> Measured:
    """The run of median commits/s (with 1 or 2 runs, the first/lower one)."""
    return sorted(runs, key=lambda run: run.commits_per_s)[(len(runs) - 1) // 2]


def memory_floor(templates: list[ReceiptEvent], seconds: float) -> float:
    """Events/s appending batches of 100 to ``memory://`` in this process: the store's own
    CPU (encoding, hashing, dedup) with no database at all."""
    command = Command("memory://", f"memory-{uuid.uuid4().hex}", 100, seconds)
    result = WriterResult()
    with open_store(f"memory://bench-floor-{uuid.uuid4().hex}") as store:
        result.started = time.time()
        write_for(store, templates, command, result.started + seconds, result)
    return result.events / (result.ended - result.started)


def profile_backend(
    stores: Stores, backend: str, templates: list[ReceiptEvent], seconds: float
) -> list[tuple[str, float, float, int]]:
    profile = cProfile.Profile()
    with stores.fresh(backend) as url:
        result = WriterResult()
        with open_counted(url, result) as store:
            command = Command(url, f"{stores.token}-profile-{stores.made}", 10, seconds)
            profile.enable()
            try:
                write_for(store, templates, command, time.time() + seconds, result)
            finally:
                profile.disable()
    return top_functions(profile, 12)


@contextlib.contextmanager
def dynamodb_local(log_dir: Path) -> Iterator[ServerProcess]:
    server = start_dynamodb_local(log_dir)
    try:
        with aws_environment(NO_SERVICE, server.url):
            yield server
    finally:
        server.stop()


# -- the run -----------------------------------------------------------------------------------


def summarise(
    best: dict[tuple[str, int, int], Measured], backends: list[str], ratio: float
) -> dict[str, Any]:
    by_backend: dict[str, Any] = {}
    for backend in backends:
        runs = {(w, b): run for (name, w, b), run in best.items() if name == backend}
        entry: dict[str, Any] = {
            "append_events_per_s": round(runs[(1, 100)].events_per_s),
            "append_events_per_s_by_batch": {
                str(b): round(runs[(1, b)].events_per_s) for b in APPEND_BATCHES
            },
            "records_per_s_at_batch_100": round(runs[(1, 100)].events_per_s / ratio),
            "commits_per_s": {str(w): round(runs[(w, 1)].commits_per_s) for w in WRITERS},
            "commits_per_s_batch_10": {str(w): round(runs[(w, 10)].commits_per_s) for w in WRITERS},
            "events_per_s_batch_10": {str(w): round(runs[(w, 10)].events_per_s) for w in WRITERS},
            "p50_ms": {f"{w}x{b}": round(run.p50_ms, 2) for (w, b), run in runs.items()},
        }
        if backend == "dynamodb":
            entry["transactions_per_append_of_100"] = round(
                runs[(1, 100)].transactions / runs[(1, 100)].commits, 2
            )
            entry["retries_per_commit"] = {
                f"{w}x{b}": round(
                    (run.counter_moved + run.conflicts + run.other_cancels) / run.transactions, 3
                )
                for (w, b), run in runs.items()
            }
            entry["retries"] = {
                f"{w}x{b}": {
                    "counter_moved": run.counter_moved,
                    "conflicts": run.conflicts,
                    "other": run.other_cancels,
                    "resends": run.resends,
                }
                for (w, b), run in runs.items()
                if w > 1
            }
        by_backend[backend] = entry
    return by_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1.5 s per measurement, 1 round")
    parser.add_argument("--seconds", type=float, default=None, help="per measurement (5; 1.5)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds of the grid (3; 1)")
    parser.add_argument(
        "--receipts", type=int, default=None, help="synthetic history size (200; 40)"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated (default: all three)"
    )
    parser.add_argument("--profile", action="store_true", help="profile one writer per backend")
    args = parser.parse_args()
    seconds = args.seconds or (1.5 if args.quick else 5.0)
    repeats = args.repeats or (1 if args.quick else 3)
    receipts = args.receipts or (40 if args.quick else 200)
    backends = [name for name in args.backends.split(",") if name]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(sorted(unknown))}; known: {BACKENDS}")

    started = time.perf_counter()
    templates, history = realistic_events(receipts, args.seed)
    sizes = dynamodb_item_sizes(templates)
    print(
        f"as DynamoDB items: event item {sizes['event_item_mean']} B mean, p95 "
        f"{sizes['event_item_p95']} B ({sizes['event_items_over_1kb']:.1%} over 1 KB), dedup "
        f"item {sizes['dedup_item_mean']} B: {sizes['tx_wcu_per_event_mean']} WCU per event "
        f"in a transaction, plus {sizes['tx_wcu_per_commit']} per commit (the counter)"
    )
    floor = memory_floor(templates, min(seconds, 2.0))
    print(f"memory://, one writer, batches of 100 (the store's own CPU): {floor:,.0f} events/s")

    token = uuid.uuid4().hex[:8]
    runs: dict[tuple[str, int, int], list[Measured]] = {}
    profiles: dict[str, list[tuple[str, float, float, int]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-store-") as scratch,
        contextlib.ExitStack() as stack,
    ):
        if "dynamodb" in backends:
            stack.enter_context(dynamodb_local(Path(scratch) / "logs"))
        writers = Writers(max(WRITERS), templates)  # after the AWS environment is set: inherited
        stack.callback(writers.close)
        stores = Stores(Path(scratch), args.postgres, token)
        for backend in backends:  # warm-up: connections, DynamoDB Local's JIT
            measure(writers, stores, backend, 2, 10, min(seconds, 1.0))
        print(f"set up and warmed up in {time.perf_counter() - started:.1f} s")
        for round_number in range(1, repeats + 1):
            if repeats > 1:
                print(f"round {round_number} of {repeats}")
            for backend in backends:
                for count, batch in grid():
                    run = measure(writers, stores, backend, count, batch, seconds)
                    runs.setdefault((backend, count, batch), []).append(run)
                    report(run)
        if args.profile:
            for backend in backends:
                profiles[backend] = profile_backend(stores, backend, templates, seconds)

    best = {key: median_run(measured) for key, measured in runs.items()}
    ratio = history["ratio"]
    print_table(best, backends, repeats)
    for backend, rows in profiles.items():
        print(f"profile, {backend}, one writer, batches of 10, top functions by own time:")
        print(f"{'tottime':>8} {'cumtime':>8} {'calls':>8}  function")
        for name, own, cumulative, calls in rows:
            print(f"{own:8.3f} {cumulative:8.3f} {calls:8d}  {name}")
    result: dict[str, Any] = {
        "by_backend": summarise(best, backends, ratio),
        "events_per_record": ratio,
        "history": history,
        "dynamodb_items": sizes,
        "memory_append_events_per_s": round(floor),
        "quick": args.quick,
        "seconds": seconds,
        "repeats": repeats,
        "writers": list(WRITERS),
        "commit_batches": list(COMMIT_BATCHES),
        "append_batches": list(APPEND_BATCHES),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    if profiles:
        result["profile_top"] = {
            backend: [[name, round(own, 3)] for name, own, _, _ in rows[:6]]
            for backend, rows in profiles.items()
        }
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


def print_table(
    best: dict[tuple[str, int, int], Measured], backends: list[str], repeats: int
) -> None:
    label = "median of " + str(repeats) if repeats > 1 else "one run each"
    print(f"\nsummary ({label}):")
    print(
        f"{'backend':<9} {'writers':>7} {'ev/append':>9} {'appends/s':>10} {'events/s':>10} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'retries/tx':>10}"
    )
    for backend in backends:
        for count, batch in grid():
            run = best[(backend, count, batch)]
            retries = "-"
            if backend == "dynamodb" and run.transactions:
                cancelled = run.counter_moved + run.conflicts + run.other_cancels
                retries = f"{cancelled / run.transactions:.3f}"
            print(
                f"{backend:<9} {count:>7} {batch:>9} {run.commits_per_s:>10,.0f} "
                f"{run.events_per_s:>10,.0f} {run.p50_ms:>8.2f} {run.p95_ms:>8.2f} {retries:>10}"
            )


if __name__ == "__main__":
    main()
