"""The synthetic history generator: realistic, self-consistent, deterministic stream records.

A history is replayed against a model table here, so each check states a property the real
DynamoDB stream has (old images chain, cascades delete children first, sequence numbers grow)
and would catch a generator that merely looks plausible.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec
import pytest

from receipt_events.changes import Skipped, Unchanged
from receipt_events.events import LABEL_FIELDS, ReceiptRemoved
from receipt_events.ingest import Outcome, classify, ingest
from receipt_events.keys import LabelKey, LineKey, PlaceKey, ReceiptKey, WordKey, parse_key
from receipt_events.records import InputRecord, parse_record, read_input
from receipt_events.store import ParkedRecord, open_store
from synthetic.history import (
    CORRUPTIONS,
    EVENT_INTENTS,
    INTENT_OUTCOMES,
    INTENTS,
    LABELS,
    History,
    HistoryConfig,
    RunContent,
    config_for_records,
    corrupt_lines,
    generate_history,
    to_jsonl,
)

CONFIG = HistoryConfig(seed=7, receipts=40)


@pytest.fixture(scope="module")
def history() -> History:
    return generate_history(CONFIG)


@pytest.fixture(scope="module")
def jsonl(history: History) -> bytes:
    return to_jsonl(history.records)


def key_of(record: dict[str, Any]) -> tuple[str, str]:
    keys = record["dynamodb"]["Keys"]
    return keys["PK"]["S"], keys["SK"]["S"]


def originals(history: History) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Records that are not redeliveries, with their index and intent, in stream order."""
    for index, (record, intent) in enumerate(zip(history.records, history.intents, strict=True)):
        if intent != "redelivery":
            yield index, record, intent


def outcome_name(outcome: Outcome) -> str:
    if isinstance(outcome, Skipped):
        return f"skipped:{outcome.kind}"
    if isinstance(outcome, Unchanged):
        return "unchanged"
    if isinstance(outcome, ParkedRecord):
        return "parked"
    return type(outcome).__name__


def classify_record(record: dict[str, Any]) -> Outcome:
    return classify(InputRecord("test", msgspec.json.encode(record)))


# -- determinism --------------------------------------------------------------------------------


def test_same_config_gives_identical_bytes_and_other_seeds_differ() -> None:
    config = HistoryConfig(seed=3, receipts=6)
    first = to_jsonl(generate_history(config).records)
    assert first == to_jsonl(generate_history(config).records)
    other = to_jsonl(generate_history(HistoryConfig(seed=4, receipts=6)).records)
    assert other != first
    assert generate_history(config) == generate_history(config)  # intents and runs too


def test_same_bytes_in_other_processes_whatever_the_hash_seed() -> None:
    script = (
        "import hashlib, sys\n"
        "from synthetic.history import HistoryConfig, generate_history, to_jsonl\n"
        "h = generate_history(HistoryConfig(seed=11, receipts=5))\n"
        "sys.stdout.write(hashlib.sha256(to_jsonl(h.records)).hexdigest())\n"
    )
    here = hashlib.sha256(
        to_jsonl(generate_history(HistoryConfig(seed=11, receipts=5)).records)
    ).hexdigest()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, check=True, text=True
        )
        assert done.stdout == here


# -- the envelope AWS delivers ------------------------------------------------------------------


