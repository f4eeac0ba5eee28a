"""The processes of the concurrency scenario: stream ingesters and projectors, as real Lambdas.

Each runs in its own OS process (multiprocessing "spawn") and drives the real handlers:

* :func:`ingester` plays one stream shard's event source mapping: it hands its shard's records
  to ``lambdas.stream_processor.handler`` in batches of 10-100, as the ESM would, in bursts
  with quiet spells between them, retrying from a reported batch item failure, sometimes
  redelivering a whole batch (a retried invocation), and sometimes also delivering a window
  of the *other* shard's records (a replayed stream file, a second consumer), which may run
  ahead of that shard's own ingester.
* :func:`projector` invokes ``lambdas.projector.handler`` again and again, with direct, SQS,
  scheduled and ``{"to": P}`` wake-ups, each process with its own cache directory (its own
  warm container), until ingestion is over; then once more.

Records are sharded by partition key, as DynamoDB Streams does, and a window of the other
shard always starts at or below what that shard's ingester has durably stored, so each
shard's records reach the log in stream order whoever appends them (each item's changes
must reach the log in the order of its stream: docs/event-store.md). Each process writes what
it saw to a JSON file: counts from the handlers' own log lines, and, for projectors, every
publish attempt and how it ended (counted by wrapping ``SnapshotStore.publish`` in that
process).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHARDS = 2
BUDGET = (3.0, 10.0)  # seconds a projector invocation may run (the Lambda timeout, scaled down)
STOP_MARGIN = "1"  # RECEIPT_EVENTS_STOP_MARGIN_SECONDS: stop following 1 s before the budget ends


def shard_of(record: dict[str, Any]) -> int:
    """The stream shard of a record: by its partition key, as DynamoDB Streams assigns them."""
    pk = str(record["dynamodb"]["Keys"]["PK"]["S"])
    return int(hashlib.sha256(pk.encode()).hexdigest(), 16) % SHARDS


def load_records(path: str) -> list[dict[str, Any]]:
    import msgspec

    return [msgspec.json.decode(line) for line in Path(path).read_bytes().splitlines() if line]


class _Context:
    """A Lambda context: names, and (for the projector) the invocation's time budget, so a run
    that follows a busy head stops in time and lets the others have the lock, as in AWS."""

    def __init__(self, name: str, number: int, budget: float = 900.0) -> None:
        self.function_name = name
        self.aws_request_id = f"{name}-{number}"
        self._deadline = time.monotonic() + budget

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _log_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict):
            lines.append(document)
    return lines


def _run(result_path: str, body: Callable[[dict[str, Any]], None]) -> None:
    """Run a worker body; write what it counted (and any crash) to ``result_path``."""
    result: dict[str, Any] = {"pid": os.getpid()}
    try:
        body(result)
    except BaseException:
        result["crash"] = traceback.format_exc()
        raise
    finally:
        Path(result_path).write_text(json.dumps(result, default=str))


# --------------------------------------------------------------------------- ingester


def ingester(
    shard: int,
    records_path: str,
    env: dict[str, str],
    progress: Any,  # multiprocessing Array('q', SHARDS): records of each shard durably handled
    start: Any,  # multiprocessing Barrier
    seed: int,
    pause: float,  # mean seconds between bursts of batches
    result_path: str,
) -> None:
    os.environ.update(env)

    def body(result: dict[str, Any]) -> None:
        import lambdas.stream_processor

        records = load_records(records_path)
        shards = [[r for r in records if shard_of(r) == s] for s in range(SHARDS)]
        own, other = shards[shard], shards[1 - shard]
        rng = random.Random(seed * 1000 + shard)
        counts: Counter[str] = Counter()
        invocation = 0

        def deliver(batch: list[dict[str, Any]]) -> None:
            """One ESM delivery: retry from a reported failure until the batch is stored."""
            nonlocal invocation
            for attempt in range(30):
                invocation += 1
                buffer = io.StringIO()
                with contextlib.redirect_stdout(buffer):
                    response = lambdas.stream_processor.handler(
                        {"Records": batch}, _Context(f"ingester-{shard}", invocation)
                    )
                for line in _log_lines(buffer.getvalue()):
                    if line.get("message") == "batch ingested":
                        for key in ("records", "appended", "duplicates", "parked", "skipped"):
                            counts[key] += int(line.get(key, 0))
                failed = response.get("batchItemFailures") or []
                if not failed:
                    counts["deliveries"] += 1
                    return
                counts["store_failures"] += 1
                sequence = failed[0]["itemIdentifier"]
                at = next(
                    i
                    for i, record in enumerate(batch)
                    if record["dynamodb"]["SequenceNumber"] == sequence
                )
                batch = batch[at:]
                time.sleep(min(2.0, 0.1 * (attempt + 1)))
            raise RuntimeError(f"ingester {shard}: a batch kept failing")

        start.wait(timeout=300)
        started = time.monotonic()
        position = 0
        burst = 0
        while position < len(own):
            batch = own[position : position + rng.randint(10, 100)]
            deliver(batch)
            position += len(batch)
            progress[shard] = position
            if rng.random() < 0.1:  # the invocation timed out after storing: ESM retries it
                deliver(batch)
                counts["retried_batches"] += 1
            if rng.random() < 0.3:  # a window of the other shard, at or below its stored prefix
                acked = int(progress[1 - shard])
                low = rng.randint(max(0, acked - 150), acked)
                window = other[low : low + rng.randint(5, 80)]
                if window:
                    deliver(window)
                    counts["overlap_windows"] += 1
                    counts["overlap_records"] += len(window)
                    counts["overlap_ahead"] += max(0, low + len(window) - acked)
            burst -= 1
            if burst <= 0:  # a quiet spell: a following projector catches up and finishes
                time.sleep(rng.uniform(0, 2 * pause))
                burst = rng.randint(2, 8)
                counts["bursts"] += 1
        result.update(
            shard=shard,
            own_records=len(own),
            invocations=invocation,
            seconds=round(time.monotonic() - started, 1),
            **counts,
        )

    _run(result_path, body)


# --------------------------------------------------------------------------- projector


def projector(
    number: int,
    env: dict[str, str],
    store_url: str,
    done: Any,  # multiprocessing Event: ingestion is over
    start: Any,  # multiprocessing Barrier
    seed: int,
    result_path: str,
) -> None:
    os.environ.update(env)

    def body(result: dict[str, Any]) -> None:
        import lambdas.projector
        from receipt_chroma.lease import LeaseLost
        from receipt_chroma.snapshots import FencedOut, PointerConflict, SnapshotStore
        from receipt_events.store import open_store

        publishes: Counter[str] = Counter()
        original_publish = SnapshotStore.publish

        def counted_publish(self: SnapshotStore, *args: Any, **kwargs: Any) -> Any:
            publishes["attempts"] += 1
            try:
                pointer = original_publish(self, *args, **kwargs)
            except PointerConflict:
                publishes["lost_swaps"] += 1
                raise
            except FencedOut:
                publishes["fenced_out"] += 1
                raise
            except LeaseLost:
                publishes["refused_lock_lost"] += 1
                raise
            except BaseException:
                publishes["other_errors"] += 1
                raise
            publishes["published"] += 1
            if not done.is_set():
                publishes["published_while_ingesting"] += 1
            return pointer

        SnapshotStore.publish = counted_publish  # type: ignore[method-assign]
        rng = random.Random(seed * 1000 + 100 + number)
        counts: Counter[str] = Counter()
        failures: Counter[str] = Counter()  # failed runs by error type (from the handler's log)
        samples: list[str] = []
        with open_store(store_url) as store:
            start.wait(timeout=300)
            invocation = 0
            while True:
                last = done.is_set()  # ingestion was over before this run started
                invocation += 1
                event = _wakeup(rng, invocation, store.head())
                counts[f"trigger_{event[0]}"] += 1
                buffer = io.StringIO()
                try:
                    with contextlib.redirect_stdout(buffer):
                        lambdas.projector.handler(
                            event[1],
                            _Context(f"projector-{number}", invocation, rng.uniform(*BUDGET)),
                        )
                except Exception:  # a direct invoke re-raises (also logged, counted below)
                    counts["raised"] += 1
                for line in _log_lines(buffer.getvalue()):
                    message = line.get("message")
                    if message == "projector run done":
                        counts["runs"] += 1
                        counts["applied"] += int(line.get("applied", 0))
                        if not last and int(line.get("applied", 0)) > 0:
                            counts["runs_applying_while_ingesting"] += 1
                    elif message == "another projector is running: standing down":
                        counts["stand_downs"] += 1
                    elif message == "projector run failed":
                        error = str(line.get("error", "?"))
                        failures[error.split(":", 1)[0]] += 1
                        if len(samples) < 5:
                            samples.append(error[:1000])
                if last:
                    break
                time.sleep(rng.uniform(0, 0.4))
        result.update(
            number=number,
            invocations=invocation,
            failures=dict(failures),
            failure_samples=samples,
            **counts,
            **{f"publish_{key}": value for key, value in publishes.items()},
        )

    _run(result_path, body)


def _wakeup(rng: random.Random, number: int, head: int) -> tuple[str, dict[str, Any]]:
    """A projector wake-up: direct (follow the head), SQS, schedule, or direct to a position."""
    kind = rng.choice(["direct", "sqs", "schedule", "to", "to"])
    if kind == "sqs":
        messages = [
            {"eventSource": "aws:sqs", "messageId": f"m-{number}-{i}", "body": "{}"}
            for i in range(rng.randint(1, 3))
        ]
        return kind, {"Records": messages}
    if kind == "schedule":
        return kind, {"source": "aws.events", "detail-type": "Scheduled Event"}
    if kind == "to" and head > 0:  # a bounded run: up to the head as it is now, or behind it
        return kind, {"to": head if rng.random() < 0.7 else rng.randint(max(1, head // 2), head)}
    return "direct", {}
