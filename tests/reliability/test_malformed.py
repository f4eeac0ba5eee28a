"""Malformed input: nothing escapes ingest, every bad record is parked, and damaged snapshots
and deltas are refused with the state before them left exactly as it was.

Records (at least 10,000 malformed ones in the fast profile, ten times that in deep):

* a corpus of real generated records with damaged copies between them
  (``tests/reliability/malformed_corpus.py``: wrong types, missing keys, truncated JSON, 1 MB
  and 1,000-deep values, bad UTF-8, unknown kinds and eventNames, eventIDs of valid records
  with different content), ingested into SQLite and PostgreSQL, and through the stream Lambda;
* hypothesis: arbitrary JSON, arbitrary bytes, record-shaped garbage and damaged records,
  interleaved with valid ones, each example in a fresh store;
* a JSON Lines export damaged by ``corrupt_lines``, read and ingested as the CLI does.

For each: ingest never raises, every record lands in exactly one bucket and the counts add up,
every malformed record is parked under its identity with a non-empty reason and its exact
bytes, and every valid record around them is appended (by eventID, in order).

Snapshots and deltas: each file of a published snapshot corrupted in turn (``chroma.sqlite3``,
an HNSW binary, ``state.sqlite3``, the manifest, the pointer), a pointer naming a snapshot that
is not there, an empty store, and deltas truncated at many points (directory layout and
``delta.tar.gz``). Each is refused with its own error (SnapshotCorrupt, SnapshotMissing,
NoSnapshot, DeltaError) naming what is wrong, and the local snapshot directory, the store's
pointer and the projection's checkpoint are left as they were.

Figures (``tests/reliability/.last-figures.json``): records generated, parked, crashes, valid
records appended, refusals.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lambdas.stream_processor
from projections.compaction import compact, lease_name
from projections.errors import ProjectionStopped
from projections.publish import publish_directory
from projections.restore import restore
from projections.runner import catch_up, rebuild, snapshot_digest
from projections.snapshot_dir import open_snapshot
from receipt_chroma.deltas import TARBALL_NAME, DeltaError, DeltaSources
from receipt_chroma.directory_lock import LOCK_FILE
from receipt_chroma.lease import DynamoDBLeases, FileLeases, Leases
from receipt_chroma.snapshots import (
    NoSnapshot,
    SnapshotCorrupt,
    SnapshotMissing,
    SnapshotStore,
    open_snapshot_store,
)
from receipt_events.ingest import IngestSummary, ingest, redrive
from receipt_events.records import InputRecord, read_input
from receipt_events.store import EventStore, open_store
from synthetic.deltas import write_run_deltas
from synthetic.history import (
    EVENT_INTENTS,
    INTENT_OUTCOMES,
    History,
    HistoryConfig,
    corrupt_lines,
    generate_history,
    to_jsonl,
)
from tests.reliability.malformed_corpus import (
    MALFORMED_KINDS,
    Entry,
    Expected,
    Mutator,
    build_corpus,
    expected_for,
    parked_identity,
)
from tests.support.json_values import any_json
from tests.support.lambda_context import LambdaContext
from tests.support.reliability_figures import record_case
from tests.support.reliability_profile import PROFILE

SCALE = PROFILE.scale
CORPUS_MALFORMED = 7_000 * SCALE  # damaged copies of real records, per store
HYPOTHESIS_MALFORMED = 3_000 * SCALE  # at least this many across the hypothesis examples
JSONL_CORRUPTED = 1_000 * SCALE
LAMBDA_MALFORMED = 1_500 * SCALE
HUGE_VALUES = 4 * SCALE  # 1 MB values in the corpus (the rest are 2-40 kB)
TRUNCATION_POINTS = 48 * SCALE  # cut points tried per truncated delta file
DIMENSION = 16

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.aws)]


def history_config(seed: int, receipts: int) -> HistoryConfig:
    return HistoryConfig(seed=seed, receipts=receipts, redelivery_rate=0.05, removal_rate=0.2)


# --------------------------------------------------------------------------- checks


def checked_ingest(
    store: EventStore, entries: list[Entry], *, batch_size: int = 500, scenario: str
) -> IngestSummary:
    """Ingest entries; a raise is a crash (recorded as such, then the test fails)."""
    try:
        return ingest(store, [InputRecord(e.origin, e.raw) for e in entries], batch_size=batch_size)
    except Exception as error:
        record_case(scenario, crashes=1, error=f"{type(error).__name__}: {error}"[:500])
        raise AssertionError(f"ingest raised {type(error).__name__}: {error}"[:2000]) from error


def check_outcome(
    store: EventStore,
    summary: IngestSummary,
    expected: Expected,
    *,
    check_origin: bool = True,
) -> None:
    """The summary, the log and the parked records are exactly what ``expected`` says."""
    buckets = (
        summary.appended + summary.duplicates + summary.unchanged + summary.skipped + summary.parked
    )
    assert buckets == summary.records == expected.records, "the counts do not add up"
    got = {
        "appended": summary.appended,
        "duplicates": summary.duplicates,
        "unchanged": summary.unchanged,
        "skipped": summary.skipped,
        "parked": summary.parked,
        "skipped_by_kind": dict(sorted(summary.skipped_by_kind.items())),
    }
    want = {
        "appended": expected.appended,
        "duplicates": expected.duplicates,
        "unchanged": expected.unchanged,
        "skipped": expected.skipped,
        "parked": expected.parked,
        "skipped_by_kind": expected.skipped_by_kind,
    }
    assert got == want

    # every valid record around the bad ones appended, by eventID, in input order
    logged = [recorded.event.source.event_id for recorded in store.iter_events()]
    assert logged == expected.log, "the log is not the valid records' events in order"
    assert summary.head == store.head()

    # every malformed record parked under its identity, whole, with a reason
    parked = {record.parked_id: record for record in store.parked_records()}
    missing = sorted(set(expected.parked_first) - set(parked))
    assert not missing, f"{len(missing)} malformed records not parked, e.g. {missing[:3]}"
    extra = sorted(set(parked) - set(expected.parked_first))
    assert not extra, f"{len(extra)} records parked that should not be, e.g. {extra[:3]}"
    for identity, entry in expected.parked_first.items():
        record = parked[identity]
        assert record.error.strip(), f"{identity} parked without a reason"
        assert record.payload == entry.raw, f"{identity} parked with other bytes"
        if check_origin:
            assert record.origin == entry.origin


def malformed_count(entries: list[Entry]) -> int:
    return sum(entry.malformed for entry in entries)


# --------------------------------------------------------------------------- the corpus


@pytest.fixture(scope="module")
def corpus_history() -> History:
    return generate_history(history_config(seed=21, receipts=16 * SCALE))


@pytest.fixture(scope="module")
def corpus(corpus_history: History) -> list[Entry]:
    return build_corpus(
        corpus_history,
        CORPUS_MALFORMED,
        seed=21,
        unknown_families=CORPUS_MALFORMED // 20,
        huge_budget=HUGE_VALUES,
    )


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_malformed_records_among_real_ones_are_parked_and_the_rest_appended(
    backend: str, request: pytest.FixtureRequest, corpus: list[Entry]
) -> None:
    url: str = request.getfixturevalue(f"{backend}_url")
    expected = expected_for(corpus)
    kinds = {kind: sum(e.kind == kind for e in corpus) for kind in MALFORMED_KINDS}
    assert min(kinds.values()) >= CORPUS_MALFORMED // len(MALFORMED_KINDS) - 1, kinds
    assert sum(len(e.raw) >= 1 << 20 for e in corpus) >= HUGE_VALUES  # 1 MB values are in
    assert expected.appended >= 500
    assert expected.parked == CORPUS_MALFORMED
    scenario = f"malformed/records/corpus/{backend}"
    with open_store(url) as store:
        summary = checked_ingest(store, corpus, scenario=scenario)
        check_outcome(store, summary, expected)
    record_case(
        scenario,
        generated=malformed_count(corpus),
        records=len(corpus),
        parked=summary.parked,
        valid_appended=summary.appended,
        skipped_unknown_kinds=sum(e.kind == "unknown_family" for e in corpus),
        crashes=0,
        by_kind=kinds,
    )


@pytest.mark.postgres
def test_the_stream_lambda_parks_malformed_records_and_reports_no_failure(
    postgres_url: str, corpus_history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same kinds of damage in Lambda events (records as the runtime decodes them): the
    handler re-encodes each record, parks the bad ones and never reports a batch failure."""
    built = build_corpus(
        corpus_history, LAMBDA_MALFORMED, seed=22, unknown_families=50, huge_budget=1
    )
    records: list[Any] = []
    entries: list[Entry] = []
    unencodable: list[str] = []  # markers of records JSON cannot carry (lone surrogates)
    for entry in built:
        try:
            decoded = json.loads(entry.raw)  # what the Lambda runtime hands the handler
        except (ValueError, RecursionError):
            continue  # not JSON (truncated, bad UTF-8) or too deep: cannot be in an event
        records.append(decoded)
        try:
            raw = msgspec.json.encode(decoded)
        except ValueError:  # json.loads let a lone surrogate through: parked as a description
            unencodable.append(decoded["eventVersion"])
            continue
        identity = parked_identity(raw) if entry.malformed else entry.identity
        entries.append(Entry(entry.origin, raw, entry.expect, entry.kind, identity))
    expected = expected_for(entries)
    assert expected.parked >= LAMBDA_MALFORMED // 2
    assert unencodable, "no record with a lone surrogate: the case is not covered"
    monkeypatch.setenv("RECEIPT_EVENTS_STORE", postgres_url)
    monkeypatch.delenv("RECEIPT_EVENTS_WAKE_QUEUE", raising=False)
    lambdas.stream_processor._store.drop()
    failures = []
    try:
        for start in range(0, len(records), 100):
            batch = {"Records": records[start : start + 100]}
            try:
                response = lambdas.stream_processor.handler(batch, LambdaContext("stream"))
            except Exception as error:
                record_case("malformed/records/stream-lambda", crashes=1, error=str(error)[:500])
                raise
            if response != {"batchItemFailures": []}:
                failures.append((start, response))
    finally:
        lambdas.stream_processor._store.drop()
    assert failures == []
    with open_store(postgres_url) as store:
        parked = {record.parked_id: record for record in store.parked_records()}
        logged = [recorded.event.source.event_id for recorded in store.iter_events()]
        assert logged == expected.log
        described = {
            key: record for key, record in parked.items() if key not in expected.parked_first
        }
        assert set(expected.parked_first) <= set(parked)
        assert len(described) == len(unencodable)
        for identity, entry in expected.parked_first.items():
            assert parked[identity].error.strip()
            assert parked[identity].payload == entry.raw
        for marker in unencodable:
            # parked as "not JSON-encodable (...): {record!r}", encoded with errors="replace"
            shown = repr(marker).encode(errors="replace")
            assert any(shown in r.payload for r in described.values()), marker
    record_case(
        "malformed/records/stream-lambda",
        generated=malformed_count(entries) + len(unencodable),
        records=len(entries),
        parked=len(parked),
        valid_appended=len(logged),
        crashes=0,
    )


