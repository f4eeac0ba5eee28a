"""The synthetic deltas' vectors (seeded stand-ins or the local model) and the demo's queries.

The fake vectors must stay byte for byte what they were (tests and benchmarks compare
digests of them); the model's deltas must record the model, so the projection knows which
model embeds a query. The demo run with the model is the judge that ``make demo`` shows real
answers: "grand total" must find the receipts' TOTAL words.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from projections.query import query_snapshot
from receipt_chroma import minilm
from receipt_chroma.deltas import LocalDeltaSource
from receipt_chroma.provenance import Provenance
from receipt_chroma.records import embedding_bytes
from receipt_cli.app import app
from synthetic.deltas import (
    FakeVectors,
    ModelVectors,
    deterministic_vector,
    run_records,
    write_run_deltas,
)
from synthetic.history import HistoryConfig, RunContent, generate_history
from tests.support.ci import in_ci

HIT = re.compile(r"^\s+(\d+\.\d{3})\s+'([^']*)'\s+(\d+)x")


@pytest.fixture(scope="module")
def runs() -> list[RunContent]:
    return generate_history(HistoryConfig(seed=3, receipts=4, delta_root="deltas")).runs


@pytest.fixture(scope="module")
def model() -> None:
    """The local model, loaded; skipped where it is not installed (failed under CI)."""
    try:
        minilm.MiniLmEmbeddingFunction().embed(["warm up"])
    except minilm.ModelUnavailable as error:
        if in_ci():
            pytest.fail(f"the local model must run under CI: {error}")
        pytest.skip(f"the local model is not installed: {error}")


def test_fake_vectors_are_the_seeded_vectors_byte_for_byte(runs: list[RunContent]) -> None:
    for run in runs:
        for dimension in (384, 8):
            default = run_records(run, dimension)
            explicit = run_records(run, vectors=FakeVectors(dimension))
            assert default == explicit
            for records in default.values():
                assert records, run.run_id
                for record in records:
                    expected = deterministic_vector(run.run_id, record.id, dimension)
                    assert record.embedding == embedding_bytes(expected)


def test_fake_deltas_record_no_model(runs: list[RunContent], tmp_path: Path) -> None:
    run = runs[0]
    write_run_deltas(run, tmp_path, dimension=8)
    delta = LocalDeltaSource(tmp_path).read(run.words_delta, "words")
    assert delta.provenance == Provenance()
    assert not delta.provenance.known
    written = run_records(run, 8)["words"]
    assert [(r.id, r.document, r.metadata) for r in delta.records] == [
        (r.id, r.document, r.metadata) for r in written
    ]
    # Chroma re-normalises a vector as it stores it: equal up to an ulp (docs/projection.md)
    np.testing.assert_allclose(
        np.stack([r.vector() for r in delta.records]),
        np.stack([r.vector() for r in written]),
        atol=1e-6,
    )


def test_model_deltas_record_the_model_and_hold_its_vectors(
    runs: list[RunContent], tmp_path: Path, model: None
) -> None:
    run = runs[0]
    write_run_deltas(run, tmp_path, layout="tarball", vectors=ModelVectors())
    source = LocalDeltaSource(tmp_path)
    for location, collection in ((run.lines_delta, "lines"), (run.words_delta, "words")):
        delta = source.read(location, collection)  # type: ignore[arg-type]
        assert delta.provenance == minilm.PROVENANCE
        assert delta.records
        vectors = np.stack([record.vector() for record in delta.records])
        assert vectors.dtype == np.float32
        assert vectors.shape[1] == minilm.DIMENSION
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        alone = minilm.MiniLmEmbeddingFunction().embed([r.document or "" for r in delta.records])
        # batched by length, padded differently: equal up to the last bits
        assert float(np.min(np.sum(vectors * alone, axis=1))) > 0.9999


def demo(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app, ["demo", "--workdir", str(tmp_path / "demo"), "--receipts", "3", *args]
    )


def hits(output: str, heading: str) -> list[tuple[float, str, int]]:
    """The (distance, text, count) rows printed under the query heading that starts so."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(heading))
    rows = []
    for line in lines[start + 1 :]:
        if line.strip().startswith(("words nearest", "lines nearest", "Try:")):
            break
        if found := HIT.match(line):
            rows.append((float(found[1]), found[2], int(found[3])))
    return rows


def test_demo_embeds_with_the_model_and_answers_grand_total_with_total(
    tmp_path: Path, model: None
) -> None:
    result = demo(tmp_path)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"texts embedded by {minilm.PROVENANCE.label} (384-d) in " in out
    assert f"each query embedded by {minilm.PROVENANCE.label}" in out
    grand_total = hits(out, "words nearest 'grand total'")
    assert grand_total, out
    assert grand_total[0][1] == "TOTAL", grand_total
    assert "SUBTOTAL" in [text for _, text, _ in grand_total], grand_total
    merchant = re.search(r"lines nearest '([^']+)'", out)
    assert merchant is not None, out
    assert hits(out, f"lines nearest '{merchant[1]}'"), out
    labelled = hits(out, "words nearest 'total' where")
    assert labelled, out
    assert f"receipt-events query {tmp_path / 'demo' / 'snapshot'} --text 'grand total'" in out

    # the same answers through the query API, with the metadata the projection keeps
    snapshot = tmp_path / "demo" / "snapshot"
    found = query_snapshot(snapshot, "grand total", n=3)
    assert found.model == minilm.PROVENANCE.label
    assert found.results[0].document == "TOTAL"
    where = {"valid_labels": {"$contains": "GRAND_TOTAL"}}
    for hit in query_snapshot(snapshot, "total", n=20, where=where).results:
        assert "GRAND_TOTAL" in hit.metadata["valid_labels"]
    # the merchant's own lines come first (its name printed either way, or its website)
    first_word = merchant[1].split()[0].casefold()
    for line in query_snapshot(snapshot, merchant[1], collection="lines", n=2).results:
        assert line.metadata["merchant_name"].split()[0].casefold() == first_word, line
        assert first_word in (line.document or "").casefold(), line


def test_demo_with_fake_embeddings_runs_and_says_no_query_can_be_embedded(
    tmp_path: Path,
) -> None:
    result = demo(tmp_path, "--fake-embeddings", "--dim", "8")
    assert result.exit_code == 0, result.output
    assert "texts given seeded random 8-d vectors, no model (--fake-embeddings)" in result.output
    assert "fake embeddings: no model made these vectors" in result.output
    assert "receipt-events query" not in result.output


def test_demo_refuses_another_dimension_for_the_model(tmp_path: Path) -> None:
    result = demo(tmp_path, "--dim", "16")
    assert result.exit_code == 2
    assert "--dim only sets the size of --fake-embeddings" in result.output
    assert not (tmp_path / "demo").exists()


def test_demo_without_the_model_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable() -> None:
        raise minilm.ModelUnavailable("the local embedding model is not installed")

    monkeypatch.setattr(minilm, "_model", unavailable)
    result = demo(tmp_path)
    assert result.exit_code == 2
    assert "not installed (or run the demo with --fake-embeddings)" in result.output
