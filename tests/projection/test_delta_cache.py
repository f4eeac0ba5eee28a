"""The delta cache (SPEC §6): decoded deltas kept locally, so only a delta's first read opens
Chroma; verified on read, bounded (LRU), safe to delete, shared safely between processes.

Deltas are real Chroma directories written with ``write_delta`` (read through
:class:`CountingSource`, which counts the reads that reach it), except in the eviction and
race tests, whose :class:`SyntheticSource` makes deltas up from their location without
Chroma, so that many reads per second hit the cache's files.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import boto3
import msgspec
import pytest
from typer.testing import CliRunner

import receipt_chroma.deltas as deltas_module
from projections.cli.options import delta_source
from projections.errors import ProjectionStopped
from projections.runner import rebuild
from projections.snapshot_dir import open_snapshot
from projections.verify import verify
from receipt_chroma.client import CollectionName, open_chroma
from receipt_chroma.delta_cache import (
    CACHE_ENV,
    MAX_MB_ENV,
    CachedDeltaSource,
    DeltaCache,
    Entry,
    IndexEntry,
    delta_cache_from_env,
)
from receipt_chroma.deltas import (
    Delta,
    DeltaError,
    Fingerprint,
    LocalDeltaSource,
    MemoryDeltaSource,
    S3DeltaSource,
    delta_digest,
)
from receipt_chroma.records import ChromaRecord, Metadata, embedding_bytes
from receipt_cli.app import app
from receipt_events.store import open_store
from synthetic.deltas import Layout, write_delta
from tests.projection.helpers import (
    Log,
    line_record,
    project,
    vector,
    word_id,
    word_record,
    write_deltas,
)

COLLECTIONS: tuple[CollectionName, ...] = ("lines", "words")


@pytest.fixture(autouse=True)
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deltas written by a test are read at once; the settle time has a test of its own."""
    monkeypatch.setattr(LocalDeltaSource, "settle_seconds", 0.0)


@pytest.fixture
def chroma_opens(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every Chroma directory a delta read opens."""
    opened: list[Path] = []

    def spy(path: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(path)
        return open_chroma(path, *args, **kwargs)

    monkeypatch.setattr(deltas_module, "open_chroma", spy)
    return opened


class CountingSource(LocalDeltaSource):
    """Local deltas, counting the reads that reach them (each one opens Chroma)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[tuple[str, str]] = []

    def read(self, location: str, collection: CollectionName) -> Delta:
        self.reads.append((location, collection))
        return super().read(location, collection)


def odd_record() -> ChromaRecord:
    """Every kind of metadata value Chroma keeps, which the cache must hand back exactly."""
    record_id = word_id(2, 1)
    metadata: Metadata = {
        "text": "ÜBER € 12,50",
        "flag": True,
        "big": 2**40,
        "ratio": 0.1,
        "labels": ["TOTAL", "DATE"],
        "ints": [1, 2, 3],
        "floats": [0.5, 1.25],
        "bools": [True, False],
    }
    return ChromaRecord(record_id, "ÜBER", metadata, embedding_bytes(vector("run-1", record_id)))


def write_sample(tmp_path: Path, layout: Layout = "directory") -> Path:
    root = tmp_path / "deltas"
    lines = [line_record("run-1", 1, "TOTAL 12.50"), line_record("run-1", 2, "THANK YOU")]
    words = [word_record("run-1", 1, 1, "TOTAL"), word_record("run-1", 1, 2, "12.50")]
    write_delta(root / "run-1" / "lines", "lines", lines, layout)
    write_delta(root / "run-1" / "words", "words", [*words, odd_record()], layout)
    return root


def entry_names(cache: Path) -> set[str]:
    folder = cache / "v1" / "entries"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def hex_of(delta: Delta) -> str:
    return delta.digest.removeprefix("sha256:")


def cache_bytes(cache: Path) -> int:
    return sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())


# -- hits, misses and what a hit returns ---------------------------------------------------------