def test_a_damaged_jsonl_export_is_read_and_ingested_line_by_line(
    sqlite_url: str, corpus_history: History
) -> None:
    """``corrupt_lines`` damage in a JSON Lines file, read as ``receipt-events ingest`` reads it."""
    original = to_jsonl(corpus_history.records)
    outcome_of_line: dict[bytes, str] = {}
    for record, intent in zip(corpus_history.records, corpus_history.intents, strict=True):
        if intent != "redelivery":
            outcome_of_line[msgspec.json.encode(record)] = INTENT_OUTCOMES[intent]
    damaged = corrupt_lines(original, JSONL_CORRUPTED, seed=23)
    records = read_input(damaged, "stream.jsonl")
    entries = []
    for record in records:
        outcome = outcome_of_line.get(record.raw)
        if outcome is None:
            entries.append(Entry(record.origin, record.raw, "parked", "corrupt_lines", ""))
        else:
            event_id = msgspec.json.decode(record.raw)["eventID"]
            entries.append(Entry(record.origin, record.raw, outcome, "valid", event_id))
    entries = [
        Entry(e.origin, e.raw, e.expect, e.kind, parked_identity(e.raw)) if e.malformed else e
        for e in entries
    ]
    assert malformed_count(entries) == JSONL_CORRUPTED
    expected = expected_for(entries)
    with open_store(sqlite_url) as store:
        summary = checked_ingest(store, entries, scenario="malformed/records/jsonl")
        check_outcome(store, summary, expected)
    record_case(
        "malformed/records/jsonl",
        generated=JSONL_CORRUPTED,
        records=len(entries),
        parked=summary.parked,
        valid_appended=summary.appended,
        crashes=0,
    )


