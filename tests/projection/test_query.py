"""``query``: similarity queries on a snapshot directory, embedded by the recorded model.

The real-model tests build a small snapshot of two receipts whose deltas were embedded by the
local model (all-MiniLM-L6-v2) and written as real Chroma directories created with its
embedding function, as a producer writes them, so the snapshot records the model. The
refusals need no model: a snapshot of deltas that recorded none (the old way), or another.

The builders are in ``tests/support/model_snapshots.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from typer.testing import CliRunner, Result

from projections.errors import QueryError
from projections.query import QueryResult, WhereRefused, query_snapshot
from receipt_chroma import minilm
from receipt_chroma.client import CollectionName
from receipt_chroma.deltas import MemoryDeltaSource
from receipt_chroma.provenance import Provenance
from receipt_cli.app import app
from receipt_events.keys import LineKey
from receipt_events.store import open_store
from tests.projection.helpers import IMAGE, Log, checkpoint, project
from tests.support.model_snapshots import (
    BAKERY,
    BAKERY_TOTAL,
    GROCER_SUBTOTAL,
    GROCER_TOTAL,
    OTHER,
    ModelWorld,
    build_model_world,
    require_model,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelWorld]:
    require_model()
    built = build_model_world(tmp_path_factory.mktemp("model-world"))
    yield built
    built.store.close()


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.delenv("RECEIPT_EVENTS_STORE", raising=False)


def query(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["query", *(str(arg) for arg in args)], catch_exceptions=False)


def query_json(*args: str | Path) -> Any:
    result = query(*args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return json.loads(result.stdout)


def usage_error(result: Result) -> str:
    """The one-line message of an exit-2 refusal (nothing on stdout, no traceback)."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return str(result.stderr[len("error: ") : -1])


def documents(result: QueryResult) -> list[str | None]:
    return [hit.document for hit in result.results]


# -- the real model ------------------------------------------------------------------------


def test_the_nearest_words_to_total_are_the_total_words(world: ModelWorld) -> None:
    result = query_snapshot(world.snap, "total", n=5)
    assert result.model == minilm.PROVENANCE.label
    assert result.collection == "words"
    assert result.position == checkpoint(world.snap)[0] == world.store.head()
    assert len(result.results) == 5
    # the model is uncased: "total" is "TOTAL", so both TOTAL words come first, at ~0
    assert documents(result)[:2] == ["TOTAL", "TOTAL"]
    assert {hit.id for hit in result.results[:2]} == {GROCER_TOTAL, BAKERY_TOTAL}
    assert all(hit.distance < 1e-3 for hit in result.results[:2])
    distances = [hit.distance for hit in result.results]
    assert distances == sorted(distances)
    assert result.results[2].distance > 0.1  # then other words, well apart
    assert "MILK" not in documents(result)[:3]


def test_hits_carry_the_projected_metadata(world: ModelWorld) -> None:
    hits = {hit.id: hit for hit in query_snapshot(world.snap, "total", n=2).results}
    grocer = hits[GROCER_TOTAL].metadata
    assert grocer["merchant_name"] == "Corner Grocer"
    assert grocer["valid_labels"] == ["GRAND_TOTAL"]
    assert grocer["label_status"] == "validated"
    assert (grocer["line_id"], grocer["word_id"]) == (3, 2)
    bakery = hits[BAKERY_TOTAL].metadata
    assert bakery["merchant_name"] == "Bakery Bros"
    assert bakery["label_status"] == "auto_suggested"
    assert "valid_labels" not in bakery


def test_a_where_filter_keeps_only_the_records_it_matches(world: ModelWorld) -> None:
    unfiltered = query_snapshot(world.snap, "total", n=5)
    assert BAKERY_TOTAL in {hit.id for hit in unfiltered.results}
    where = {"valid_labels": {"$contains": "GRAND_TOTAL"}}
    filtered = query_snapshot(world.snap, "total", n=5, where=where)
    assert filtered.where == where
    assert [hit.id for hit in filtered.results] == [GROCER_TOTAL]
    validated = query_snapshot(world.snap, "total", n=5, where={"label_status": "validated"})
    assert {hit.id for hit in validated.results} == {GROCER_TOTAL, GROCER_SUBTOTAL}
    assert all(hit.metadata["label_status"] == "validated" for hit in validated.results)
    # an empty filter is no filter
    assert query_snapshot(world.snap, "total", n=5, where={}) == unfiltered


