"""What one publish costs, step by step, on a large snapshot directory.

    .venv/bin/python bench/publish_profile.py --records 200000          # local store
    .venv/bin/python bench/publish_profile.py --records 20000 --s3      # S3 on a moto server

The base snapshot directory (``--records`` records, 200 per receipt, ``--dimension``-d) and
its event log are built once under ``--workdir`` (default ``/tmp/publish-profile``) and reused
by later runs: building 200,000 records takes minutes. Each run then copies them, publishes the
copy (the first publish: every file sent), and ``--rounds`` times applies ``--changes`` label
and place changes (metadata only, as ``bench/compaction.py``) and publishes again, as a warm
compactor does: the profiled publishes.

For each publish it prints the snapshot directory's files and sizes, and the seconds of each
step: the canonical digest (a full dump today, made incremental by another change), ``seal``
(closing Chroma and the state), the file hashes of the manifest, the upload (the backend's
``put_file`` / ``copy`` / ``put_bytes`` calls, summed over the transfer threads, with the bytes
sent), and the pointer swap; then the functions with the most own time (cProfile, main
thread). The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from bench.profiling import top_functions
from projections.compaction import CompactOptions, compact
from projections.publish import publish_directory
from projections.runner import catch_up, rebuild
from projections.snapshot_dir import SnapshotDirectory, open_snapshot
from receipt_chroma.deltas import MemoryDeltaSource
from receipt_chroma.directory_lock import LOCK_FILE
from receipt_chroma.lease import FileLeases
from receipt_chroma.records import ChromaRecord, embedding_bytes
from receipt_chroma.snapshots import SnapshotStore, open_snapshot_store
from receipt_chroma.snapshots.backend import SnapshotBackend
from receipt_chroma.snapshots.manifest import HASH_CACHE
from receipt_events.events import (
    EmbeddingsPublished,
    EventSource,
    PlaceChanged,
    ValidationStatus,
    WordLabelSet,
)
from receipt_events.keys import LineKey, WordKey
from receipt_events.store import EventStore, open_store
from synthetic.deltas import deterministic_vector

LINES, WORDS_PER_LINE = 40, 4  # 200 records per receipt, as bench/compaction.py
RECEIPTS_PER_APPEND = 50


def image_id(receipt: int) -> str:
    return f"{receipt:08d}-0000-4000-8000-000000000000"


def source(number: int) -> EventSource:
    return EventSource(
        event_id=f"profile-{number}",
        event_name="INSERT",
        sequence_number=f"{10**25 + number}",
        region="eu-west-1",
    )


def build_base(workdir: Path, receipts: int, dimension: int) -> tuple[Path, Path]:
    """The base snapshot directory and its event log (SQLite), built once and reused."""
    base, log = workdir / "base", workdir / "events.db"
    if (base / "state.sqlite3").is_file() and (workdir / "built").is_file():
        return base, log
    shutil.rmtree(base, ignore_errors=True)
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    store = open_store(f"sqlite:///{log}")
    deltas = MemoryDeltaSource()
    number = 0
    try:
        for first in range(0, receipts, RECEIPTS_PER_APPEND):
            events = []
            for receipt in range(first, min(receipts, first + RECEIPTS_PER_APPEND)):
                run_id = f"run-{receipt}"
                lines, words = [], []
                for line in range(1, LINES + 1):
                    key = LineKey(image_id(receipt), 1, line)
                    vector = deterministic_vector(run_id, key.chroma_id, dimension)
                    lines.append(
                        ChromaRecord(
                            key.chroma_id,
                            f"line {line}",
                            {"line_id": line},
                            embedding_bytes(vector),
                        )
                    )
                    for word in range(1, WORDS_PER_LINE + 1):
                        wkey = WordKey(image_id(receipt), 1, line, word)
                        vector = deterministic_vector(run_id, wkey.chroma_id, dimension)
                        words.append(
                            ChromaRecord(
                                wkey.chroma_id,
                                f"w{word}",
                                {"word_id": word},
                                embedding_bytes(vector),
                            )
                        )
                deltas.put(f"{run_id}/lines", "lines", lines)
                deltas.put(f"{run_id}/words", "words", words)
                number += 1
                events.append(
                    EmbeddingsPublished(
                        source=source(number),
                        image_id=image_id(receipt),
                        receipt_id=1,
                        run_id=run_id,
                        lines_delta=f"{run_id}/lines",
                        words_delta=f"{run_id}/words",
                    )
                )
            store.append(events)
        print(f"log: {store.head()} events ({time.perf_counter() - started:.1f} s)", flush=True)
        rebuild(store, base, deltas, with_digest=False)
    finally:
        store.close()
    (workdir / "built").write_text(f"{receipts} receipts, {dimension}-d\n")
    print(f"built {base} in {time.perf_counter() - started:.1f} s", flush=True)
    return base, log


def append_changes(store: EventStore, receipts: int, count: int, seed: int) -> None:
    """Label changes on random words, a place change every 50: metadata only."""
    rng = np.random.default_rng(seed)
    statuses: tuple[ValidationStatus, ...] = ("PENDING", "VALID", "INVALID", "NEEDS_REVIEW")
    number = 10**9 + seed * count
    events: list[Any] = []
    for index in range(count):
        number += 1
        receipt = int(rng.integers(receipts))
        line = int(rng.integers(1, LINES + 1))
        word = int(rng.integers(1, WORDS_PER_LINE + 1))
        if index % 50 == 49:
            events.append(
                PlaceChanged(
                    source=source(number),
                    image_id=image_id(receipt),
                    receipt_id=1,
                    entity="RECEIPT_PLACE",
                    merchant_name=f"Merchant {seed}-{index}",
                )
            )
            continue
        events.append(
            WordLabelSet(
                source=source(number),
                image_id=image_id(receipt),
                receipt_id=1,
                line_id=line,
                word_id=word,
                label=("TOTAL", "DATE", "TAX")[index % 3],
                validation_status=statuses[int(rng.integers(4))],
                label_proposed_by="bench",
                timestamp_added=f"2026-01-01T00:00:{index % 60:02d}+00:00",
            )
        )
    store.append(events)


# -- timing -------------------------------------------------------------------------------------


class Steps:
    """Seconds (and calls, bytes) per named step of one publish."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)

    @contextmanager
    def step(self, name: str, size: int = 0) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1
            self.bytes[name] += size

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.step(name):
                return function(*args, **kwargs)

        return timed

    def row(self) -> dict[str, Any]:
        return {
            name: {
                "s": round(self.seconds[name], 3),
                "calls": self.calls[name],
                **({"bytes": self.bytes[name]} if self.bytes[name] else {}),
            }
            for name in sorted(self.seconds, key=lambda n: -self.seconds[n])
        }


