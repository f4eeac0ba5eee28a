"""What a publish, a rebuild and a verify cost at two snapshot sizes, ten times apart.

    .venv/bin/python bench/scale.py            # ~20,000 vs ~200,000 records (about 25 minutes)
    .venv/bin/python bench/scale.py --quick    # ~5,000 vs ~50,000 records

For each size: a synthetic history (384-d deltas on disk, SQLite store) is rebuilt from zero
in a child process, cold (an empty delta cache, which it fills) and then warm (the cache
full); the child reports its time and peak RSS. The rebuilt snapshot is published to a local
snapshot store, receives 250 label changes, catches up and is published again: the *manifest
digest* (the digest a publish writes, kept by the projection state) is timed apart from the
whole publish, and so is the digest of a full dump (what `digest` computes, and what every
publish computed before digest v2). Last, `verify` (dump + rebuild through the warm cache).

``digest_growth`` = manifest-digest time at the large size ÷ at the small (goal <= 1.5: it
must not grow with the snapshot); ``publish_growth`` the same for the whole publish (context:
it still hashes and copies the files a change touched). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from bench.projection import DIMENSION, _source, build_history
from projections.publish import publish_directory
from projections.runner import catch_up, rebuild
from projections.snapshot_dir import open_snapshot
from projections.verify import verify
from receipt_chroma.delta_cache import with_delta_cache
from receipt_chroma.deltas import LocalDeltaSource
from receipt_chroma.digest import digest_directory
from receipt_chroma.snapshots import open_snapshot_store
from receipt_events.events import WordLabelSet
from receipt_events.keys import WordKey, parse_chroma_id
from receipt_events.store import EventStore, open_store

CHANGES = 250
RECORDS_PER_RECEIPT = 225  # measured: bench/projection.py's receipts hold ~225 lines and words
DIGEST_REPEATS = 25


def _rebuild_child(store_url: str, root: str, cache: str, out: str, queue: Any) -> None:
    store = open_store(store_url)
    started = time.perf_counter()
    rebuild(store, Path(out), with_delta_cache(LocalDeltaSource(root), cache), with_digest=False)
    seconds = time.perf_counter() - started
    store.close()
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def timed_rebuild(store_url: str, root: Path, cache: Path, out: Path) -> tuple[float, float]:
    """Rebuild in a fresh process: (seconds, its peak RSS in MB)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(
        target=_rebuild_child, args=(store_url, str(root), str(cache), str(out), queue)
    )
    child.start()
    seconds, peak = queue.get()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"the rebuild child failed (exit {child.exitcode})")
    return float(seconds), float(peak)


def label_changes(store: EventStore, snapshot: Path, count: int) -> None:
    """Append ``count`` label changes to words the snapshot holds (metadata-only writes)."""
    with open_snapshot(snapshot, create=False) as opened:
        words = sorted(opened.state.record_hashes("words"))
    ids = words[:: max(1, len(words) // count)]  # spread over the receipts
    events = []
    head = store.head()
    for index, record_id in enumerate(ids[:count]):
        word = parse_chroma_id(record_id)
        assert isinstance(word, WordKey)
        events.append(
            WordLabelSet(
                source=_source(head + index + 1_000_000),
                image_id=word.image_id,
                receipt_id=word.receipt_id,
                line_id=word.line_id,
                word_id=word.word_id,
                label="GRAND_TOTAL",
                validation_status="VALID",
                label_proposed_by="bench",
                timestamp_added="2026-12-05T00:00:00+00:00",
            )
        )
    store.append(events)


def manifest_digest_seconds(snapshot: Path) -> float:
    with open_snapshot(snapshot, create=False) as opened:
        times = []
        for _ in range(DIGEST_REPEATS):
            started = time.perf_counter()
            opened.state.digest()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def dump_digest_seconds(snapshot: Path) -> float:
    with open_snapshot(snapshot, create=False) as opened:
        started = time.perf_counter()
        digest_directory(opened.chroma, opened.state.checkpoint)
        return time.perf_counter() - started


def one_size(workdir: Path, receipts: int, seed: int) -> dict[str, Any]:
    workdir.mkdir(parents=True)
    store, _ = build_history(workdir, receipts, seed)
    store_url = f"sqlite:///{workdir / 'events.db'}"
    cache, snapshot = workdir / "delta-cache", workdir / "snapshot"
    cold_s, cold_rss = timed_rebuild(store_url, workdir, cache, snapshot)
    warm_s, warm_rss = timed_rebuild(store_url, workdir, cache, workdir / "warm")
    with open_snapshot(snapshot, create=False) as opened:
        counts = opened.state.record_count()
    print(f"  {counts}: rebuild cold {cold_s:.1f} s ({cold_rss:.0f} MB), warm {warm_s:.1f} s")

    snapshots = open_snapshot_store(str(workdir / "published"))
    first, _ = publish_directory(snapshot, snapshots, token=1, parent=None, expected=None)
    label_changes(store, snapshot, CHANGES)
    with open_snapshot(snapshot, create=False) as opened:
        applied = catch_up(store, opened, LocalDeltaSource(workdir)).applied
    manifest_s = manifest_digest_seconds(snapshot)
    dump_s = dump_digest_seconds(snapshot)
    _, version = snapshots.pointer()
    started = time.perf_counter()
    publish_directory(snapshot, snapshots, token=1, parent=first.key, expected=version)
    publish_s = time.perf_counter() - started
    print(
        f"  {applied} changes: manifest digest {manifest_s * 1000:.2f} ms, full-dump digest "
        f"{dump_s:.2f} s, publish {publish_s:.2f} s"
    )
    started = time.perf_counter()
    result = verify(store, snapshot, with_delta_cache(LocalDeltaSource(workdir), cache))
    verify_s = time.perf_counter() - started
    assert result.ok, result.differences
    print(f"  verify {verify_s:.1f} s (ok)")
    store.close()
    return {
        "records": counts["lines"] + counts["words"],
        "rebuild_cold_s": round(cold_s, 2),
        "rebuild_warm_s": round(warm_s, 2),
        "rebuild_peak_rss_mb": round(max(cold_rss, warm_rss)),
        "manifest_digest_ms": round(manifest_s * 1000, 3),
        "dump_digest_s": round(dump_s, 3),
        "publish_s": round(publish_s, 3),
        "verify_s": round(verify_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~5,000 vs ~50,000 records")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--records", type=int, nargs=2, metavar=("SMALL", "LARGE"))
    args = parser.parse_args()
    small, large = args.records or ((5_000, 50_000) if args.quick else (20_000, 200_000))
    sizes: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        for name, records in (("small", small), ("large", large)):
            receipts = max(1, round(records / RECORDS_PER_RECEIPT))
            print(f"{name}: ~{records} records ({receipts} receipts, {DIMENSION}-d)")
            sizes[name] = one_size(Path(scratch) / name, receipts, args.seed)
    result: dict[str, Any] = {
        "digest_growth": round(
            sizes["large"]["manifest_digest_ms"] / sizes["small"]["manifest_digest_ms"], 2
        ),
        "publish_growth": round(sizes["large"]["publish_s"] / sizes["small"]["publish_s"], 2),
        "rebuild_peak_rss_mb": sizes["large"]["rebuild_peak_rss_mb"],
        "small": sizes["small"],
        "large": sizes["large"],
        "goals": {"digest_growth": "<= 1.5"},
    }
    print(
        f"manifest digest grows {result['digest_growth']}x for 10x the records (goal <= 1.5); "
        f"publish {result['publish_growth']}x"
    )
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