def test_the_lines_collection_and_a_merchant_filter(world: ModelWorld) -> None:
    lines = query_snapshot(world.snap, "grand total", collection="lines", n=3)
    assert documents(lines)[0] == "GRAND TOTAL 11.88"
    assert lines.results[0].id == LineKey(IMAGE, 1, 3).chroma_id
    bakery = query_snapshot(
        world.snap, "grand total", collection="lines", n=10, where={"merchant_name": "Bakery Bros"}
    )
    assert sorted(map(str, documents(bakery))) == sorted(BAKERY["lines"].values())
    assert documents(bakery)[0] == "TOTAL 5.59"


def test_query_json_for_scripts(world: ModelWorld) -> None:
    where = '{"valid_labels": {"$contains": "GRAND_TOTAL"}}'
    found = query_json(world.snap, "--text", "total", "-n", "5", "--where", where)
    assert set(found) >= {"results", "model", "collection", "position", "where", "text"}
    assert found["model"] == minilm.PROVENANCE.label
    assert found["where"] == json.loads(where)
    assert [hit["id"] for hit in found["results"]] == [GROCER_TOTAL]
    [hit] = found["results"]
    assert set(hit) == {"id", "document", "distance", "metadata"}
    assert hit["document"] == "TOTAL"
    assert isinstance(hit["distance"], float)
    assert hit["distance"] < 1e-3
    assert hit["metadata"]["valid_labels"] == ["GRAND_TOTAL"]

    everything = query_json(world.snap, "-t", "total", "--results", "3")
    assert [hit["document"] for hit in everything["results"]][:2] == ["TOTAL", "TOTAL"]
    assert len(everything["results"]) == 3
    assert everything["where"] is None
    lines = query_json(world.snap, "-t", "grand total", "--collection", "lines", "-n", "1")
    assert [hit["document"] for hit in lines["results"]] == ["GRAND TOTAL 11.88"]


def test_query_for_people_is_a_table_after_one_line_naming_what_was_searched(
    world: ModelWorld,
) -> None:
    result = query(world.snap, "--text", "total", "-n", "3")
    assert result.exit_code == 0, result.stderr
    first, *rows = result.stdout.splitlines()
    assert first == (
        f"words nearest to 'total' (embedded by {minilm.PROVENANCE.label}), "
        f"snapshot at position {world.store.head()}"
    )
    assert rows[0].split()[:4] == ["#", "distance", "document", "id"]
    assert rows[0].split()[4:] == ["merchant_name", "label_status", "valid_labels"]
    assert len(rows) == 4  # the header and three hits
    assert rows[1].split()[0] == "1"
    assert {rows[1].split()[2], rows[2].split()[2]} == {"TOTAL"}
    grocer = next(row for row in rows if GROCER_TOTAL in row)
    assert "Corner Grocer" in grocer
    assert "validated" in grocer
    assert "GRAND_TOTAL" in grocer

    filtered = query(world.snap, "-t", "total", "--where", '{"label_status": "validated"}')
    assert filtered.exit_code == 0, filtered.stderr
    assert filtered.stdout.splitlines()[0].endswith(', where {"label_status": "validated"}')
    assert BAKERY_TOTAL not in filtered.stdout
    assert GROCER_TOTAL in filtered.stdout

    nothing = query(world.snap, "-t", "total", "--where", '{"merchant_name": "Nobody"}')
    assert nothing.exit_code == 0, nothing.stderr
    assert nothing.stdout.splitlines()[1:] == ["no records match"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('{"label_status": ', "--where is not valid JSON"),
        ("label_status=validated", "--where is not valid JSON"),
        ('["validated"]', "--where must be a JSON object (Chroma's filter syntax), not a list"),
        ('"validated"', "--where must be a JSON object (Chroma's filter syntax), not a str"),
    ],
)
def test_a_where_that_is_not_a_json_object_exits_2_naming_the_option(
    world: ModelWorld, where: str, expected: str
) -> None:
    message = usage_error(query(world.snap, "--text", "total", "--where", where))
    assert message.startswith(expected), message
    assert "for example" in message


@pytest.mark.parametrize(
    "where",
    [
        '{"label_status": "validated", "merchant_name": "Corner Grocer"}',  # needs $and
        '{"label_status": {"$like": "valid%"}}',  # no such operator
        '{"$bad": 1}',  # refused by Chroma's engine, not its Python checks
    ],
)
def test_a_filter_chroma_refuses_exits_2_naming_the_option(world: ModelWorld, where: str) -> None:
    message = usage_error(query(world.snap, "--text", "total", "--where", where))
    assert message.startswith("--where: Chroma refused the filter "), message
    assert "$and" in message  # how to combine conditions
    with pytest.raises(WhereRefused):
        query_snapshot(world.snap, "total", where=json.loads(where))


