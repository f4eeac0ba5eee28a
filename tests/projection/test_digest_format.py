"""The canonical digest's bytes are frozen (the format: docs/projection.md, version 2).

Snapshots published by one version are verified by another, so the digest must not move
when a dependency does. It encodes metadata with msgspec's JSON encoder (only pinned from
below) and sums SHAKE-128 lanes with numpy: these tests spell out the exact bytes in plain
Python and pin one digest as a literal, so a release that formats floats, escapes, non-ASCII
text or lane arithmetic differently fails here instead of making every published snapshot
"differ". If a change is intended, bump ``DIGEST_VERSION`` and say so in the release notes.
"""

from __future__ import annotations

import hashlib
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from receipt_chroma.digest import (
    DIGEST_VERSION,
    DIGEST_VERSION_LINE,
    canonical_line,
    digest_records,
    hash_of,
)
from receipt_chroma.lthash import LANES, LtHash
from receipt_chroma.records import ChromaRecord

AWKWARD = ChromaRecord(
    id="IMAGE#0b6f1c9e-4d1a-4c0e-9d8e-2f1a3b4c5d6e#RECEIPT#00001#LINE#00003#WORD#00002",
    document="caf\u00e9 \U0001f9fe",
    metadata={
        "z_small": 0.1,
        "a_tiny": 1e-7,
        "m_huge": 1e21,
        "b_flag": True,
        "n_count": 3,
        "c_text": 'tab\tquote" slash\\ ctl\x01 lt<',
        "g_exact": 123456789.125,
        "h_negative_zero": -0.0,
        "valid_labels": ["TOTAL"],
    },
    embedding=struct.pack("<3f", 0.5, -1.0, 3.25),
)
PLAIN = ChromaRecord(id="a", document=None, metadata={}, embedding=struct.pack("<f", 1.0))


def test_a_records_canonical_line_is_these_exact_bytes() -> None:
    expected = (
        b'["IMAGE#0b6f1c9e-4d1a-4c0e-9d8e-2f1a3b4c5d6e#RECEIPT#00001#LINE#00003#WORD#00002",'
        b'"caf\xc3\xa9 \xf0\x9f\xa7\xbe",'  # UTF-8 as is, no \u escapes
        b'{"a_tiny":1e-7,'  # shortest round-trip float form
        b'"b_flag":true,'
        b'"c_text":"tab\\tquote\\" slash\\\\ ctl\\u0001 lt<",'  # JSON escapes only
        b'"g_exact":123456789.125,'
        b'"h_negative_zero":-0.0,'
        b'"m_huge":1e21,'
        b'"n_count":3,'
        b'"valid_labels":["TOTAL"],'
        b'"z_small":0.1}]'  # keys sorted
    )
    assert canonical_line(AWKWARD) == expected


def test_a_records_hash_is_sha256_of_its_canonical_line_and_its_vectors_sha256() -> None:
    vector_sha = hashlib.sha256(b"\x00\x00\x00\x3f" + b"\x00\x00\x80\xbf" + b"\x00\x00\x50\x40")
    expected = hashlib.sha256(canonical_line(AWKWARD) + b"\n" + vector_sha.digest()).digest()
    assert hash_of(AWKWARD) == expected
    assert (
        hash_of(PLAIN)
        == hashlib.sha256(
            b'["a",null,{}]\n' + hashlib.sha256(b"\x00\x00\x80\x3f").digest()
        ).digest()
    )


def lanes_by_hand(*records: ChromaRecord) -> bytes:
    """SHAKE-128 of each record hash to 1024 little-endian 16-bit lanes, summed mod 2^16."""
    total = [0] * LANES
    for record in records:
        expanded = hashlib.shake_128(hash_of(record)).digest(2 * LANES)
        for lane, (value,) in enumerate(struct.iter_unpack("<H", expanded)):
            total[lane] = (total[lane] + value) % 65536
    return struct.pack(f"<{LANES}H", *total)


