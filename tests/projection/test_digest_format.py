"""The canonical digest's bytes are frozen (the digest: docs/projection.md).

Snapshots published by one version are verified by another, so the digest must not move
when a dependency does. It encodes metadata with msgspec's JSON encoder, which is only pinned
from below: these tests spell out the exact bytes, so a release that formats floats, escapes
or non-ASCII text differently fails here instead of making every published snapshot "differ".
If a change is intended, bump ``DIGEST_VERSION`` and say so in the release notes.
"""

from __future__ import annotations

import hashlib
import struct

from receipt_chroma.digest import DIGEST_VERSION, canonical_line, digest_records
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
        "valid_labels": ",TOTAL,",
    },
    embedding=struct.pack("<3f", 0.5, -1.0, 3.25),
)


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
        b'"valid_labels":",TOTAL,",'
        b'"z_small":0.1}]'  # keys sorted
    )
    assert canonical_line(AWKWARD) == expected


def test_the_digest_frames_position_collections_lines_and_embeddings_as_specified() -> None:
    plain = ChromaRecord(id="a", document=None, metadata={}, embedding=struct.pack("<f", 1.0))
    digest = digest_records({"lines": [plain], "words": [AWKWARD]}, position=42)

    hasher = hashlib.sha256(b"receipt-events canonical digest v1\n")
    hasher.update(b"position 42\n")
    hasher.update(b"collection lines\n")
    hasher.update(b'["a",null,{}]\n')
    hasher.update(b"\x04\x00\x00\x00" + b"\x00\x00\x80\x3f")  # byte length, then 1.0 as <f4
    hasher.update(b"collection words\n")
    hasher.update(canonical_line(AWKWARD) + b"\n")
    hasher.update(
        b"\x0c\x00\x00\x00" + b"\x00\x00\x00\x3f" + b"\x00\x00\x80\xbf" + b"\x00\x00\x50\x40"
    )
    assert DIGEST_VERSION == b"receipt-events canonical digest v1\n"
    assert digest.digest == f"sha256:{hasher.hexdigest()}"
    assert digest.counts == {"lines": 1, "words": 1}
    assert digest.position == 42