# --------------------------------------------------------------------------- hypothesis

_POOL_HISTORY = generate_history(history_config(seed=24, receipts=3))
POOL = [
    msgspec.json.encode(record)
    for record, intent in zip(_POOL_HISTORY.records, _POOL_HISTORY.intents, strict=True)
    if intent in EVENT_INTENTS
]
POOL_IDS = [msgspec.json.decode(raw)["eventID"] for raw in POOL]
_MUTATOR = Mutator(_POOL_HISTORY, seed=0)
HYPOTHESIS_KINDS = list(MALFORMED_KINDS)

json_text = st.text(max_size=8)
json_values = any_json(json_text, max_size=3, max_leaves=6)
record_like = st.dictionaries(
    st.sampled_from(["eventID", "eventName", "dynamodb", "awsRegion", "Records", "Keys"]),
    json_values,
    max_size=5,
)
hypothesis_entries = st.one_of(
    st.tuples(st.just("valid"), st.integers(0, len(POOL) - 1)),
    st.tuples(st.just("damaged"), st.sampled_from(HYPOTHESIS_KINDS), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("json"), json_values),
    st.tuples(st.just("record-like"), record_like),
    st.tuples(st.just("bytes"), st.binary(max_size=48)),
)


def damaged(kind: str, seed: int) -> bytes:
    """A damaged copy of a pool record: a function of (kind, seed) alone."""
    _MUTATOR.rng.seed(seed)
    _MUTATOR.counter = 0
    reuse = POOL_IDS[seed % len(POOL_IDS)] if kind == "duplicate_event_id" else None
    return _MUTATOR.make(kind, reuse_event_id=reuse)