class TimedBackend:
    """A backend whose calls are timed into :class:`Steps` (summed over the transfer threads)."""

    def __init__(self, inner: SnapshotBackend, steps: Callable[[], Steps]) -> None:
        self.inner = inner
        self.url = inner.url
        self.steps = steps

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            size = 0
            if name == "put_file":
                size = Path(args[1]).stat().st_size
            elif name == "put_bytes":
                size = len(args[1])
            with self.steps().step(f"backend.{name}", size):
                return attribute(*args, **kwargs)

        return timed


@contextmanager
def instrumented(steps: Callable[[], Steps], hash_cache: bool) -> Iterator[None]:
    """Time the steps of a publish (and of a compaction) from outside: the code measured is
    not changed for it. Without ``hash_cache``, the hash cache is removed before each
    ``file_entries``, which then hashes every file, as before it existed."""
    import projections.compaction

    compaction_module: Any = projections.compaction
    publish_module: Any = projections.publish
    saved_entries = publish_module.file_entries
    saved_catch_up = compaction_module.catch_up
    saved_local = compaction_module.ensure_local_copy
    original_seal = SnapshotDirectory.seal

    def seal(self: SnapshotDirectory) -> None:
        with steps().step("seal (close Chroma and state)"):
            original_seal(self)

    def entries(directory: Path, **kwargs: Any) -> Any:
        if not hash_cache:
            (directory / HASH_CACHE).unlink(missing_ok=True)
        with steps().step("file_entries (hash files)"):
            return saved_entries(directory, **kwargs)

    def timed_catch_up(*args: Any, **kwargs: Any) -> Any:
        with steps().step("catch_up (apply the changes)"):
            return saved_catch_up(*args, **kwargs)

    def timed_local(*args: Any, **kwargs: Any) -> Any:
        with steps().step("ensure_local_copy"):
            return saved_local(*args, **kwargs)

    publish_module.file_entries = entries
    compaction_module.catch_up = timed_catch_up
    compaction_module.ensure_local_copy = timed_local
    SnapshotDirectory.seal = seal  # type: ignore[method-assign]
    try:
        yield
    finally:
        publish_module.file_entries = saved_entries
        compaction_module.catch_up = saved_catch_up
        compaction_module.ensure_local_copy = saved_local
        SnapshotDirectory.seal = original_seal  # type: ignore[method-assign]


def files_of(directory: Path) -> dict[str, int]:
    return {
        path.relative_to(directory).as_posix(): path.stat().st_size
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in (LOCK_FILE, HASH_CACHE)
    }