@pytest.mark.parametrize("layout", ["directory", "tarball"])
def test_a_miss_reads_the_source_and_a_hit_opens_no_chroma(
    tmp_path: Path, chroma_opens: list[Path], layout: Layout
) -> None:
    root = write_sample(tmp_path, layout)
    uncached = {c: LocalDeltaSource(root).read(f"run-1/{c}", c) for c in COLLECTIONS}
    inner = CountingSource(root)
    first = CachedDeltaSource(inner, DeltaCache(tmp_path / "cache"))
    assert [first.read(f"run-1/{c}", c) for c in COLLECTIONS] == list(uncached.values())
    assert (len(inner.reads), first.misses, first.hits) == (2, 2, 0)
    assert entry_names(tmp_path / "cache") == {hex_of(d) for d in uncached.values()}

    chroma_opens.clear()
    later = CachedDeltaSource(inner, DeltaCache(tmp_path / "cache"))  # a later run
    for collection in COLLECTIONS:
        got = later.read(f"run-1/{collection}", collection)
        assert got == uncached[collection]  # location, collection, records (in order), digest
        assert got.digest == delta_digest(got.records)
    assert (len(inner.reads), later.misses, later.hits, chroma_opens) == (2, 0, 2, [])
    odd, written = later.read("run-1/words", "words").records[-1], odd_record()
    assert (odd.id, odd.document, odd.metadata) == (written.id, written.document, written.metadata)
    assert [type(odd.metadata[key]) for key in written.metadata] == [
        type(value) for value in written.metadata.values()
    ]


def test_a_source_that_cannot_stamp_a_delta_is_read_every_time(tmp_path: Path) -> None:
    memory = MemoryDeltaSource()
    memory.put("run-1/words", "words", [word_record("run-1", 1, 1, "A")])
    source = CachedDeltaSource(memory, DeltaCache(tmp_path / "cache"))
    assert source.read("run-1/words", "words") == memory.read("run-1/words", "words")
    assert (source.hits, source.misses, (tmp_path / "cache").exists()) == (0, 0, False)


def test_a_cached_delta_removed_from_its_source_is_missing(tmp_path: Path) -> None:
    root = write_sample(tmp_path)
    source = CachedDeltaSource(LocalDeltaSource(root), DeltaCache(tmp_path / "cache"))
    source.read("run-1/words", "words")
    shutil.rmtree(root / "run-1" / "words")
    with pytest.raises(DeltaError) as raised:
        source.read("run-1/words", "words")
    assert raised.value.missing


# -- damaged entries ---------------------------------------------------------------------------


