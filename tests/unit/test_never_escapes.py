"""Property: nothing a stream can deliver escapes ingest; bad records are parked, good ones logged.

Garbage (arbitrary JSON values, arbitrary bytes) and broken variants of valid records (a key
dropped, a type changed, the bytes truncated, invalid UTF-8, a typed attribute's tag swapped,
huge strings), each with a fresh eventID, are interleaved with valid records and ingested into
a memory store. Ingest must return normally, the counts must add up, every bad record must be
parked with a reason, and every valid record around them must be in the log, in order.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receipt_events.ingest import ingest
from receipt_events.records import InputRecord, UnreadableInput, read_input
from receipt_events.store import open_store
from tests.support.json_values import any_json
from tests.unit.records_factory import (
    make_record,
    sk_label,
    sk_metadata,
    sk_place,
    sk_receipt,
    sk_run,
    sk_word,
)

# Valid records that each produce an event. String values hold spaces and "!" so they are
# never valid base64 or numbers when a mutation re-tags them.
TEMPLATES: list[dict[str, Any]] = [
    make_record(
        "INSERT",
        sk=sk_place(),
        new_image={"merchant_name": "Cafe Luna!", "formatted_address": "1 Main St!"},
    ),
    make_record(
        "MODIFY",
        sk=sk_metadata(2),
        new_image={"merchant_name": "Cafe Sol!", "address": "2 Side St!"},
        old_image={"merchant_name": "Cafe Old!"},
    ),
    make_record(
        "INSERT",
        sk=sk_label("TOTAL"),
        new_image={"reasoning": "big number!", "validation_status": "VALID"},
    ),
    make_record(
        "INSERT",
        sk=sk_run("run 1"),
        new_image={"lines_delta_prefix": "s3://b/l x!", "words_delta_prefix": "s3://b/w x!"},
    ),
    make_record("REMOVE", sk=sk_receipt(3)),
    make_record("REMOVE", sk=sk_word(1, 2, 3)),
]
WRITES = [i for i, t in enumerate(TEMPLATES) if "NewImage" in t["dynamodb"]]

json_text = st.text(st.characters(codec="utf-8"), max_size=12)
json_values = any_json(json_text, max_size=4, max_leaves=10)
not_str = st.one_of(st.none(), st.integers(), st.booleans(), st.lists(st.integers(), max_size=2))
not_object = st.one_of(st.none(), st.integers(), json_text, st.lists(st.integers(), max_size=2))

# (path, wrong values): each replacement makes the record invalid whatever the template.
RETYPES: list[tuple[tuple[str, ...], st.SearchStrategy[Any]]] = [
    (("eventID",), st.one_of(not_str, st.just(""))),
    (
        ("eventName",),
        st.one_of(not_str, json_text.filter(lambda s: s not in ("INSERT", "MODIFY", "REMOVE"))),
    ),
    (("awsRegion",), st.one_of(st.integers(), st.booleans(), st.lists(json_text, max_size=2))),
    (("dynamodb",), not_object),
    (("dynamodb", "Keys"), not_object),
    (
        ("dynamodb", "SequenceNumber"),
        st.one_of(not_str, json_text.filter(lambda s: not (s.isascii() and s.isdigit()))),
    ),
    (
        ("dynamodb", "NewImage"),
        st.one_of(st.integers(), json_text, st.lists(st.none(), max_size=2)),
    ),
    (("dynamodb", "OldImage"), st.one_of(st.booleans(), json_text)),
    (("dynamodb", "ApproximateCreationDateTime"), st.one_of(st.booleans(), json_text)),
]
DROPS = [
    ("eventID",),
    ("eventName",),
    ("dynamodb",),
    ("dynamodb", "Keys"),
    ("dynamodb", "SequenceNumber"),
    ("dynamodb", "Keys", "PK"),
    ("dynamodb", "Keys", "SK"),
    ("region",),  # both awsRegion and eventSourceARN
    ("dynamodb", "NewImage"),  # only for templates that need it
]
BAD_TAGS = ["N", "BOOL", "NULL", "L", "M", "SS", "NS", "BS", "B", "X", "s"]

mutations = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(DROPS)),
    st.sampled_from(RETYPES).flatmap(
        lambda retype: st.tuples(st.just("retype"), st.just(retype[0]), retype[1])
    ),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(
        st.just("utf8"),
        st.floats(0, 1),
        st.sampled_from([0x80, 0xBF, 0xC0, 0xC1, 0xF5, 0xFE, 0xFF]),
    ),
    st.tuples(st.just("swap"), st.sampled_from(["keys", "new"]), st.sampled_from(BAD_TAGS)),
    st.tuples(
        st.just("huge"),
        st.sampled_from(["eventName", "SequenceNumber", "SK", "number"]),
        st.integers(5_000, 200_000),
    ),
)
entries = st.one_of(
    st.tuples(st.just("valid"), st.integers(0, len(TEMPLATES) - 1)),
    st.tuples(st.just("mutated"), st.integers(0, len(TEMPLATES) - 1), mutations),
    st.tuples(st.just("json"), json_values),
    st.tuples(st.just("bytes"), st.binary(max_size=64)),
)


def _set(record: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    parent = record
    for name in path[:-1]:
        parent = parent[name]
    parent[path[-1]] = value


def _mutate(template_index: int, mutation: tuple[Any, ...], event_id: str) -> bytes:
    record = copy.deepcopy(TEMPLATES[template_index])
    record["eventID"] = event_id
    body = record["dynamodb"]
    has_new_image = template_index in WRITES
    kind = mutation[0]
    if kind == "drop":
        path = mutation[1]
        if path == ("region",):
            del record["awsRegion"], record["eventSourceARN"]
        else:
            if path == ("dynamodb", "NewImage") and not has_new_image:
                path = ("dynamodb", "Keys")
            parent = record
            for name in path[:-1]:
                parent = parent[name]
            del parent[path[-1]]
    elif kind == "retype":
        _set(record, mutation[1], mutation[2])
    elif kind == "swap":
        image = body["NewImage"] if mutation[1] == "new" and has_new_image else body["Keys"]
        name = "SK" if image is body["Keys"] else next(n for n in image if n not in ("PK", "SK"))
        (value,) = image[name].values()
        image[name] = {mutation[2]: value}
    elif kind == "huge":
        size = mutation[2]
        if mutation[1] == "eventName":
            record["eventName"] = "INSERT" * size
        elif mutation[1] == "SequenceNumber":
            body["SequenceNumber"] = "1" * size + "x"
        elif mutation[1] == "SK":
            body["Keys"]["SK"] = {"S": "RECEIPT#" + "9" * size}
        else:
            body["Keys"]["total"] = {"N": "1" * size}
    raw = msgspec.json.encode(record)
    if kind == "truncate":
        return raw[: int(mutation[1] * len(raw))]
    if kind == "utf8":
        at = int(mutation[1] * len(raw))
        return raw[:at] + bytes([mutation[2]]) + raw[at:]
    return raw


def _parked_identity(raw: bytes) -> str:
    """A parked record is kept once, by its eventID when readable, else by its bytes."""
    try:
        document = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        document = None
    event_id = document.get("eventID") if isinstance(document, dict) else None
    if isinstance(event_id, str) and event_id:
        return event_id
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(entries, min_size=1, max_size=12), st.integers(1, 6))
def test_nothing_escapes_and_good_records_around_bad_ones_are_logged(
    plan: list[tuple[Any, ...]], batch_size: int
) -> None:
    inputs: list[InputRecord] = []
    valid_ids: list[str] = []
    bad: dict[str, InputRecord] = {}  # parked identity → first record with it
    bad_count = 0
    for index, entry in enumerate(plan):
        origin = f"plan:{index}"
        if entry[0] == "valid":
            record = copy.deepcopy(TEMPLATES[entry[1]])
            record["eventID"] = f"ok-{index}"
            record["dynamodb"]["SequenceNumber"] = str(1000 + index)
            inputs.append(InputRecord(origin, msgspec.json.encode(record)))
            valid_ids.append(f"ok-{index}")
            continue
        if entry[0] == "mutated":
            raw = _mutate(entry[1], entry[2], f"bad-{index}")
        elif entry[0] == "json":
            raw = msgspec.json.encode(entry[1])
        else:
            raw = entry[1]
        inputs.append(InputRecord(origin, raw))
        bad_count += 1
        bad.setdefault(_parked_identity(raw), inputs[-1])

    with open_store("memory://") as store:
        summary = ingest(store, inputs, batch_size=batch_size)

        assert summary.records == len(plan)
        total = (
            summary.appended
            + summary.duplicates
            + summary.unchanged
            + summary.skipped
            + summary.parked
        )
        assert total == summary.records
        assert summary.appended == len(valid_ids)
        assert (summary.parked, summary.duplicates) == (len(bad), bad_count - len(bad))
        assert (summary.skipped, summary.unchanged) == (0, 0)
        assert summary.head == len(valid_ids)

        assert [r.event.source.event_id for r in store.iter_events()] == valid_ids
        parked = store.parked_records()
        assert [p.parked_id for p in parked] == list(bad)
        for record in parked:
            assert record.error.strip(), record
            first = bad[record.parked_id]
            assert (record.origin, record.payload) == (first.origin, first.raw)


lines = st.one_of(
    st.sampled_from([msgspec.json.encode(t) for t in TEMPLATES]),
    json_values.map(msgspec.json.encode),
    st.binary(max_size=40),
    st.sampled_from([b"", b"\r", b"   ", b"{", b"}", b"[", b"]", b'"Records": [', b"\xef\xbb\xbf"]),
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.lists(lines, max_size=8).map(b"\n".join)))
def test_any_input_is_records_or_unreadable_and_its_records_ingest(data: bytes) -> None:
    unreadable: UnreadableInput | None = None
    try:
        records = read_input(data, "input")
    except UnreadableInput as error:
        unreadable, records = error, []
    if unreadable is not None:  # only a multi-line document broken past its first line
        assert unreadable.name == "input"
        assert 2 <= unreadable.line <= data.count(b"\n") + 1
        return
    for record in records:
        assert record.raw.strip() == record.raw
        assert record.raw in data
    with open_store("memory://") as store:
        summary = ingest(store, records)
    total = (
        summary.appended + summary.duplicates + summary.unchanged + summary.skipped + summary.parked
    )
    assert total == summary.records == len(records)