def hypothesis_inputs(plan: list[tuple[Any, ...]]) -> list[Entry]:
    entries = []
    for index, drawn in enumerate(plan):
        origin = f"hypothesis:{index}"
        if drawn[0] == "valid":
            raw = POOL[drawn[1]]
            entries.append(Entry(origin, raw, "event", "valid", POOL_IDS[drawn[1]]))
            continue
        if drawn[0] == "damaged":
            raw = damaged(drawn[1], drawn[2])
        elif drawn[0] == "bytes":
            raw = drawn[1]
        else:
            raw = msgspec.json.encode(drawn[1])
        entries.append(Entry(origin, raw, "parked", str(drawn[0]), parked_identity(raw)))
    return entries


def test_hypothesis_garbage_and_damaged_records_never_escape_ingest() -> None:
    generated: list[int] = []
    parked: list[int] = []
    appended: list[int] = []
    examples = math.ceil(HYPOTHESIS_MALFORMED / 26)  # about 32 malformed records each

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(hypothesis_entries, min_size=40, max_size=50), st.integers(1, 64))
    def one_example(plan: list[tuple[Any, ...]], batch_size: int) -> None:
        entries = hypothesis_inputs(plan)
        with open_store("memory://") as store:
            summary = checked_ingest(
                store, entries, batch_size=batch_size, scenario="malformed/records/hypothesis"
            )
            check_outcome(store, summary, expected_for(entries))
        generated.append(malformed_count(entries))
        parked.append(summary.parked)
        appended.append(summary.appended)

    one_example()
    total = sum(generated)
    record_case(
        "malformed/records/hypothesis",
        generated=total,
        examples=len(generated),
        parked=sum(parked),
        valid_appended=sum(appended),
        crashes=0,
    )
    assert total >= HYPOTHESIS_MALFORMED, f"only {total} malformed records were generated"


# --------------------------------------------------------------------------- regressions


def _valid_label_record(event_id: str, sequence: str = "400000000000000000000000001") -> bytes:
    record = copy.deepcopy(
        next(
            r
            for r, intent in zip(_POOL_HISTORY.records, _POOL_HISTORY.intents, strict=True)
            if intent == "label_insert"
        )
    )
    record["eventID"] = event_id
    record["dynamodb"]["SequenceNumber"] = sequence
    return msgspec.json.encode(record)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "event_id",
    [random.Random(1).randbytes(1500).hex(), "e" * 1_000_000, "ab\u0000cd"],
    ids=["3000-hex-digits", "1-MB", "nul"],
)
def test_an_event_id_the_store_cannot_index_is_parked_not_a_store_failure(
    postgres_url: str, event_id: str
) -> None:
    """Regression: PostgreSQL refuses index entries over ~2.7 kB and NULs in text, so such an
    eventID used to fail the append of its whole batch, on every retry (a poison record)."""
    good = _valid_label_record("good-1")
    bad = _valid_label_record(event_id)
    inputs = [InputRecord("in:1", bad), InputRecord("in:2", good)]
    with open_store(postgres_url) as store:
        summary = ingest(store, inputs)
        assert (summary.parked, summary.appended) == (1, 1)
        (parked,) = store.parked_records()
        assert parked.parked_id == "sha256:" + hashlib.sha256(bad).hexdigest()
        assert "eventID" in parked.error
        assert [r.event.source.event_id for r in store.iter_events()] == ["good-1"]


def test_a_sequence_number_too_long_for_int_is_parked_and_redrive_still_works(
    sqlite_url: str,
) -> None:
    """Regression: a 5,000-digit SequenceNumber was appended, and then every redrive (and the
    stream Lambda's failure report) raised ValueError converting it to int."""
    huge = _valid_label_record("huge-seq", sequence="7" * 5000)
    other = json.loads(_valid_label_record("bad-name"))
    other["eventName"] = "UPSERT"
    inputs = [InputRecord("in:1", msgspec.json.encode(other)), InputRecord("in:2", huge)]
    with open_store(sqlite_url) as store:
        summary = ingest(store, inputs)
        assert (summary.parked, summary.appended) == (2, 0)
        assert redrive(store).still_parked == 2