def test_a_damaged_entry_is_detected_read_again_and_repaired(tmp_path: Path) -> None:
    root = write_sample(tmp_path)
    inner = CountingSource(root)
    cache = tmp_path / "cache"
    good = CachedDeltaSource(inner, DeltaCache(cache)).read("run-1/words", "words")
    entry = cache / "v1" / "entries" / hex_of(good)
    body = entry.read_bytes()
    rng = random.Random(13)
    positions = [0, len(body) - 1, *(rng.randrange(len(body)) for _ in range(10))]
    flips = [bytearray(body) for _ in positions]
    for damaged, position in zip(flips, positions, strict=True):  # header, ids, metadata, vectors
        damaged[position] ^= 1 << rng.randrange(8)
    damages = [*map(bytes, flips), body[: len(body) // 2], b"", b"\xc1garbage"]
    for number, damaged_body in enumerate(damages, start=1):
        entry.write_bytes(damaged_body)
        source = CachedDeltaSource(inner, DeltaCache(cache))
        assert source.read("run-1/words", "words") == good
        assert (len(inner.reads), source.misses) == (1 + number, 1), damaged_body
        assert entry.read_bytes() != damaged_body  # rewritten: not byte for byte, as Chroma
        assert source.read("run-1/words", "words") == good  # may order metadata keys anew
        assert (len(inner.reads), source.hits) == (1 + number, 1)  # and a hit again


def test_a_damaged_index_file_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    root = write_sample(tmp_path)
    inner = CountingSource(root)
    cache = tmp_path / "cache"
    good = CachedDeltaSource(inner, DeltaCache(cache)).read("run-1/lines", "lines")
    (index,) = (cache / "v1" / "index").iterdir()
    body = index.read_bytes()
    for damaged in (body[:-3], b"\x00", body.replace(b"sha256:", b"sha256:../")):
        index.write_bytes(damaged)
        source = CachedDeltaSource(inner, DeltaCache(cache))
        assert source.read("run-1/lines", "lines") == good
        assert source.misses == 1
        assert index.read_bytes() == body
    assert len(inner.reads) == 4


# -- a delta changed at its source -----------------------------------------------------------------


def test_a_delta_changed_at_its_source_is_read_again_and_reported_changed(
    tmp_path: Path, log: Log, snap: Path
) -> None:
    (position,) = log.add(log.run("run-1", lines={1: "A"}, words={(1, 1): "A", (1, 2): "B"}))
    root = tmp_path / "deltas"
    write_deltas(log.deltas, root)
    inner = CountingSource(root)
    source = CachedDeltaSource(inner, DeltaCache(tmp_path / "cache"))
    project(log.store, snap, source)
    assert verify(log.store, snap, source).ok
    assert (len(inner.reads), source.hits) == (2, 2)  # verify read the cache

    changed = [word_record("run-1", 1, 1, "A"), word_record("run-1", 1, 2, "C")]
    write_delta(root / "run-1" / "words", "words", changed, "directory")
    with pytest.raises(ProjectionStopped) as raised:
        verify(log.store, snap, source)
    assert str(raised.value).startswith(
        f"log position {position}: compaction run run-1, collection words: delta run-1/words: "
        "content changed since it was first merged"
    )
    assert inner.reads[-1] == ("run-1/words", "words")
    with open_snapshot(snap, create=False) as snapshot:
        known = snapshot.state.known_delta_digests()
    for _ in range(2):  # the changed delta, now cached, is still told from the merged one
        with pytest.raises(ProjectionStopped, match="content changed since it was first merged"):
            rebuild(log.store, tmp_path / "rebuilt", source, known_digests=known)
        shutil.rmtree(tmp_path / "rebuilt")
    assert [r.document for r in source.read("run-1/words", "words").records] == ["A", "C"]


def test_a_same_size_rewrite_with_the_old_mtime_never_keeps_the_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LocalDeltaSource, "settle_seconds", 0.05)
    source = LocalDeltaSource(tmp_path)
    tarball = tmp_path / "run-1" / "delta.tar.gz"
    tarball.parent.mkdir()
    tarball.write_bytes(b"a" * 100)
    time.sleep(0.06)
    first = source.fingerprint("run-1")
    assert first is not None
    before = tarball.stat()
    with tarball.open("r+b") as file:
        file.write(b"b" * 100)
    os.utime(tarball, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert tarball.stat().st_mtime_ns == before.st_mtime_ns
    assert source.fingerprint("run-1") != first  # None while it settles
    time.sleep(0.06)
    assert source.fingerprint("run-1") not in (None, first)


def test_a_delta_written_moments_ago_is_not_cached_until_it_settles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LocalDeltaSource, "settle_seconds", 60.0)
    root = write_sample(tmp_path)
    inner = CountingSource(root)
    source = CachedDeltaSource(inner, DeltaCache(tmp_path / "cache"))
    source.read("run-1/words", "words")
    source.read("run-1/words", "words")
    assert (len(inner.reads), entry_names(tmp_path / "cache")) == (2, set())
    monkeypatch.setattr(LocalDeltaSource, "settle_seconds", 0.0)  # as if a minute had passed
    source.read("run-1/words", "words")
    source.read("run-1/words", "words")
    assert (len(inner.reads), source.misses, source.hits) == (3, 1, 1)


def test_an_s3_delta_is_cached_under_its_etag_and_read_again_once_rewritten(
    tmp_path: Path, s3_bucket: str
) -> None:
    s3 = boto3.client("s3")
    lines = write_sample(tmp_path, "tarball") / "run-1" / "lines" / "delta.tar.gz"
    s3.upload_file(str(lines), s3_bucket, "run-1/lines/delta.tar.gz")  # tarball layout
    write_delta(tmp_path / "words", "words", [word_record("run-1", 1, 1, "A")], "directory")
    for path in sorted(p for p in (tmp_path / "words").rglob("*") if p.is_file()):  # directory
        key = f"run-1/words/{path.relative_to(tmp_path / 'words').as_posix()}"
        s3.upload_file(str(path), s3_bucket, key)

    class Counting(S3DeltaSource):
        reads = 0

        def read(self, location: str, collection: CollectionName) -> Delta:
            Counting.reads += 1
            return super().read(location, collection)

    inner = Counting(f"s3://{s3_bucket}")
    expected = {c: inner.read(f"run-1/{c}", c) for c in COLLECTIONS}
    for _ in range(3):
        source = CachedDeltaSource(inner, DeltaCache(tmp_path / "cache"))
        assert {c: source.read(f"run-1/{c}", c) for c in COLLECTIONS} == expected
    assert Counting.reads == 4  # two to compare with, two misses, then hits

    write_delta(tmp_path / "words", "words", [word_record("run-1", 1, 1, "B")], "directory")
    sqlite = tmp_path / "words" / "chroma.sqlite3"
    s3.upload_file(str(sqlite), s3_bucket, "run-1/words/chroma.sqlite3")  # one file rewritten
    source = CachedDeltaSource(inner, DeltaCache(tmp_path / "cache"))
    assert source.read("run-1/words", "words").records[0].document == "B"
    assert (Counting.reads, source.misses) == (5, 1)
    assert source.read("run-1/lines", "lines") == expected["lines"]
    assert source.hits == 1


# -- rebuilds through the cache --------------------------------------------------------------------


def history_on_disk(log: Log, root: Path) -> None:
    log.add(
        log.run("run-1", lines={1: "A", 2: "B"}, words={(1, 1): "A", (1, 2): "B", (2, 1): "C"}),
        log.place(merchant_name="Shop"),
        log.label(1, 1, "TOTAL", "VALID", at="2024-01-01T00:00:00+00:00"),
        log.run("run-2", lines={1: "X"}, words={(1, 1): "X"}, receipt=2),
        log.run("run-3", lines={1: "A2"}, words={(1, 1): "A2", (1, 2): "B2"}),
        log.remove_word(1, 2),
        log.label(1, 1, "TOTAL", "INVALID", at="2024-02-01T00:00:00+00:00"),
    )
    write_deltas(log.deltas, root)


def test_rebuilds_through_the_cache_equal_a_rebuild_without_it(tmp_path: Path, log: Log) -> None:
    root = tmp_path / "deltas"
    history_on_disk(log, root)
    plain = rebuild(log.store, tmp_path / "plain", LocalDeltaSource(root))
    inner = CountingSource(root)
    cold = rebuild(
        log.store, tmp_path / "cold", CachedDeltaSource(inner, DeltaCache(tmp_path / "c"))
    )
    assert len(inner.reads) == 6
    warm_source = CachedDeltaSource(inner, DeltaCache(tmp_path / "c"))
    warm = rebuild(log.store, tmp_path / "warm", warm_source)
    assert plain.digest == cold.digest == warm.digest
    assert plain.counts == warm.counts
    assert (len(inner.reads), warm_source.hits) == (6, 6)
    assert verify(log.store, tmp_path / "plain", warm_source).ok
    assert len(inner.reads) == 6


@pytest.mark.parametrize("removed", ["cache", "cache/v1/entries", "cache/v1/index"])
def test_deleting_the_cache_between_runs_is_harmless(
    tmp_path: Path, log: Log, removed: str
) -> None:
    root = tmp_path / "deltas"
    history_on_disk(log, root)
    inner = CountingSource(root)
    source = CachedDeltaSource(inner, DeltaCache(tmp_path / "cache"))  # one object, both runs
    first = rebuild(log.store, tmp_path / "a", source)
    shutil.rmtree(tmp_path / removed)
    second = rebuild(log.store, tmp_path / "b", source)
    assert first.digest == second.digest
    assert (len(inner.reads), source.misses, source.hits) == (12, 12, 0)
    assert len(entry_names(tmp_path / "cache")) == 6  # filled again


# -- eviction ------------------------------------------------------------------------------------


class SyntheticSource:
    """Deltas made up from their location (no Chroma): 20 records of 64 float32 each."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def fingerprint(self, location: str) -> Fingerprint | None:
        return f"synthetic:{location}", "v1"

    def read(self, location: str, collection: CollectionName) -> Delta:
        self.reads.append(location)
        rng = random.Random(location)
        records = [
            ChromaRecord(
                f"{location}#{i:03d}", f"doc {i}", {"n": i, "tags": ["a"]}, rng.randbytes(256)
            )
            for i in range(20)
        ]
        return Delta(location, collection, records, delta_digest(records))


def test_eviction_keeps_the_cache_under_its_cap_and_drops_the_least_recently_used(
    tmp_path: Path,
) -> None:
    inner = SyntheticSource()
    CachedDeltaSource(inner, DeltaCache(tmp_path / "probe")).read("a", "words")
    per_delta = cache_bytes(tmp_path / "probe")  # an entry and its index file
    cap = int(per_delta * 3.5)
    cache = tmp_path / "cache"
    source = CachedDeltaSource(inner, DeltaCache(cache, max_bytes=cap))
    for name in ("a", "b", "c", "a", "d"):  # a read again: b is now the least recently used
        source.read(name, "words")
        assert cache_bytes(cache) <= cap
    assert (source.misses, source.hits) == (4, 1)
    expected = {name: hex_of(SyntheticSource().read(name, "words")) for name in "abcd"}
    assert entry_names(cache) == {expected["a"], expected["c"], expected["d"]}
    for name in ("a", "c", "d", "b"):
        source.read(name, "words")
    assert (source.misses, source.hits) == (5, 4)  # only b was read from its source again

    rng = random.Random(5)
    for _ in range(200):
        source.read(f"delta-{rng.randrange(12)}", "words")
        assert cache_bytes(cache) <= cap
    assert source.hits > 4


def _fill(cache: str, seed: int, cap: int, barrier: Any, results: Any) -> None:
    """One racing process: reads deltas in a seeded order through the shared cache."""
    truth = SyntheticSource()
    names = [f"delta-{i:02d}" for i in range(24)]
    expected = {name: truth.read(name, "words") for name in names}
    source = CachedDeltaSource(SyntheticSource(), DeltaCache(cache, max_bytes=cap))
    rng = random.Random(seed)
    barrier.wait()
    started = time.monotonic()
    wrong = sum(
        source.read(name, "words") != expected[name]
        for name in (rng.choice(names) for _ in range(600))
    )
    results.put((seed, wrong, source.hits, source.misses, started, time.monotonic()))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_processes_sharing_a_cache_leave_only_valid_entries(tmp_path: Path, seed: int) -> None:
    context = multiprocessing.get_context("spawn")
    probe = tmp_path / "probe"
    CachedDeltaSource(SyntheticSource(), DeltaCache(probe)).read("delta-00", "words")
    cap = cache_bytes(probe) * 8  # a third of the 24 deltas: the processes evict all along
    cache = tmp_path / "cache"
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=_fill, args=(str(cache), seed * 10 + n, cap, barrier, results))
        for n in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    for _, wrong, hits, misses, _, _ in outcomes:
        assert wrong == 0
        assert hits > 0
        assert misses > 0
    (_, _, _, _, start_a, end_a), (_, _, _, _, start_b, end_b) = outcomes
    assert start_a < end_b  # they really ran at the same time
    assert start_b < end_a

    names = {hex_of(SyntheticSource().read(f"delta-{i:02d}", "words")) for i in range(24)}
    entries = sorted((cache / "v1" / "entries").iterdir())
    assert entries
    for entry in entries:  # no temporary file left, every entry whole and what its name says
        assert entry.name in names
        stored = msgspec.msgpack.decode(entry.read_bytes(), type=Entry).records
        assert delta_digest([ChromaRecord(*row) for row in stored]) == f"sha256:{entry.name}"
    for index in (cache / "v1" / "index").iterdir():
        found = msgspec.msgpack.decode(index.read_bytes(), type=IndexEntry)
        assert found.digest.removeprefix("sha256:") in names
    # each process holds its own count between scans: two writers may overshoot by one cap
    assert cache_bytes(cache) <= 2 * cap


# -- the command line and the environment ---------------------------------------------------------


def test_the_command_line_reads_through_the_cache_named_by_option_or_environment(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chroma_opens: list[Path]
) -> None:
    for name in (CACHE_ENV, MAX_MB_ENV, "RECEIPT_EVENTS_STORE", "RECEIPT_EVENTS_DELTAS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    store = open_store(sqlite_url)
    root = tmp_path / "deltas"
    history_on_disk(Log(store), root)
    store.close()
    common = ["--store", sqlite_url, "--deltas", str(root), "--json"]

    def run(*args: str | Path) -> Any:
        result = CliRunner().invoke(app, [*map(str, args), *common], catch_exceptions=False)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    run("rebuild", "--snapshot-dir", tmp_path / "none")
    assert not (tmp_path / "home").exists()  # no cache unless asked for
    assert len(chroma_opens) == 6

    run("rebuild", "--snapshot-dir", tmp_path / "a", "--delta-cache", tmp_path / "by-option")
    assert len(entry_names(tmp_path / "by-option")) == 6
    chroma_opens.clear()
    run("verify", tmp_path / "a", "--delta-cache", tmp_path / "by-option")
    run("diff", "--snapshot-dir", tmp_path / "a", "--delta-cache", tmp_path / "by-option")
    assert chroma_opens == []

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "by-env"))
    run("rebuild", "--snapshot-dir", tmp_path / "b")
    assert len(entry_names(tmp_path / "by-env")) == 6
    assert len(chroma_opens) == 6
    run("project", "--snapshot-dir", tmp_path / "c")
    assert len(chroma_opens) == 6
    assert not (tmp_path / "home").exists()


def test_the_cap_comes_from_the_option_or_the_environment(tmp_path: Path) -> None:
    cached = delta_source(str(tmp_path), tmp_path / "c", 7)
    assert isinstance(cached, CachedDeltaSource)
    assert (cached.cache.root, cached.cache.max_bytes) == (tmp_path / "c", 7 * 2**20)
    plain = LocalDeltaSource(tmp_path)
    assert delta_cache_from_env(plain, {}) is plain
    assert delta_cache_from_env(plain, {CACHE_ENV: "", MAX_MB_ENV: "5"}) is plain
    from_env = delta_cache_from_env(plain, {CACHE_ENV: str(tmp_path / "e"), MAX_MB_ENV: "64"})
    assert isinstance(from_env, CachedDeltaSource)
    assert (from_env.cache.root, from_env.cache.max_bytes) == (tmp_path / "e", 64 * 2**20)
    default = delta_cache_from_env(plain, {CACHE_ENV: str(tmp_path / "e")})
    assert isinstance(default, CachedDeltaSource)
    assert default.cache.max_bytes == 2048 * 2**20
    for bad in ("lots", "0", "-1"):
        with pytest.raises(ValueError, match=MAX_MB_ENV):
            delta_cache_from_env(plain, {CACHE_ENV: "x", MAX_MB_ENV: bad})
