"""The Chroma projection against raw Chroma, and batch coalescing against one-by-one, in one run.

    .venv/bin/python bench/projection.py            # >= 20,000 words and 4,000 lines
    .venv/bin/python bench/projection.py --quick    # a smaller history, under two minutes

(a) *rebuild*: a synthetic history (generator, real delta directories on disk, 384-d) is
ingested into a SQLite store, then ``rebuild`` projects it from zero into a fresh snapshot
directory: reading every delta, folding every event, writing Chroma, committing state. The
first rebuild reads deltas through an empty delta cache (cold: each delta opened with Chroma
once, and cached); a second one reads them from the full cache (warm: what every later
rebuild and `verify` pays). *raw*: plain Chroma writing the rebuild's final records (the same
ids, documents, metadata and vectors, taken from the rebuilt snapshot) into a fresh directory
with ``upsert`` in max-size batches. ``rebuild_ratio`` = cold rebuild time / raw time (goal
<= 1.4); ``rebuild_warm_ratio`` = warm rebuild time / raw time (goal <= 1.15).

(b) *coalescing*: a snapshot holding N embedded words receives ~5 label/place changes per
word. The projection applies them in batches of 1,000 events (one metadata write per touched
record per batch); the baseline applies the same events one at a time (batch size 1).
``coalesce_speedup`` = one-by-one time / batched time (goal >= 3).

Runs alternate and medians are reported. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np

from projections.runner import catch_up, rebuild
from projections.snapshot_dir import open_snapshot
from receipt_chroma.client import COLLECTIONS, open_chroma
from receipt_chroma.delta_cache import with_delta_cache
from receipt_chroma.deltas import DeltaSource, LocalDeltaSource, MemoryDeltaSource
from receipt_chroma.digest import dump
from receipt_chroma.records import ChromaRecord, embedding_bytes
from receipt_events.events import (
    EmbeddingsPublished,
    EventSource,
    PlaceChanged,
    WordLabelSet,
)
from receipt_events.ingest import ingest
from receipt_events.keys import WordKey
from receipt_events.records import read_input
from receipt_events.store import EventStore, open_store
from synthetic.deltas import deterministic_vector, write_run_deltas
from synthetic.history import HistoryConfig, generate_history, to_jsonl

DIMENSION = 384


def build_history(workdir: Path, receipts: int, seed: int) -> tuple[EventStore, LocalDeltaSource]:
    config = HistoryConfig(
        seed=seed, receipts=receipts, lines_per_receipt=(30, 50), words_per_line=(3, 6)
    )
    history = generate_history(config)
    started = time.perf_counter()
    for run in history.runs:
        write_run_deltas(run, workdir, dimension=DIMENSION)
    lines = sum(len(run.lines) for run in history.runs)
    words = sum(len(run.words) for run in history.runs)
    print(
        f"history: {len(history.records)} stream records, {len(history.runs)} runs holding "
        f"{lines} lines and {words} words ({time.perf_counter() - started:.1f} s to write deltas)"
    )
    store = open_store(f"sqlite:///{workdir / 'events.db'}")
    summary = ingest(store, read_input(to_jsonl(history.records), "bench"))
    print(f"log: {summary.head} events")
    return store, LocalDeltaSource(workdir)


def time_rebuild(store: EventStore, deltas: DeltaSource, out: Path) -> float:
    started = time.perf_counter()
    rebuild(store, out, deltas, with_digest=False)  # the raw baseline computes no digest either
    return time.perf_counter() - started


def time_raw(records: dict[str, list[ChromaRecord]], out: Path) -> float:
    started = time.perf_counter()
    with open_chroma(out, create=True) as chroma:
        batch = chroma.max_batch_size()
        for name in COLLECTIONS:
            collection = chroma.collection(name)
            items = records[name]
            for offset in range(0, len(items), batch):
                chunk = items[offset : offset + batch]
                collection.upsert(
                    ids=[r.id for r in chunk],
                    embeddings=np.stack([r.vector() for r in chunk]),
                    documents=[r.document or "" for r in chunk],
                    metadatas=[cast(Any, r.metadata) or None for r in chunk],
                )
    return time.perf_counter() - started


def rebuild_benchmark(workdir: Path, receipts: int, repeats: int, seed: int) -> dict[str, Any]:
    store, deltas = build_history(workdir, receipts, seed)
    rebuild_times, warm_times, raw_times = [], [], []
    counts: dict[str, int] = {}
    for run in range(repeats):
        out = workdir / f"rebuilt-{run}"
        cached = with_delta_cache(deltas, workdir / f"delta-cache-{run}")
        rebuild_times.append(time_rebuild(store, cached, out))
        warm_times.append(time_rebuild(store, cached, workdir / f"warm-{run}"))
        shutil.rmtree(workdir / f"warm-{run}")
        with open_snapshot(out, create=False) as snapshot:
            final = dump(snapshot.chroma)
        counts = {name: len(final[name]) for name in COLLECTIONS}
        raw_times.append(time_raw(final, workdir / f"raw-{run}"))
        print(
            f"run {run + 1}: rebuild cold {rebuild_times[-1]:.2f} s, warm {warm_times[-1]:.2f} s, "
            f"raw Chroma {raw_times[-1]:.2f} s "
            f"({counts['lines']} lines, {counts['words']} words)"
        )
        shutil.rmtree(out)
        shutil.rmtree(workdir / f"raw-{run}")
    store.close()
    rebuild_time, raw_time = statistics.median(rebuild_times), statistics.median(raw_times)
    warm_time = statistics.median(warm_times)
    return {
        "rebuild_s": round(rebuild_time, 3),
        "rebuild_warm_s": round(warm_time, 3),
        "raw_s": round(raw_time, 3),
        "rebuild_ratio": round(rebuild_time / raw_time, 3),
        "rebuild_warm_ratio": round(warm_time / raw_time, 3),
        "lines": counts.get("lines", 0),
        "words": counts.get("words", 0),
    }


def _source(number: int) -> EventSource:
    return EventSource(
        event_id=f"bench-{number}",
        event_name="MODIFY",
        sequence_number=f"{number:021d}",
        region="eu-west-1",
    )


def coalescing_history(
    words: int, changes_per_word: int
) -> tuple[EventStore, MemoryDeltaSource, int]:
    """One receipt per 100 words, embedded; then label and place changes in random order."""
    store = open_store("memory://")
    deltas = MemoryDeltaSource()
    rng = np.random.default_rng(7)
    events: list[Any] = []
    receipts = max(1, words // 100)
    keys = [
        WordKey(f"img-{r:04d}", 1, 1 + w // 10, 1 + w % 10)
        for r in range(receipts)
        for w in range(100)
    ][:words]
    for receipt in range(receipts):
        image_id = f"img-{receipt:04d}"
        run_id = f"run-{receipt}"
        records = [
            ChromaRecord(
                key.chroma_id,
                f"w{index}",
                {"text": f"w{index}", "line_id": key.line_id, "word_id": key.word_id},
                embedding_bytes(deterministic_vector(run_id, key.chroma_id, DIMENSION)),
            )
            for index, key in enumerate(keys)
            if key.image_id == image_id
        ]
        deltas.put(f"{run_id}/lines", "lines", [])
        deltas.put(f"{run_id}/words", "words", records)
        events.append(
            EmbeddingsPublished(
                source=_source(len(events)),
                image_id=image_id,
                receipt_id=1,
                run_id=run_id,
                lines_delta=f"{run_id}/lines",
                words_delta=f"{run_id}/words",
            )
        )
    base = len(events)
    statuses = ("PENDING", "VALID", "INVALID", "NEEDS_REVIEW")
    labels = ("TOTAL", "DATE", "MERCHANT_NAME")
    changes: list[Any] = []
    for key in keys:
        for change in range(changes_per_word):
            changes.append(
                WordLabelSet(
                    source=_source(0),
                    image_id=key.image_id,
                    receipt_id=1,
                    line_id=key.line_id,
                    word_id=key.word_id,
                    label=labels[change % len(labels)],
                    validation_status=statuses[int(rng.integers(len(statuses)))],
                    label_proposed_by="bench",
                    timestamp_added=f"2026-01-01T00:{change:02d}:00+00:00",
                )
            )
    for receipt in range(receipts):  # a place change per receipt touches all its words too
        changes.append(
            PlaceChanged(
                source=_source(0),
                image_id=f"img-{receipt:04d}",
                receipt_id=1,
                entity="RECEIPT_PLACE",
                merchant_name=f"Merchant {receipt}",
            )
        )
    order = rng.permutation(len(changes))
    for index in order:
        event = changes[index]
        events.append(msgspec.structs.replace(event, source=_source(len(events))))
    store.append(events)
    return store, deltas, base


def coalescing_benchmark(workdir: Path, words: int, repeats: int) -> dict[str, Any]:
    store, deltas, base = coalescing_history(words, changes_per_word=5)
    seeded = workdir / "coalesce-base"
    with open_snapshot(seeded) as snapshot:
        catch_up(store, snapshot, deltas, to=base)
    changes = store.head() - base
    print(f"coalescing: {words} embedded words, then {changes} label/place changes")
    batched_times, single_times = [], []
    for run in range(repeats):
        for batch_size, times in ((1000, batched_times), (1, single_times)):
            target = workdir / f"coalesce-{run}-{batch_size}"
            shutil.copytree(seeded, target)
            with open_snapshot(target) as snapshot:
                started = time.perf_counter()
                catch_up(store, snapshot, deltas, batch_size=batch_size)
                times.append(time.perf_counter() - started)
            shutil.rmtree(target)
        print(
            f"run {run + 1}: batches of 1000 {batched_times[-1]:.2f} s, "
            f"one by one {single_times[-1]:.2f} s"
        )
    batched, single = statistics.median(batched_times), statistics.median(single_times)
    return {
        "coalesce_events": changes,
        "batched_s": round(batched, 3),
        "one_by_one_s": round(single, 3),
        "coalesce_speedup": round(single / batched, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller history")
    parser.add_argument("--receipts", type=int, default=None)
    parser.add_argument("--coalesce-words", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    receipts = args.receipts or (24 if args.quick else 125)
    coalesce_words = args.coalesce_words or (400 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-projection-") as scratch:
        workdir = Path(scratch)
        result = rebuild_benchmark(workdir, receipts, repeats, args.seed)
        result.update(coalescing_benchmark(workdir, coalesce_words, repeats))
    result["goals"] = {
        "rebuild_ratio": "<= 1.4",
        "rebuild_warm_ratio": "<= 1.15",
        "coalesce_speedup": ">= 3",
    }
    print(
        f"rebuild {result['rebuild_s']} s cold, {result['rebuild_warm_s']} s warm, vs raw Chroma "
        f"{result['raw_s']} s: ratio {result['rebuild_ratio']} (goal <= 1.4), warm "
        f"{result['rebuild_warm_ratio']} (goal <= 1.15); coalescing speedup "
        f"{result['coalesce_speedup']}x (goal >= 3)"
    )
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
