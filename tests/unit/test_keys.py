"""Table keys to identities and back, Chroma ids, and every malformed-key error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receipt_events.keys import (
    CompactionRunKey,
    KeyFormatError,
    LabelKey,
    LineKey,
    OtherEntity,
    PlaceKey,
    ReceiptKey,
    WordKey,
    parse_chroma_id,
    parse_key,
)

UUID = "3f2b8c1e-9d4a-4b6e-8f1a-2c3d4e5f6a7b"
PK = f"IMAGE#{UUID}"


@pytest.mark.parametrize(
    ("sk", "expected", "kind"),
    [
        ("RECEIPT#00001", ReceiptKey(UUID, 1), "RECEIPT"),
        ("RECEIPT#00001#LINE#00003", LineKey(UUID, 1, 3), "RECEIPT_LINE"),
        ("RECEIPT#00001#LINE#00003#WORD#00002", WordKey(UUID, 1, 3, 2), "RECEIPT_WORD"),
        (
            "RECEIPT#00001#LINE#00003#WORD#00002#LABEL#TOTAL",
            LabelKey(UUID, 1, 3, 2, "TOTAL"),
            "RECEIPT_WORD_LABEL",
        ),
        (
            "RECEIPT#00012#LINE#00003#WORD#00002#LABEL#A#B",
            LabelKey(UUID, 12, 3, 2, "A#B"),
            "RECEIPT_WORD_LABEL",
        ),
        ("RECEIPT#00001#METADATA", PlaceKey(UUID, 1, "RECEIPT_METADATA"), "RECEIPT_METADATA"),
        ("RECEIPT#00001#PLACE", PlaceKey(UUID, 1, "RECEIPT_PLACE"), "RECEIPT_PLACE"),
        (
            "RECEIPT#00001#COMPACTION_RUN#8d1c2f3a-0000-4000-8000-000000000001",
            CompactionRunKey(UUID, 1, "8d1c2f3a-0000-4000-8000-000000000001"),
            "COMPACTION_RUN",
        ),
        ("RECEIPT#99999#LINE#12345", LineKey(UUID, 99999, 12345), "RECEIPT_LINE"),
        ("RECEIPT#123456", ReceiptKey(UUID, 123456), "RECEIPT"),
    ],
)
def test_every_entity_kind_parses(sk: str, expected: object, kind: str) -> None:
    key = parse_key(PK, sk)
    assert key == expected
    assert type(key) is type(expected)
    assert key.kind == kind
    assert key.sk == sk  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("pk", "sk", "kind"),
    [
        (PK, "IMAGE", "IMAGE"),
        (PK, "RECEIPT#00001#LINE#00003#WORD#00002#LETTER#00001", "RECEIPT_LETTER"),
        ("LOCK#chroma-lines", "LOCK", "LOCK"),
        ("lock#x", "LOCK", "lock"),  # the family as written: never conflated with IMAGE
        ("image#x", "IMAGE", "image"),
        ("JOB#42", "JOB", "JOB"),
        ("", "RECEIPT#00001", "EMPTY_PK"),
        ("#x", "RECEIPT#00001", "EMPTY_PK"),
        (PK, "LINE#00001", "IMAGE_OTHER"),
        (PK, "RECEIPT", "IMAGE_OTHER"),
        (PK, "", "IMAGE_OTHER"),
        (PK, "RECEIPT#00001#SECTION#00001", "RECEIPT_OTHER"),
        (PK, "RECEIPT#00001#PLACE#EXTRA", "RECEIPT_OTHER"),
        (PK, "RECEIPT#00001#METADATA#V2", "RECEIPT_OTHER"),
        (PK, "RECEIPT#00001#LINE#00003#LETTER#00001", "RECEIPT_LINE_OTHER"),
        (PK, "RECEIPT#00001#LINE#00003#WORD#00002#TAG#X", "RECEIPT_WORD_OTHER"),
    ],
)
def test_keys_that_never_produce_events_are_other_entities(pk: str, sk: str, kind: str) -> None:
    assert parse_key(pk, sk) == OtherEntity(kind=kind)


@pytest.mark.parametrize(
    ("pk", "sk", "message"),
    [
        ("IMAGE#", "RECEIPT#00001", "PK 'IMAGE#': expected IMAGE#<image id>"),
        ("IMAGE#a#b", "RECEIPT#00001", "PK 'IMAGE#a#b': expected IMAGE#<image id>"),
        (PK, "RECEIPT#abc", "SK 'RECEIPT#abc': receipt id 'abc' is not a number"),
        (PK, "RECEIPT#", "SK 'RECEIPT#': receipt id '' is not a number"),
        (PK, "RECEIPT#-0001", "SK 'RECEIPT#-0001': receipt id '-0001' is not a number"),
        (PK, "RECEIPT#+0001", "SK 'RECEIPT#+0001': receipt id '+0001' is not a number"),
        (PK, "RECEIPT# 0001", "SK 'RECEIPT# 0001': receipt id ' 0001' is not a number"),
        (
            PK,
            "RECEIPT#0000\u0661",
            "SK 'RECEIPT#0000\u0661': receipt id '0000\u0661' is not a number",
        ),
        (PK, "RECEIPT#00000", "SK 'RECEIPT#00000': receipt id must be positive"),
        (PK, "RECEIPT#00000#PLACE", "SK 'RECEIPT#00000#PLACE': receipt id must be positive"),
        (PK, "RECEIPT#00001#LINE", "SK 'RECEIPT#00001#LINE': LINE without a line id"),
        (PK, "RECEIPT#00001#LINE#", "SK 'RECEIPT#00001#LINE#': line id '' is not a number"),
        (PK, "RECEIPT#00001#LINE#3a", "SK 'RECEIPT#00001#LINE#3a': line id '3a' is not a number"),
        (PK, "RECEIPT#00001#LINE#00000", "SK 'RECEIPT#00001#LINE#00000': line id must be positive"),
        (
            PK,
            "RECEIPT#00001#LINE#00003#WORD",
            "SK 'RECEIPT#00001#LINE#00003#WORD': WORD without a word id",
        ),
        (
            PK,
            "RECEIPT#00001#LINE#00003#WORD#x",
            "SK 'RECEIPT#00001#LINE#00003#WORD#x': word id 'x' is not a number",
        ),
        (
            PK,
            "RECEIPT#00001#LINE#00003#WORD#00000",
            "SK 'RECEIPT#00001#LINE#00003#WORD#00000': word id must be positive",
        ),
        (
            PK,
            "RECEIPT#00001#LINE#00003#WORD#00002#LABEL",
            "SK 'RECEIPT#00001#LINE#00003#WORD#00002#LABEL': LABEL without a label name",
        ),
        (
            PK,
            "RECEIPT#00001#LINE#00003#WORD#00002#LABEL#",
            "SK 'RECEIPT#00001#LINE#00003#WORD#00002#LABEL#': LABEL without a label name",
        ),
        (
            PK,
            "RECEIPT#00001#COMPACTION_RUN",
            "SK 'RECEIPT#00001#COMPACTION_RUN': compaction run without a run id",
        ),
        (
            PK,
            "RECEIPT#00001#COMPACTION_RUN#",
            "SK 'RECEIPT#00001#COMPACTION_RUN#': compaction run without a run id",
        ),
    ],
)
def test_malformed_keys_raise_key_format_error(pk: str, sk: str, message: str) -> None:
    with pytest.raises(KeyFormatError) as caught:
        parse_key(pk, sk)
    assert str(caught.value) == message


def test_an_id_too_long_for_int_is_a_key_format_error() -> None:
    sk = "RECEIPT#" + "1" * 5000
    with pytest.raises(KeyFormatError) as caught:
        parse_key(PK, sk)
    assert str(caught.value) == f"SK {sk[:80]!r}: receipt id has too many digits"


def test_compaction_run_id_may_contain_hashes() -> None:
    key = parse_key(PK, "RECEIPT#00002#COMPACTION_RUN#a#b")
    assert key == CompactionRunKey(UUID, 2, "a#b")


def test_derived_keys() -> None:
    word = WordKey(UUID, 1, 3, 2)
    assert word.line == LineKey(UUID, 1, 3)
    assert word.receipt == ReceiptKey(UUID, 1)
    assert LabelKey(UUID, 1, 3, 2, "TOTAL").word == word
    assert PlaceKey(UUID, 7, "RECEIPT_PLACE").receipt == ReceiptKey(UUID, 7)
    assert CompactionRunKey(UUID, 7, "r").receipt == ReceiptKey(UUID, 7)
    assert ReceiptKey(UUID, 1).chroma_prefix == f"IMAGE#{UUID}#RECEIPT#00001"


def test_chroma_ids_render_zero_padded() -> None:
    assert LineKey(UUID, 1, 3).chroma_id == f"IMAGE#{UUID}#RECEIPT#00001#LINE#00003"
    assert WordKey(UUID, 1, 3, 2).chroma_id == f"IMAGE#{UUID}#RECEIPT#00001#LINE#00003#WORD#00002"


@pytest.mark.parametrize(
    "key", [LineKey(UUID, 1, 3), WordKey(UUID, 1, 3, 2), WordKey(UUID, 4, 55, 666)]
)
def test_parse_chroma_id_round_trips(key: LineKey | WordKey) -> None:
    parsed = parse_chroma_id(key.chroma_id)
    assert parsed == key
    assert type(parsed) is type(key)


@pytest.mark.parametrize(
    ("chroma_id", "message"),
    [
        (
            f"IMAGE#{UUID}",
            f"Chroma id 'IMAGE#{UUID}': expected IMAGE#<id>#RECEIPT#...",
        ),
        (
            f"IMAGE#{UUID}#RECEIPT#00001",
            f"Chroma id 'IMAGE#{UUID}#RECEIPT#00001' names neither a line nor a word",
        ),
        (
            f"IMAGE#{UUID}#RECEIPT#00001#LINE#00003#WORD#00002#LABEL#TOTAL",
            f"Chroma id 'IMAGE#{UUID}#RECEIPT#00001#LINE#00003#WORD#00002#LABEL#TOTAL' "
            "names neither a line nor a word",
        ),
        (
            "LOCK#x#RECEIPT#00001#LINE#00003",
            "Chroma id 'LOCK#x#RECEIPT#00001#LINE#00003' names neither a line nor a word",
        ),
        (
            f"IMAGE#{UUID}#RECEIPT#1#LINE#3",
            f"Chroma id 'IMAGE#{UUID}#RECEIPT#1#LINE#3' is not in canonical zero-padded form",
        ),
        (
            f"IMAGE#{UUID}#RECEIPT#00001#LINE#000003",
            f"Chroma id 'IMAGE#{UUID}#RECEIPT#00001#LINE#000003' "
            "is not in canonical zero-padded form",
        ),
        (
            f"IMAGE#{UUID}#RECEIPT#00001#LINE#x",
            "SK 'RECEIPT#00001#LINE#x': line id 'x' is not a number",
        ),
        ("IMAGE##RECEIPT#00001#LINE#00003", "PK 'IMAGE#': expected IMAGE#<image id>"),
    ],
)
def test_parse_chroma_id_errors(chroma_id: str, message: str) -> None:
    with pytest.raises(KeyFormatError) as caught:
        parse_chroma_id(chroma_id)
    assert str(caught.value) == message


# -- properties ----------------------------------------------------------------------------------

image_ids = st.one_of(
    st.uuids().map(str), st.text(st.characters(codec="utf-8", exclude_characters="#"), min_size=1)
)
ids = st.integers(min_value=1, max_value=10**7)
labels = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
run_ids = st.text(min_size=1, max_size=20)
entity_keys = st.one_of(
    st.builds(ReceiptKey, image_ids, ids),
    st.builds(LineKey, image_ids, ids, ids),
    st.builds(WordKey, image_ids, ids, ids, ids),
    st.builds(LabelKey, image_ids, ids, ids, ids, labels),
    st.builds(PlaceKey, image_ids, ids, st.sampled_from(["RECEIPT_METADATA", "RECEIPT_PLACE"])),
    st.builds(CompactionRunKey, image_ids, ids, run_ids),
)


@settings(max_examples=300, deadline=None)
@given(entity_keys)
def test_key_to_sk_to_parse_key_round_trips(key: object) -> None:
    parsed = parse_key(f"IMAGE#{key.image_id}", key.sk)  # type: ignore[attr-defined]
    assert parsed == key
    assert type(parsed) is type(key)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.builds(LineKey, image_ids, ids, ids), st.builds(WordKey, image_ids, ids, ids, ids))
)
def test_chroma_id_round_trips(key: LineKey | WordKey) -> None:
    assert parse_chroma_id(key.chroma_id) == key
