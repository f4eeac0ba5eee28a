"""Running the projection on a history in temporary snapshot directories, and comparing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from projections.runner import RebuildResult, rebuild, snapshot_digest
from projections.snapshot_dir import open_snapshot
from receipt_chroma.digest import dump
from tests.properties.histories import History
from tests.properties.model import Contents


def rebuild_to(history: History, out: Path, to: int | None = None, **options: Any) -> str:
    """Rebuild into a fresh directory; return its digest (checked against ``snapshot_digest``)."""
    with history.open_store() as store:
        result: RebuildResult = rebuild(store, out, history.delta_source(), to=to, **options)
    expected = history.head if to is None else to
    assert result.position == expected, (result.position, expected)
    assert snapshot_digest(out).digest == result.digest  # the dump's digest == the kept one
    return result.digest


def digest_both_ways(path: Path) -> str:
    """The digest of a snapshot directory from a full dump, checked against the one its state
    kept as records were written (SPEC §7.4: the two must agree)."""
    dumped = snapshot_digest(path)
    with open_snapshot(path, create=False) as snapshot:
        kept = snapshot.state.digest()
    assert kept == dumped, f"kept {kept} != dumped {dumped}"
    return dumped.digest


def dump_snapshot(path: Path) -> Contents:
    with open_snapshot(path, create=False) as snapshot:
        dumped = dump(snapshot.chroma)
    return {
        collection: {r.id: (r.document, r.metadata, r.embedding) for r in records}
        for collection, records in dumped.items()
    }


def _canonical(metadata: dict[str, Any]) -> bytes:
    return msgspec.json.encode(metadata, order="sorted")


def _unit(embedding: bytes) -> np.ndarray:
    vector = np.frombuffer(embedding, dtype="<f4").astype(np.float64)
    return vector / np.linalg.norm(vector)


def assert_contents_equal(actual: Contents, expected: Contents, history: History) -> None:
    """Ids, documents and metadata exactly; embeddings as directions within 1e-6.

    Collections use cosine space, where Chroma stores the normalised vector (off by up to
    an ulp per element), so the comparison is between unit vectors.
    """
    problems: list[str] = []
    for collection in ("lines", "words"):
        got, want = actual.get(collection, {}), expected.get(collection, {})
        for record_id in sorted(set(got) - set(want)):
            problems.append(f"{collection}: unexpected {record_id} {got[record_id][:2]}")
        for record_id in sorted(set(want) - set(got)):
            problems.append(f"{collection}: missing {record_id} {want[record_id][:2]}")
        for record_id in sorted(set(got) & set(want)):
            (doc, meta, emb), (want_doc, want_meta, want_emb) = got[record_id], want[record_id]
            if doc != want_doc:
                problems.append(f"{collection} {record_id}: document {doc!r} != {want_doc!r}")
            if _canonical(meta) != _canonical(want_meta):  # types too: 1, 1.0 and True differ
                diff = {
                    key: (meta.get(key, "<absent>"), want_meta.get(key, "<absent>"))
                    for key in sorted(set(meta) | set(want_meta))
                    if _canonical({key: meta.get(key)}) != _canonical({key: want_meta.get(key)})
                }
                problems.append(f"{collection} {record_id}: metadata (got, want) {diff}")
            if not np.allclose(_unit(emb), _unit(want_emb), rtol=0, atol=1e-6):
                problems.append(f"{collection} {record_id}: embedding differs")
    report = ["contents differ from the model:", *problems, "history:", history.describe()]
    assert not problems, "\n".join(report)