def test_an_id_beyond_64_bits_is_parked_and_never_reaches_the_projection(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Regression: ``RECEIPT#99999999999999999999`` parsed and was appended, then every
    catch-up failed on it (OverflowError storing the id in SQLite): a log that could never be
    projected again."""
    record = json.loads(_valid_label_record("big-id"))
    sk = record["dynamodb"]["Keys"]["SK"]["S"]
    big = "RECEIPT#" + "9" * 20 + sk[len("RECEIPT#00001") :]
    record["dynamodb"]["Keys"]["SK"]["S"] = record["dynamodb"]["NewImage"]["SK"]["S"] = big
    with open_store(sqlite_url) as store:
        summary = ingest(store, [InputRecord("in:1", msgspec.json.encode(record))])
        assert (summary.parked, summary.appended) == (1, 0)
        assert "larger than" in store.parked_records()[0].error
        assert rebuild(store, tmp_path / "out", DeltaSources(str(tmp_path))).applied == 0


def test_the_stream_lambda_parks_records_it_cannot_re_encode(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a record holding a lone surrogate (which ``json.loads`` lets through) or
    nested past the encoder's limit made ``records_from_lambda_event`` raise, failing the whole
    batch on every retry; and its eventID, used as the parked record's origin, could not be
    stored either."""
    surrogate = json.loads(_valid_label_record("placeholder").replace(b"placeholder", b"\\ud800"))
    deep: dict[str, Any] = {"eventID": "deep"}
    inner = deep
    for _ in range(3000):
        inner["next"] = {}
        inner = inner["next"]
    good = json.loads(_valid_label_record("good-2"))
    monkeypatch.setenv("RECEIPT_EVENTS_STORE", sqlite_url)
    monkeypatch.delenv("RECEIPT_EVENTS_WAKE_QUEUE", raising=False)
    lambdas.stream_processor._store.drop()
    event = {"Records": [surrogate, deep, good]}
    assert lambdas.stream_processor.handler(event, LambdaContext("stream")) == {
        "batchItemFailures": []
    }
    with open_store(sqlite_url) as store:
        assert [r.event.source.event_id for r in store.iter_events()] == ["good-2"]
        parked = store.parked_records()
    assert len(parked) == 2
    assert all(p.error.strip() and b"not JSON-encodable" in p.payload for p in parked)


def test_a_different_bad_record_under_a_parked_event_id_is_kept_too(sqlite_url: str) -> None:
    """Both bad records stay reachable; delivering either again (even re-encoded, as the
    Lambda path does) parks nothing more."""
    first = json.loads(_valid_label_record("shared-id"))
    first["eventName"] = "UPSERT"
    second = json.loads(_valid_label_record("shared-id"))
    second["dynamodb"]["Keys"]["SK"] = {"S": "RECEIPT#bad"}
    inputs = [
        InputRecord("in:1", msgspec.json.encode(first)),
        InputRecord("in:2", msgspec.json.encode(second)),
    ]
    with open_store(sqlite_url) as store:
        ingest(store, inputs)
        again = ingest(
            store,
            [
                InputRecord("again", json.dumps(json.loads(raw.raw), indent=1).encode())
                for raw in inputs
            ],
        )
        payloads = {record.payload for record in store.parked_records()}
    assert payloads == {raw.raw for raw in inputs}
    assert (again.parked, again.duplicates) == (0, 2)


def test_a_different_record_under_a_logged_event_id_is_not_silently_dropped(
    store_url: str,
) -> None:
    """AWS eventIDs are unique, so this only happens to tampered or mis-assembled input: the
    second record is parked as a conflict, the first stays logged, both are reachable."""
    first = json.loads(_valid_label_record("same-id"))
    second = copy.deepcopy(first)
    second["dynamodb"]["NewImage"]["validation_status"] = {"S": "INVALID"}
    second["dynamodb"]["SequenceNumber"] = str(int(first["dynamodb"]["SequenceNumber"]) + 1)
    inputs = [
        InputRecord("in:1", msgspec.json.encode(first)),
        InputRecord("in:2", msgspec.json.encode(second)),
    ]
    with open_store(store_url) as store:
        summary = ingest(store, inputs)
        again = ingest(store, inputs[::-1])  # redelivered, in either order: nothing new
        logged = [recorded.event for recorded in store.iter_events()]
        parked = store.parked_records()
    assert (summary.appended, summary.parked, summary.duplicates) == (1, 1, 0)
    assert (again.appended, again.parked, again.duplicates) == (0, 0, 2)
    assert [event.source.event_id for event in logged] == ["same-id"]
    assert logged[0].validation_status != "INVALID"
    assert [record.payload for record in parked] == [inputs[1].raw]
    assert parked[0].event_id == "same-id"
    assert "already stored at position" in parked[0].error


# --------------------------------------------------------------------------- snapshots


@dataclass
class World:
    """A small log, its deltas on disk, and snapshot directories at two positions."""

    root: Path
    history: History
    store_file: Path
    first: int  # the older snapshot's position
    head: int
    directories: dict[int, Path]

    @property
    def deltas(self) -> DeltaSources:
        return DeltaSources(str(self.root))

    def store_copy(self, target: Path) -> str:
        """A copy of the log (SQLite file) that a test may append to; its URL."""
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.store_file, target)
        return "sqlite:///" + str(target.resolve())

    def copy_snapshot(self, position: int, target: Path) -> Path:
        shutil.copytree(
            self.directories[position], target, ignore=shutil.ignore_patterns(LOCK_FILE)
        )
        return target


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("malformed-world")
    history = generate_history(
        HistoryConfig(seed=25, receipts=4, lines_per_receipt=(4, 8), removal_rate=0.0)
    )
    for index, run in enumerate(history.runs):
        layout = "tarball" if index % 2 else "directory"
        write_run_deltas(run, root, dimension=DIMENSION, layout=layout)
    store_file = root / "events.db"
    with open_store("sqlite:///" + str(store_file)) as store:
        ingest(
            store,
            [InputRecord(str(i), msgspec.json.encode(r)) for i, r in enumerate(history.records)],
        )
        head = store.head()
        first = head // 2
        directories = {}
        for position in (first, head):
            directories[position] = root / "snapshots-at" / str(position)
            rebuild(store, directories[position], DeltaSources(str(root)), to=position)
    assert history.runs
    assert first > 0
    return World(root, history, store_file, first, head, directories)