def test_every_record_parses_and_has_the_aws_envelope(history: History, jsonl: bytes) -> None:
    inputs = read_input(jsonl, "history.jsonl")
    assert len(inputs) == len(history.records) > 1000
    arn = (
        f"arn:aws:dynamodb:{CONFIG.region}:123456789012:table/{CONFIG.table}"
        "/stream/2026-01-01T00:00:00.000"
    )
    for item, record in zip(inputs, history.records, strict=True):
        parsed = parse_record(item.raw)
        assert parsed.source.event_id == record["eventID"]
        assert re.fullmatch(r"[0-9a-f]{32}", record["eventID"])
        assert record["eventName"] in ("INSERT", "MODIFY", "REMOVE")
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == CONFIG.region
        assert record["eventSourceARN"] == arn
        body = record["dynamodb"]
        assert re.fullmatch(r"[1-9][0-9]{20,}", body["SequenceNumber"])
        assert type(body["ApproximateCreationDateTime"]) is int
        assert type(body["SizeBytes"]) is int
        assert 50 < body["SizeBytes"] < 400_000  # DynamoDB's item limit
        assert body["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_image_presence_follows_the_event_name(history: History) -> None:
    names: Counter[Any] = Counter()
    for record in history.records:
        body = record["dynamodb"]
        name = record["eventName"]
        names[name] += 1
        assert ("NewImage" in body) == (name in ("INSERT", "MODIFY"))
        assert ("OldImage" in body) == (name in ("MODIFY", "REMOVE"))
        pk, sk = key_of(record)
        assert set(body["Keys"]) == {"PK", "SK"}
        for image in (body.get("NewImage"), body.get("OldImage")):
            if image is not None:
                assert image["PK"] == {"S": pk}
                assert image["SK"] == {"S": sk}
                assert "TYPE" in image
    assert min(names.values()) > 10


def test_sequence_numbers_and_clock_only_move_forward(history: History) -> None:
    sequences: list[int] = []
    times: list[int] = []
    per_item: dict[tuple[str, str], int] = {}
    for _, record, _ in originals(history):
        sequence = int(record["dynamodb"]["SequenceNumber"])
        key = key_of(record)
        assert sequence > per_item.get(key, -1)
        per_item[key] = sequence
        sequences.append(sequence)
        times.append(record["dynamodb"]["ApproximateCreationDateTime"])
    gaps = [b - a for a, b in itertools.pairwise(sequences)]
    assert min(gaps) > 0
    assert len(set(gaps)) > len(gaps) // 2  # random gaps, not a counter
    assert times == sorted(times)
    assert times[0] >= CONFIG.start_time
    assert len(set(times)) > 100  # the clock moves


def test_redeliveries_are_exact_copies_of_earlier_records(history: History) -> None:
    seen: dict[str, dict[str, Any]] = {}
    windows = []
    run = 0
    for record, intent in zip(history.records, history.intents, strict=True):
        if intent == "redelivery":
            assert seen[record["eventID"]] == record
            assert msgspec.json.encode(seen[record["eventID"]]) == msgspec.json.encode(record)
            run += 1
        else:
            assert record["eventID"] not in seen  # eventIDs are unique otherwise
            seen[record["eventID"]] = record
            if run:
                windows.append(run)
            run = 0
    copies = history.intents.count("redelivery")
    assert copies == round(CONFIG.redelivery_rate * len(seen))
    assert max(windows) > 1  # retried batches, not only single records


# -- items and their lifecycles -----------------------------------------------------------------


def test_each_item_history_chains_like_a_real_table(history: History) -> None:
    table: dict[tuple[str, str], dict[str, Any]] = {}
    modified = 0
    for _, record, _ in originals(history):
        key = key_of(record)
        body = record["dynamodb"]
        if record["eventName"] == "INSERT":
            assert key not in table
            table[key] = body["NewImage"]
            continue
        assert body["OldImage"] == table[key]
        if record["eventName"] == "MODIFY":
            assert body["NewImage"] != body["OldImage"]  # DynamoDB emits no no-op MODIFY
            table[key] = body["NewImage"]
            modified += 1
        else:
            del table[key]
    assert modified > 100


def _parent_exists(table: set[tuple[str, str]], pk: str, sk: str) -> bool:
    return (pk, sk.rsplit("#", 2)[0]) in table


def test_children_are_written_after_and_removed_before_their_parents(history: History) -> None:
    table: set[tuple[str, str]] = set()
    checked: Counter[Any] = Counter()
    for _, record, _ in originals(history):
        pk, sk = key_of(record)
        entity = parse_key(pk, sk)
        name = record["eventName"]
        if name == "INSERT":
            if isinstance(entity, LabelKey | WordKey | LineKey) or "#LETTER#" in sk:
                assert _parent_exists(table, pk, sk), f"{sk} written before its parent"
                checked["insert"] += 1
            table.add((pk, sk))
        elif name == "REMOVE":
            table.discard((pk, sk))
            if isinstance(entity, ReceiptKey | LineKey | WordKey):
                children = [s for p, s in table if p == pk and s.startswith(sk + "#")]
                assert not children, f"{sk} removed before {children[:3]}"
                checked[type(entity).__name__] += 1
    assert set(checked) == {"insert", "ReceiptKey", "LineKey", "WordKey"}


def test_entities_carry_the_real_attributes(history: History) -> None:
    by_type: dict[str, dict[str, Any]] = {}
    for record in history.records:
        image = record["dynamodb"].get("NewImage")
        if image is not None:
            by_type.setdefault(image["TYPE"]["S"], image)
    assert set(by_type) == {
        "IMAGE",
        "RECEIPT",
        "RECEIPT_LINE",
        "RECEIPT_WORD",
        "RECEIPT_LETTER",
        "RECEIPT_WORD_LABEL",
        "RECEIPT_PLACE",
        "RECEIPT_METADATA",
        "COMPACTION_RUN",
        "COMPACTION_LOCK",
    }
    word = by_type["RECEIPT_WORD"]
    assert set(word["bounding_box"]["M"]) == {"x", "y", "width", "height"}
    assert "N" in word["confidence"]
    assert "S" in word["embedding_status"]
    label = by_type["RECEIPT_WORD_LABEL"]
    assert label["validation_status"] == {"S": "PENDING"}
    assert label["GSI1PK"]["S"].startswith("LABEL#")
    assert len(label["GSI1PK"]["S"]) == 40
    for name in ("label_proposed_by", "reasoning", "timestamp_added"):
        assert "S" in label[name]
    metadata = by_type["RECEIPT_METADATA"]
    assert "SS" in metadata["matched_fields"]
    assert "S" in metadata["address"]
    assert "S" in metadata["merchant_name"]
    assert metadata["canonical_merchant_name"] == {"NULL": True}
    place = by_type["RECEIPT_PLACE"]
    assert "S" in place["formatted_address"]
    assert place["plus_code"] == {"NULL": True}
    run = by_type["COMPACTION_RUN"]
    assert run["lines_state"] == run["words_state"] == {"S": "PENDING"}
    assert "N" in run["receipt_id"]
    assert "S" in run["created_at"]
    lock = by_type["COMPACTION_LOCK"]
    assert re.fullmatch(r"LOCK#(lines|words)#chroma-(lines|words)-update", lock["PK"]["S"])
    assert lock["SK"] == {"S": "LOCK"}
    assert "N" in lock["expires"]


def test_optional_empty_strings_are_written_as_null(jsonl: bytes) -> None:
    assert b'{"S":""}' not in jsonl
    assert b'{"NULL":true}' in jsonl


def test_labels_statuses_and_times_are_realistic(history: History) -> None:
    transitions: Counter[Any] = Counter()
    end = history.records[-1]["dynamodb"]["ApproximateCreationDateTime"]
    for _, record, intent in originals(history):
        if not intent.startswith("label_") or intent == "label_remove":
            continue
        new = record["dynamodb"]["NewImage"]
        entity = parse_key(*key_of(record))
        assert isinstance(entity, LabelKey)
        assert entity.label in LABELS
        added = datetime.fromisoformat(new["timestamp_added"]["S"]).timestamp()
        assert CONFIG.start_time <= added <= end + 1
        if record["eventName"] == "MODIFY":
            old = record["dynamodb"]["OldImage"]
            transitions[(old["validation_status"]["S"], new["validation_status"]["S"])] += 1
    for change in (
        ("PENDING", "VALID"),
        ("PENDING", "INVALID"),
        ("PENDING", "NEEDS_REVIEW"),
        ("NEEDS_REVIEW", "VALID"),
        ("VALID", "INVALID"),
        ("VALID", "VALID"),  # the GSI backfill: status unchanged
    ):
        assert transitions[change] > 0, change


def test_every_intent_occurs_and_receipts_interleave(history: History) -> None:
    assert set(history.intents) == set(INTENTS)
    assert set(INTENT_OUTCOMES) == set(INTENTS)
    owners = [
        key_of(record)[0] + key_of(record)[1][:13]
        for _, record, intent in originals(history)
        if intent not in ("image", "lock")
    ]
    switches = sum(a != b for a, b in itertools.pairwise(owners))
    assert switches > 5 * CONFIG.receipts  # several receipts in flight at once


def test_place_is_usually_written_before_the_first_run(history: History) -> None:
    first_place: dict[tuple[str, str], int] = {}
    first_run: dict[tuple[str, str], int] = {}
    labels_before_run = labels_after_run = 0
    for index, record, intent in originals(history):
        pk, sk = key_of(record)
        receipt = (pk, sk[:13])
        if intent == "place_insert":
            first_place.setdefault(receipt, index)
        elif intent == "run_insert":
            first_run.setdefault(receipt, index)
        elif intent == "label_insert":
            if receipt in first_run:
                labels_after_run += 1
            else:
                labels_before_run += 1
    before = sum(first_place[r] < first_run[r] for r in first_run)
    assert len(first_run) == CONFIG.receipts
    assert CONFIG.receipts * 0.6 < before < CONFIG.receipts  # usually, not always
    assert 0 < labels_before_run < labels_after_run


def test_sizes_stay_in_the_configured_ranges() -> None:
    config = HistoryConfig(
        seed=5,
        receipts=12,
        lines_per_receipt=(3, 4),
        words_per_line=(2, 2),
        letters_per_word=(1, 3),
    )
    history = generate_history(config)
    lines: Counter[Any] = Counter()
    words: Counter[Any] = Counter()
    letters: Counter[Any] = Counter()
    first_runs = {(r.image_id, r.receipt_id): r for r in reversed(history.runs)}
    for run in first_runs.values():
        lines[len(run.lines)] += 1
        for line in run.lines:
            words[sum(w.line_id == line.line_id for w in run.words)] += 1
    for _, record, intent in originals(history):
        if intent == "letter_insert":
            letters[key_of(record)[0] + key_of(record)[1].split("#LETTER#")[0]] += 1
    assert len(first_runs) == config.receipts
    assert set(lines) <= {3, 4}
    assert set(words) == {2}
    assert set(letters.values()) <= {1, 2, 3}
    assert images_of(history) == config.receipts // 2


def images_of(history: History) -> int:
    return history.intents.count("image")


def test_receipts_spread_over_about_half_as_many_images() -> None:
    assert images_of(generate_history(HistoryConfig(receipts=1))) == 1
    empty = generate_history(HistoryConfig(receipts=0))
    assert set(empty.intents) == {"image"}
    assert not empty.runs
    with pytest.raises(ValueError, match="lines_per_receipt"):
        generate_history(HistoryConfig(lines_per_receipt=(5, 2)))
    with pytest.raises(ValueError, match="removal_rate"):
        generate_history(HistoryConfig(removal_rate=1.5))


# -- what the pipeline makes of it ---------------------------------------------------------------


def test_intents_map_to_what_classify_says(history: History) -> None:
    by_event_id: dict[str, str] = {}
    checked: Counter[Any] = Counter()
    for record, intent in zip(history.records, history.intents, strict=True):
        outcome = classify_record(record)
        name = outcome_name(outcome)
        if intent == "redelivery":
            assert name == by_event_id[record["eventID"]]
            checked[intent] += 1
            continue
        by_event_id[record["eventID"]] = name
        assert name == INTENT_OUTCOMES[intent], (intent, outcome)
        checked[intent] += 1
        entity = parse_key(*key_of(record))
        if isinstance(outcome, Unchanged):
            assert outcome.kind == entity.kind
            if intent == "place_modify_irrelevant":
                assert isinstance(entity, PlaceKey)
        if intent == "receipt_remove":
            assert isinstance(outcome, ReceiptRemoved)
            assert isinstance(entity, ReceiptKey)
            assert (outcome.image_id, outcome.receipt_id) == (entity.image_id, entity.receipt_id)
        if intent == "label_modify":
            new = record["dynamodb"]["NewImage"]
            old = record["dynamodb"]["OldImage"]
            assert any(new.get(field) != old.get(field) for field in LABEL_FIELDS)
    assert set(checked) == set(INTENTS)
    assert set(EVENT_INTENTS) == {
        intent for intent, outcome in INTENT_OUTCOMES.items() if outcome[0].isupper()
    }


def test_ingest_appends_every_event_intent_once(history: History, jsonl: bytes) -> None:
    store = open_store("memory://")
    summary = ingest(store, read_input(jsonl, "history.jsonl"))
    intent_of = {r["eventID"]: i for _, r, i in originals(history)}
    redelivered = Counter(
        intent_of[r["eventID"]]
        for r, i in zip(history.records, history.intents, strict=True)
        if i == "redelivery"
    )
    events = sum(history.intents.count(intent) for intent in EVENT_INTENTS)
    unchanged = ("place_modify_irrelevant", "label_modify_irrelevant")
    assert summary.parked == 0
    assert summary.appended == events == store.head()
    # A retried batch carries every kind of record; only the event records are duplicates,
    # the others are skipped or unchanged again.
    assert summary.duplicates == sum(redelivered[intent] for intent in EVENT_INTENTS) > 0
    assert summary.unchanged == sum(history.intents.count(i) + redelivered[i] for i in unchanged)
    assert summary.duplicates + summary.unchanged + summary.skipped == len(history.records) - events
    assert summary.duplicates < history.intents.count("redelivery")


def test_runs_hold_exactly_the_lines_and_words_alive_at_their_time(history: History) -> None:
    table: dict[tuple[str, str], dict[str, Any]] = {}
    runs = iter(history.runs)
    per_receipt: Counter[Any] = Counter()
    for _, record, intent in originals(history):
        key = key_of(record)
        if record["eventName"] == "REMOVE":
            del table[key]
        else:
            table[key] = record["dynamodb"]["NewImage"]
        if intent != "run_insert":
            continue
        run = next(runs)
        new = record["dynamodb"]["NewImage"]
        assert run.run_id == new["run_id"]["S"] == key[1].rsplit("#", 1)[1]
        assert run.lines_delta == new["lines_delta_prefix"]["S"]
        assert run.lines_delta == f"{CONFIG.delta_root}/{run.run_id}/lines"
        assert run.words_delta == new["words_delta_prefix"]["S"]
        assert run.words_delta == f"{CONFIG.delta_root}/{run.run_id}/words"
        assert_run_matches_table(run, table)
        per_receipt[(run.image_id, run.receipt_id)] += 1
    assert next(runs, None) is None
    assert len(per_receipt) == CONFIG.receipts
    assert max(per_receipt.values()) >= 2  # a re-embed after line edits


def assert_run_matches_table(run: RunContent, table: dict[tuple[str, str], dict[str, Any]]) -> None:
    pk = f"IMAGE#{run.image_id}"
    lines, words = {}, {}
    for (item_pk, sk), image in table.items():
        if item_pk != pk:
            continue
        entity = parse_key(pk, sk)
        if isinstance(entity, LineKey) and entity.receipt_id == run.receipt_id:
            lines[entity.line_id] = image
        elif isinstance(entity, WordKey) and entity.receipt_id == run.receipt_id:
            words[(entity.line_id, entity.word_id)] = image
    assert [line.line_id for line in run.lines] == sorted(lines)
    assert [(w.line_id, w.word_id) for w in run.words] == sorted(words)
    assert run.lines
    assert run.words
    contents: list[tuple[Any, dict[str, Any]]] = [(c, lines[c.line_id]) for c in run.lines]
    contents += [(c, words[(c.line_id, c.word_id)]) for c in run.words]
    for content, image in contents:
        box = image["bounding_box"]["M"]
        assert content.text == image["text"]["S"]
        assert (content.x, content.y, content.width, content.height) == tuple(
            float(box[name]["N"]) for name in ("x", "y", "width", "height")
        )
        assert content.confidence == float(image["confidence"]["N"])


def test_runs_are_listed_in_the_order_their_inserts_appear(history: History) -> None:
    inserted = [
        r["dynamodb"]["NewImage"]["run_id"]["S"]
        for _, r, i in originals(history)
        if i == "run_insert"
    ]
    assert [run.run_id for run in history.runs] == inserted
    assert len(set(inserted)) == len(inserted)


# -- JSON Lines and corruption ------------------------------------------------------------------


def test_to_jsonl_writes_one_compact_object_per_line(history: History, jsonl: bytes) -> None:
    lines = jsonl.split(b"\n")
    assert lines[-1] == b""
    assert len(lines) - 1 == len(history.records)
    assert msgspec.json.decode(lines[0]) == history.records[0]
    assert lines[0] == msgspec.json.encode(history.records[0])  # compact, keys in AWS order
    assert list(history.records[0]) == [
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    ]


@pytest.mark.parametrize("count", [1, len(CORRUPTIONS), 17])
def test_corrupt_lines_parks_exactly_count_and_keeps_the_valid_ones(count: int) -> None:
    history = generate_history(HistoryConfig(seed=2, receipts=6))
    clean = to_jsonl(history.records)
    damaged = corrupt_lines(clean, count, seed=9)
    assert damaged == corrupt_lines(clean, count, seed=9)
    assert damaged != corrupt_lines(clean, count, seed=10)
    originals_set = set(clean.split(b"\n"))
    lines = [line for line in damaged.split(b"\n") if line]
    valid = [line for line in lines if line in originals_set]
    assert len(lines) - len(valid) == count

    summary = ingest(open_store("memory://"), read_input(damaged, "damaged.jsonl"))
    expected = ingest(open_store("memory://"), read_input(b"\n".join(valid), "valid.jsonl"))
    assert summary.parked == count
    assert summary.records == len(lines)
    assert summary.appended == expected.appended > 0
    assert summary.skipped == expected.skipped


def test_each_kind_of_corruption_parks_on_its_own() -> None:
    clean = to_jsonl(generate_history(HistoryConfig(seed=1, receipts=2)).records)
    originals_set = set(clean.split(b"\n"))
    damaged = corrupt_lines(clean, len(CORRUPTIONS), seed=4)
    bad = [line for line in damaged.split(b"\n") if line and line not in originals_set]
    assert len(bad) == len(CORRUPTIONS)
    kinds = set()
    for line in bad:
        outcome = classify(InputRecord("bad", line.strip()))
        assert isinstance(outcome, ParkedRecord), line[:200]
        kinds.add(outcome.error.split(":")[0])
    assert len(kinds) >= 3  # different failures, not one repeated


def test_corrupting_an_empty_input_still_reads_as_records() -> None:
    damaged = corrupt_lines(b"", 3, seed=0)
    summary = ingest(open_store("memory://"), read_input(damaged, "empty.jsonl"))
    assert summary.parked == summary.records == 3
    assert corrupt_lines(b"", 0, seed=0) == b""


# -- sizing ---------------------------------------------------------------------------------


def test_config_for_records_lands_within_twenty_percent() -> None:
    for target in (20_000, 100_000):
        config = config_for_records(target, seed=1)
        records = len(generate_history(config).records)
        assert 0.8 * target <= records <= 1.2 * target, (target, records)
    assert config_for_records(100_000).receipts > config_for_records(20_000).receipts