def test_bad_usage_of_the_other_options_exits_2(world: ModelWorld, tmp_path: Path) -> None:
    message = usage_error(query(world.snap, "--text", "total", "--collection", "receipts"))
    assert message == "--collection must be 'lines' or 'words', not 'receipts'"
    assert query(world.snap, "--text", "total", "-n", "0").exit_code == 2
    assert query(world.snap).exit_code == 2  # --text is required
    message = usage_error(query(tmp_path / "nowhere", "--text", "total"))
    assert message == f"{tmp_path / 'nowhere'} is not a snapshot directory (no state.sqlite3)"
    (tmp_path / "a-file").write_text("x")
    message = usage_error(query(tmp_path / "a-file", "--text", "total"))
    assert "is not a snapshot directory" in message


def test_a_model_that_cannot_run_here_is_a_clear_refusal(
    world: ModelWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable() -> Any:
        raise minilm.ModelUnavailable("the local embedding model is not installed (test)")

    monkeypatch.setattr(minilm, "_model", unavailable)
    message = usage_error(query(world.snap, "--text", "total"))
    assert message == (
        "query: cannot embed the query: the local embedding model is not installed (test)"
    )


def test_vectors_of_another_dimension_than_the_recorded_model_are_refused(
    tmp_path: Path,
) -> None:
    """A producer that recorded the model but wrote other vectors (8-d) is found out before
    Chroma is asked, with a message that says so."""
    require_model()
    log = Log(open_store("memory://"))
    log.add(log.run("run-1", words={(1, 1): "TOTAL"}))  # 8-d stand-ins...
    deltas = log.deltas
    words = deltas.deltas[("run-1/words", "words")]
    deltas.put("run-1/words", "words", words, minilm.PROVENANCE)  # ...claiming the model
    project(log.store, tmp_path / "snap", deltas)
    with pytest.raises(QueryError, match=r"holds 8-d vectors, but its recorded model .* 384-d"):
        query_snapshot(tmp_path / "snap", "total")


# -- refusals: no model, an unknown model, another model -----------------------------------


def fake_snapshot(path: Path, provenance: Provenance | None) -> Path:
    """A snapshot of one run whose deltas (8-d stand-ins) recorded ``provenance`` (None:
    nothing, the old way)."""
    log = Log(open_store("memory://"))
    log.add(log.run("run-1", lines={1: "TOTAL 5.00"}, words={(1, 1): "TOTAL"}))
    deltas: MemoryDeltaSource = log.deltas
    if provenance is not None:
        for (location, collection), records in list(deltas.deltas.items()):
            deltas.put(location, cast(CollectionName, collection), records, provenance)
    project(log.store, path, deltas)
    return path


def test_an_unknown_model_snapshot_refuses_query_with_what_to_do(tmp_path: Path) -> None:
    snap = fake_snapshot(tmp_path / "snap", None)
    message = usage_error(query(snap, "--text", "total"))
    assert message.startswith(f"query: {snap}: the 'words' collection's vectors were made by an ")
    assert "unknown model (8-d; its deltas recorded no embedding function)" in message
    assert "Producers record the model by creating each delta's collection" in message
    assert "rebuild from such deltas" in message
    assert usage_error(query(snap, "--text", "total", "--json")) == message  # same for scripts
    lines = usage_error(query(snap, "--text", "total", "--collection", "lines"))
    assert "the 'lines' collection's vectors were made by an unknown model" in lines
    with pytest.raises(QueryError, match="unknown model") as raised:
        query_snapshot(snap, "total")
    assert not isinstance(raised.value, WhereRefused)


def test_a_snapshot_of_another_model_refuses_query_naming_that_model(tmp_path: Path) -> None:
    snap = fake_snapshot(tmp_path / "snap", OTHER)
    message = usage_error(query(snap, "--text", "total"))
    assert message == (
        f"query: {snap}: the 'words' collection was embedded by test_other_model other, which "
        f"this install cannot run (it runs {minilm.PROVENANCE.label}); embed the query with "
        "test_other_model other and query the collection with that vector"
    )
    with pytest.raises(QueryError, match="embedded by test_other_model other"):
        query_snapshot(snap, "total")


def test_a_collection_no_delta_reached_has_no_vectors_to_query(tmp_path: Path) -> None:
    log = Log(open_store("memory://"))
    log.add(log.place(merchant_name="Shop"))
    project(log.store, tmp_path / "snap", log.deltas)
    message = usage_error(query(tmp_path / "snap", "--text", "total"))
    assert "holds no vectors yet (no delta merged); run receipt-events project first" in message