def snapshot_site(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> tuple[SnapshotStore, Leases]:
    if backend == "s3":
        bucket: str = request.getfixturevalue("s3_bucket")
        table: str = request.getfixturevalue("lock_table")
        return open_snapshot_store(f"s3://{bucket}/snapshots"), DynamoDBLeases(table)
    return open_snapshot_store(str(tmp_path / "store")), FileLeases(tmp_path / "locks")


def publish_snapshot(world: World, snapshots: SnapshotStore, position: int, token: int) -> str:
    pointer, version = snapshots.pointer()
    copy_path = world.copy_snapshot(position, world.root / f"publish-{uuid.uuid4().hex}")
    try:
        manifest, _ = publish_directory(
            copy_path,
            snapshots,
            token=token,
            parent=pointer.key if pointer else None,
            expected=version,
        )
    finally:
        shutil.rmtree(copy_path)
    return manifest.key


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file of a snapshot directory (but its lock file) and its sha256."""
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != LOCK_FILE
    }


def checkpoint(directory: Path) -> int:
    with open_snapshot(directory, create=False) as snapshot:
        return snapshot.state.checkpoint


@dataclass
class Damage:
    """One way to damage the store, the error it must be refused with, and what it names."""

    name: str
    key: str  # the store key damaged (relative to the store's prefix)
    damage: Callable[[bytes], bytes | None]  # old bytes → new bytes (None: delete)
    error: type[Exception]
    names: tuple[str, ...]


def flip_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x5A]) + data[middle + 1 :]


def damages(snapshots: SnapshotStore, key: str) -> list[Damage]:
    manifest = snapshots.manifest(key)
    paths = [entry.path for entry in manifest.files]
    hnsw = next(p for p in paths if p.endswith("/data_level0.bin"))
    files = f"snapshots/{key}/files"
    missing = "00000000000099999999-deadbeefdeadbeef"
    pointer = msgspec.json.encode(
        {"key": missing, "position": 99999999, "digest": "sha256:" + "0" * 64, "token": 99}
    )
    return [
        Damage(
            "chroma.sqlite3",
            f"{files}/chroma/chroma.sqlite3",
            flip_middle,
            SnapshotCorrupt,
            (key, "chroma/chroma.sqlite3"),
        ),
        Damage(
            "hnsw-binary",
            f"{files}/{hnsw}",
            lambda d: d[: len(d) // 2],
            SnapshotCorrupt,
            (key, hnsw),
        ),
        Damage(
            "state.sqlite3",
            f"{files}/state.sqlite3",
            lambda d: b"\x00garbage" * (len(d) // 8),
            SnapshotCorrupt,
            (key, "state.sqlite3"),
        ),
        Damage(
            "manifest",
            f"snapshots/{key}/manifest.json",
            lambda d: d[: len(d) // 2],
            SnapshotCorrupt,
            (key, "manifest"),
        ),
        Damage(
            "manifest-missing",
            f"snapshots/{key}/manifest.json",
            lambda d: None,
            SnapshotMissing,
            (key, "manifest.json"),
        ),
        Damage(
            "pointer-truncated",
            "latest.json",
            lambda d: d[: len(d) // 2],
            SnapshotCorrupt,
            ("latest.json",),
        ),
        Damage(
            "pointer-garbage",
            "latest.json",
            lambda d: b"\xff\xfe\x00not json",
            SnapshotCorrupt,
            ("latest.json",),
        ),
        Damage(
            "pointer-wrong-types",
            "latest.json",
            lambda d: b'{"key": 5, "position": "x", "digest": null, "token": []}',
            SnapshotCorrupt,
            ("latest.json",),
        ),
        Damage(
            "pointer-names-a-missing-snapshot",
            "latest.json",
            lambda d: pointer,
            SnapshotMissing,
            (missing,),
        ),
    ]


def set_bytes(snapshots: SnapshotStore, key: str, data: bytes | None) -> None:
    backend = snapshots.backend
    if key == "latest.json":
        assert data is not None
        _, version = _raw_pointer(snapshots)
        backend.write_pointer(data, version)
    elif data is None:
        backend.delete([key])
    else:
        backend.put_bytes(key, data)


def _raw_pointer(snapshots: SnapshotStore) -> tuple[bytes | None, str | None]:
    found = snapshots.backend.read_pointer()
    return (None, None) if found is None else found


def get_bytes(snapshots: SnapshotStore, key: str) -> bytes:
    if key == "latest.json":
        data, _ = _raw_pointer(snapshots)
        assert data is not None
        return data
    return snapshots.backend.get_bytes(key)


@pytest.mark.parametrize("backend", BACKENDS)
def test_damaged_snapshots_are_refused_and_nothing_moves(
    backend: str, request: pytest.FixtureRequest, world: World, tmp_path: Path
) -> None:
    snapshots, locks = snapshot_site(request, backend, tmp_path)
    publish_snapshot(world, snapshots, world.first, token=1)
    newest = publish_snapshot(world, snapshots, world.head, token=2)
    url = world.store_copy(tmp_path / "events.db")
    cache = world.copy_snapshot(world.first, tmp_path / "cache")  # behind the pointer
    cache_before = fingerprint(cache)
    refusals = 0
    with open_store(url) as store:
        for case in damages(snapshots, newest):
            original = get_bytes(snapshots, case.key)
            set_bytes(snapshots, case.key, case.damage(original))
            pointer_now = _raw_pointer(snapshots)
            keys_now = snapshots.backend.list_keys("")
            try:
                cold = tmp_path / f"cold-{case.name}"
                pulled = tmp_path / f"pulled-{case.name}"
                attempts: list[Callable[[], object]] = [
                    lambda: compact(store, snapshots, locks, world.deltas, cache),
                    lambda: compact(store, snapshots, locks, world.deltas, cold),  # noqa: B023
                    lambda: restore(snapshots, pulled),  # noqa: B023
                ]
                for attempt in attempts:
                    with pytest.raises(case.error) as caught:
                        attempt()
                    message = str(caught.value)
                    for name in case.names:
                        assert name in message, f"{case.name}: {message!r} does not name {name}"
                    refusals += 1
                # nothing moved: the local copy, the pointer, the store's keys, the lock
                assert fingerprint(cache) == cache_before, f"{case.name}: the cache changed"
                assert not cold.exists()
                assert not pulled.exists()
                assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
                assert _raw_pointer(snapshots) == pointer_now, f"{case.name}: pointer moved"
                assert snapshots.backend.list_keys("") == keys_now, f"{case.name}: keys changed"
                locks.acquire(lease_name(snapshots), ttl=5).release()  # released after refusing
            finally:
                set_bytes(snapshots, case.key, original)
        # and with every damage undone, the same cache compacts and publishes the head
        assert checkpoint(cache) == world.first
        result = compact(store, snapshots, locks, world.deltas, cache)
        assert (result.published, result.position) == (False, world.head)  # already published
        assert checkpoint(cache) == world.head
    record_case(f"malformed/snapshots/{backend}", refusals=refusals, crashes=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_published_or_nothing_low_enough_is_no_snapshot(
    backend: str, request: pytest.FixtureRequest, world: World, tmp_path: Path
) -> None:
    snapshots, _ = snapshot_site(request, backend, tmp_path)
    with pytest.raises(NoSnapshot, match="no published snapshot"):
        restore(snapshots, tmp_path / "pulled")
    publish_snapshot(world, snapshots, world.first, token=1)
    with pytest.raises(NoSnapshot, match=f"at or below position {world.first - 1}"):
        restore(snapshots, tmp_path / "pulled", position=world.first - 1)
    assert not (tmp_path / "pulled").exists()
    record_case(f"malformed/snapshots/{backend}", refusals=2, crashes=0)


# --------------------------------------------------------------------------- deltas


def run_of_layout(world: World, layout: str) -> tuple[str, str]:
    """(location, collection) of a world delta in ``layout``, and its file to truncate."""
    for index, run in enumerate(world.history.runs):
        if ("tarball" if index % 2 else "directory") == layout and run.words:
            return run.words_delta, "words"
    raise AssertionError(f"no {layout} delta with words")


def delta_file(root: Path, location: str, layout: str) -> Path:
    base = root / location
    return base / (TARBALL_NAME if layout == "tarball" else "chroma.sqlite3")


@pytest.mark.parametrize("layout", ["directory", "tarball"])
def test_a_truncated_delta_is_refused_or_reads_exactly_as_it_was(
    layout: str, world: World, tmp_path: Path
) -> None:
    """Cut a delta's file (chroma.sqlite3 or delta.tar.gz) at many points: each read either
    refuses it (DeltaError naming it) or, where the cut only took bytes nothing reads (free
    pages, the gzip trailer), gives back exactly the original records. Never anything else."""
    location, collection = run_of_layout(world, layout)
    shutil.copytree(world.root / location, tmp_path / location)
    deltas = DeltaSources(str(tmp_path))
    intact = deltas.read(location, collection)
    victim = delta_file(tmp_path, location, layout)
    original = victim.read_bytes()
    step = max(1, len(original) // TRUNCATION_POINTS)
    cuts = sorted({*range(0, len(original), step), len(original) // 2, len(original) - 1})
    refused = same = 0
    for cut in cuts:
        victim.write_bytes(original[:cut])
        try:
            read = deltas.read(location, collection)
        except DeltaError as error:
            message = str(error)
            assert location in message
            refused += 1
            continue
        assert read.digest == intact.digest, f"cut at {cut} of {len(original)} read other records"
        same += 1
    # the cuts that read intact are the few that only took unread bytes: a few percent
    harmless = max(8, len(cuts) // 20)
    assert refused >= len(cuts) - harmless, f"only {refused} of {len(cuts)} cuts were refused"
    record_case(
        f"malformed/deltas/truncated-{layout}",
        refusals=refused,
        intact_reads=same,
        cuts=len(cuts),
        crashes=0,
    )


@pytest.mark.parametrize("layout", ["directory", "tarball"])
def test_a_truncated_delta_stops_catch_up_and_compaction_where_they_were(
    layout: str, world: World, tmp_path: Path
) -> None:
    # a new embedding run whose delta is truncated, then more changes after it
    url = world.store_copy(tmp_path / "events.db")
    template = next(
        (record, run)
        for record, run in zip(
            [
                r
                for r, i in zip(world.history.records, world.history.intents, strict=True)
                if i == "run_insert"
            ],
            world.history.runs,
            strict=True,
        )
        if run.words
    )
    record, run = copy.deepcopy(template[0]), template[1]
    run_id = f"truncated-{layout}"
    lines, words = f"deltas/{run_id}/lines", f"deltas/{run_id}/words"
    image = record["dynamodb"]["NewImage"]
    sk = f"RECEIPT#{run.receipt_id:05d}#COMPACTION_RUN#{run_id}"
    record["dynamodb"]["Keys"]["SK"] = image["SK"] = {"S": sk}
    image["run_id"] = {"S": run_id}
    image["lines_delta_prefix"], image["words_delta_prefix"] = {"S": lines}, {"S": words}
    record["eventID"] = f"run-{run_id}"
    record["dynamodb"]["SequenceNumber"] = "9" * 39
    shutil.copytree(world.root / "deltas", tmp_path / "deltas")
    write_run_deltas(
        msgspec.structs.replace(run, run_id=run_id, lines_delta=lines, words_delta=words),
        tmp_path,
        dimension=DIMENSION,
        layout=layout,  # type: ignore[arg-type]
    )
    victim = delta_file(tmp_path, words, layout)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    later = json.loads(_valid_label_record("after-the-run", sequence="9" * 40))
    deltas = DeltaSources(str(tmp_path))

    local_store = open_snapshot_store(str(tmp_path / "store"))
    locks = FileLeases(tmp_path / "locks")
    cache = world.copy_snapshot(world.head, tmp_path / "cache")
    with open_store(url) as store:
        assert compact(store, local_store, locks, deltas, cache).published  # pointer at head
        pointer_before = local_store.backend.read_pointer()
        keys_before = local_store.backend.list_keys("")
        digest_before = snapshot_digest(cache).digest
        summary = ingest(
            store,
            [
                InputRecord("run", msgspec.json.encode(record)),
                InputRecord("later", msgspec.json.encode(later)),
            ],
        )
        assert summary.appended == 2
        run_position = world.head + 1
        assert store.head() > run_position

        def refused(action: Callable[[], object]) -> None:
            with pytest.raises(ProjectionStopped) as caught:
                action()
            error = caught.value.problem.error
            assert isinstance(error, DeltaError)
            message = str(caught.value)
            for name in (words, run_id, "words", f"log position {run_position}"):
                assert name in message, f"{message!r} does not name {name}"

        other = world.copy_snapshot(world.head, tmp_path / "other")
        with open_snapshot(other, create=False) as snapshot:
            refused(lambda: catch_up(store, snapshot, deltas))
            assert (snapshot.state.checkpoint, snapshot.state.inflight_to) == (world.head, None)
        assert snapshot_digest(other).digest == digest_before
        refused(lambda: compact(store, local_store, locks, deltas, cache))
        # (Chroma rewrites its files' bytes whenever it is opened: compare content instead)
        assert checkpoint(cache) == world.head
        assert snapshot_digest(cache).digest == digest_before
        assert local_store.backend.read_pointer() == pointer_before
        assert local_store.backend.list_keys("") == keys_before
    record_case(f"malformed/deltas/truncated-{layout}", refusals=2, crashes=0)


@pytest.fixture(autouse=True)
def _no_leftover_stream_store() -> Iterator[None]:
    yield
    lambdas.stream_processor._store.drop()