def run(args: argparse.Namespace, url: str, workdir: Path, scratch: Path) -> dict[str, Any]:
    receipts = args.records // (LINES * (1 + WORDS_PER_LINE))
    base, log_file = build_base(workdir, receipts, args.dimension)
    directory, events = scratch / "snapshot", scratch / "events.db"
    started = time.perf_counter()
    shutil.copytree(base, directory, ignore=shutil.ignore_patterns(LOCK_FILE, HASH_CACHE))
    for suffix in ("", "-wal"):  # the log as its last writer left it
        if Path(f"{log_file}{suffix}").is_file():
            shutil.copyfile(f"{log_file}{suffix}", f"{events}{suffix}")
    print(f"copied the base in {time.perf_counter() - started:.1f} s", flush=True)
    store = open_store(f"sqlite:///{events}")
    current = Steps()
    snapshots = SnapshotStore(TimedBackend(open_snapshot_store(url).backend, lambda: current))
    leases = FileLeases(scratch / "leases")
    results: list[dict[str, Any]] = []
    try:
        with instrumented(lambda: current, not args.no_hash_cache):
            for round_ in range(args.rounds + 1):
                current = Steps()
                if round_:
                    append_changes(store, receipts, args.changes, seed=round_)
                profile = cProfile.Profile()
                started = time.perf_counter()
                if round_ and args.compact:  # the whole compaction, as a warm compactor runs it
                    profile.enable()
                    result = compact(
                        store,
                        snapshots,
                        leases,
                        MemoryDeltaSource(),
                        directory,
                        CompactOptions(keep=args.keep),
                    )
                    profile.disable()
                    assert result.published
                    assert result.reused_cache
                    assert result.key is not None
                    applied, key, what = result.applied, result.key, "compact"
                else:
                    applied = 0
                    if round_:
                        with open_snapshot(directory) as snapshot:
                            profile.enable()
                            with current.step("catch_up (apply the changes)"):
                                applied = catch_up(store, snapshot, MemoryDeltaSource()).applied
                            profile.disable()
                    pointer, version = snapshots.pointer()
                    publish_started = time.perf_counter()
                    profile.enable()
                    manifest, _ = publish_directory(
                        directory,
                        snapshots,
                        token=1,
                        parent=pointer.key if pointer else None,
                        expected=version,
                    )
                    profile.disable()
                    current.seconds["publish_directory"] = time.perf_counter() - publish_started
                    current.calls["publish_directory"] = 1
                    key, what = manifest.key, "catch_up + publish"
                elapsed = time.perf_counter() - started
                sizes = files_of(directory)
                row = {
                    "round": round_,
                    "what": what if round_ else "first publish (no parent)",
                    "applied": applied,
                    "seconds": round(elapsed, 3),
                    "steps": current.row(),
                    "files": sizes,
                    "snapshot_bytes": sum(sizes.values()),
                    "sent_bytes": current.bytes.get("backend.put_file", 0),
                }
                results.append(row)
                report(row, profile, key, args.top)
        current = Steps()
        pointer, _ = snapshots.pointer()
        assert pointer is not None
        started = time.perf_counter()
        snapshots.download(pointer.key, scratch / "restored")
        restore_s = time.perf_counter() - started
        print(f"\n== restore: download and check {pointer.key}: {restore_s:.2f} s")
        for name, figures in current.row().items():
            print(f"   {figures['s']:8.3f} s  {name} ({figures['calls']} calls)")
    finally:
        store.close()
    return {
        "records": args.records,
        "dimension": args.dimension,
        "url": url,
        "hash_cache": not args.no_hash_cache,
        "rounds": results,
        "restore_s": round(restore_s, 3),
        "restore_steps": current.row(),
    }


def report(row: dict[str, Any], profile: cProfile.Profile, key: str, top: int) -> None:
    changes = f" ({row['applied']} changes)" if row["round"] else ""
    print(f"\n== round {row['round']}: {row['what']}{changes}: {row['seconds']:.2f} s → {key}")
    print(
        f"   snapshot {row['snapshot_bytes'] / 1e6:.1f} MB, sent {row['sent_bytes'] / 1e6:.1f} MB"
    )
    for name, size in row["files"].items():
        print(f"   {size / 1e6:10.2f} MB  {name}")
    for name, figures in row["steps"].items():
        extra = f", {figures['bytes'] / 1e6:.1f} MB" if "bytes" in figures else ""
        print(f"   {figures['s']:8.3f} s  {name} ({figures['calls']} calls{extra})")
    print("   main thread, most own time:")
    for name, own, cumulative, calls in top_functions(profile, top):
        print(f"   {own:8.3f} s own {cumulative:8.3f} s cum {calls:8d}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--changes", type=int, default=250, help="changes between publishes")
    parser.add_argument("--rounds", type=int, default=3, help="publishes after changes")
    parser.add_argument("--workdir", type=Path, default=None, help="where the base is kept")
    parser.add_argument("--s3", action="store_true", help="publish to S3 on a moto server")
    parser.add_argument("--top", type=int, default=12, help="functions listed per publish")
    parser.add_argument(
        "--compact",
        action="store_true",
        help="run each round as a whole compaction (lease, catch-up, publish, retention)",
    )
    parser.add_argument("--keep", type=int, default=3, help="snapshots kept with --compact")
    parser.add_argument(
        "--no-hash-cache",
        action="store_true",
        help="hash every file on every publish, as before the hash cache (for comparison)",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.gettempdir()) / (
        f"publish-profile-{args.records}-{args.dimension}"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    process = None
    try:
        if args.s3:
            import boto3

            from bench.compaction import start_moto

            process, _ = start_moto()
            boto3.client("s3").create_bucket(
                Bucket="profile", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
            url = "s3://profile/snapshots"
        with tempfile.TemporaryDirectory(prefix="run-", dir=workdir) as scratch:
            if not args.s3:
                url = str(Path(scratch) / "store")
            result = run(args, url, workdir, Path(scratch))
    finally:
        if process is not None:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=10)
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