def test_the_digest_frames_version_position_and_each_collections_count_and_lanes() -> None:
    digest = digest_records({"lines": [PLAIN], "words": [AWKWARD, PLAIN]}, position=42)

    hasher = hashlib.sha256(b"receipt-events canonical digest v2\n")
    hasher.update(b"position 42\n")
    hasher.update(b"collection lines 1\n" + lanes_by_hand(PLAIN))
    hasher.update(b"collection words 2\n" + lanes_by_hand(AWKWARD, PLAIN))
    assert (DIGEST_VERSION, DIGEST_VERSION_LINE) == (2, b"receipt-events canonical digest v2\n")
    assert digest.digest == f"sha256:{hasher.hexdigest()}"
    assert digest.counts == {"lines": 1, "words": 2}
    assert digest.position == 42


def test_the_digest_of_the_example_is_this_literal() -> None:
    """Pinned once: moves only if hashlib, msgspec or numpy change the bytes."""
    digest = digest_records({"lines": [PLAIN], "words": [AWKWARD, PLAIN]}, position=42)
    assert (
        digest.digest == "sha256:7294ad41b3e913c21dccdf23635c0880c703b4589c9fe5222e87de18307f9060"
    )


def test_an_empty_snapshot_has_zero_lanes_and_counts() -> None:
    hasher = hashlib.sha256(DIGEST_VERSION_LINE + b"position 0\n")
    for name in ("lines", "words"):
        hasher.update(f"collection {name} 0\n".encode() + bytes(2 * LANES))
    assert digest_records({}, position=0).digest == f"sha256:{hasher.hexdigest()}"


def test_record_order_does_not_matter_but_every_field_does() -> None:
    base = digest_records({"words": [AWKWARD, PLAIN]}, position=1)
    assert digest_records({"words": [PLAIN, AWKWARD]}, position=1) == base
    changed = [
        ChromaRecord(AWKWARD.id + "X", AWKWARD.document, AWKWARD.metadata, AWKWARD.embedding),
        ChromaRecord(AWKWARD.id, None, AWKWARD.metadata, AWKWARD.embedding),
        ChromaRecord(AWKWARD.id, AWKWARD.document, {**AWKWARD.metadata, "n_count": 4}, b"\0" * 12),
        ChromaRecord(
            AWKWARD.id, AWKWARD.document, AWKWARD.metadata, struct.pack("<3f", 0.5, -1, 3)
        ),
    ]
    for record in changed:
        assert digest_records({"words": [record, PLAIN]}, position=1) != base
    assert digest_records({"lines": [AWKWARD, PLAIN]}, position=1) != base
    assert digest_records({"words": [AWKWARD, PLAIN]}, position=2) != base
    assert digest_records({"words": [AWKWARD, PLAIN, PLAIN]}, position=1) != base  # a multiset


# A write is (slot, version): slot names a record id, version what its record holds; None
# deletes it. The incremental hash follows each write as the projection does (subtract the
# old record's hash, add the new one's); the final one must equal the hash of the final dump.
writes = st.lists(
    st.tuples(st.integers(0, 7), st.none() | st.integers(0, 3)), min_size=0, max_size=60
)


def record(slot: int, version: int) -> bytes:
    return hash_of(
        ChromaRecord(f"id-{slot}", f"doc {version}", {"v": version}, struct.pack("<f", version))
    )


@settings(max_examples=200, deadline=None)
@given(writes, st.integers(1, 5))
def test_lanes_kept_through_any_writes_and_deletes_equal_the_final_dumps(
    sequence: list[tuple[int, int | None]], batch: int
) -> None:
    held: dict[int, int] = {}
    incremental = LtHash()
    for start in range(0, len(sequence), batch):  # applied in batches, as the projection does
        added: list[bytes] = []
        removed: list[bytes] = []
        for slot, version in sequence[start : start + batch]:
            if slot in held:
                removed.append(record(slot, held.pop(slot)))
            if version is not None:
                held[slot] = version
                added.append(record(slot, version))
        incremental.update(added, removed)
    assert incremental == LtHash.of(record(slot, version) for slot, version in held.items())
    assert incremental.count == len(held)
