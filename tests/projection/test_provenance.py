"""Which model made a collection's vectors: from the deltas' Chroma configuration, through the
projection state and the published manifest, to ``status``; and a delta of another model held
back (or stopping the projection) instead of mixing two models' vectors in one collection.

Deltas are real Chroma directories, written the way producers write them: the collection
created with the embedding function that made the vectors (``receipt_chroma/provenance.py``),
or, the old way, with none. Only the round trip embeds with the real model; the other tests
write seeded 384-d stand-ins under a function's name, since what they check is what a delta
records, not what its vectors mean.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function
from typer.testing import CliRunner, Result

from projections.errors import ProjectionStopped
from projections.query import query_snapshot
from projections.restore import restore
from projections.snapshot_dir import open_snapshot
from receipt_chroma import minilm
from receipt_chroma.deltas import LocalDeltaSource
from receipt_chroma.provenance import Provenance
from receipt_chroma.snapshots import open_snapshot_store
from receipt_cli.app import app
from receipt_events.store import open_store
from tests.projection.helpers import Log, checkpoint, project, records, write_deltas
from tests.support.model_snapshots import (
    MINILM,
    OTHER,
    build_model_world,
    require_model,
    stand_in_vectors,
    write_run,
)

LABEL = minilm.PROVENANCE.label  # "receipt_events_minilm all-MiniLM-L6-v2-onnx-int8"


@register_embedding_function
class OtherModel(EmbeddingFunction[Documents]):
    """Another model's embedding function, as a producer would name it; never embeds here."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        raise AssertionError("the test never embeds with the other model")

    @staticmethod
    def name() -> str:
        return "test_other_model"

    def get_config(self) -> dict[str, Any]:
        return {"model_name": "other"}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OtherModel:
        return OtherModel()


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.delenv("RECEIPT_EVENTS_STORE", raising=False)


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def cli_json(*args: str | Path) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def model_line(stdout: str, collection: str) -> str:
    [line] = [line for line in stdout.splitlines() if re.match(rf"model {collection}\s", line)]
    return line


# -- the round trip ------------------------------------------------------------------------


def test_the_model_goes_from_the_deltas_to_the_state_the_manifest_and_status(
    tmp_path: Path,
) -> None:
    require_model()
    world = build_model_world(tmp_path)
    with open_snapshot(world.snap, create=False) as snapshot:
        state = snapshot.state
        for collection in ("lines", "words"):
            assert state.provenance(collection) == minilm.PROVENANCE
            assert state.dimension(collection) == minilm.DIMENSION
            assert state.delta_provenances(collection) == {LABEL: 2}

    dest = tmp_path / "published"
    pushed = cli_json("snapshot", "push", world.snap, dest)
    manifest = open_snapshot_store(str(dest)).manifest(pushed["key"])
    assert manifest.provenance == {"lines": minilm.PROVENANCE, "words": minilm.PROVENANCE}
    stored = json.loads((dest / "snapshots" / pushed["key"] / "manifest.json").read_text())
    assert stored["provenance"]["words"] == {  # as stored: the function and its config
        "function": minilm.FUNCTION_NAME,
        "config": minilm.model_config(),
    }

    # a copy restored from the store still knows its model, and answers queries with it
    restore(open_snapshot_store(str(dest)), tmp_path / "pulled")
    pulled = query_snapshot(tmp_path / "pulled", "total", n=1)
    assert (pulled.model, pulled.results[0].document) == (LABEL, "TOTAL")

    status = cli_json("status", "--snapshot-dir", world.snap, "--store", world.url)
    assert status["models"]["words"] == {
        "known": True,
        "label": LABEL,
        "function": minilm.FUNCTION_NAME,
        "config": minilm.model_config(),
        "dimension": 384,
        "deltas": {LABEL: 2},
    }
    assert status["models"]["lines"] == status["models"]["words"]
    human = cli("status", "--snapshot-dir", world.snap, "--store", world.url)
    assert human.exit_code == 0, human.stderr
    assert model_line(human.stdout, "words") == (
        f"model words    {LABEL} (384-d); deltas: 2 by {LABEL}"
    )
    world.store.close()


def test_deltas_written_the_old_way_record_an_unknown_model(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = open_store(sqlite_url)
    log = Log(store)
    log.add(log.run("run-1", lines={1: "TOTAL 5.00"}, words={(1, 1): "TOTAL"}))
    write_deltas(log.deltas, tmp_path / "deltas")  # open_chroma(create=True): no function
    assert LocalDeltaSource(tmp_path / "deltas").read("run-1/words", "words").provenance == (
        Provenance()
    )
    project(store, tmp_path / "snap", LocalDeltaSource(tmp_path / "deltas"))
    with open_snapshot(tmp_path / "snap", create=False) as snapshot:
        assert snapshot.state.provenance("words") == Provenance()
        assert not Provenance().known

    status = cli_json("status", "--snapshot-dir", tmp_path / "snap", "--store", sqlite_url)
    assert status["models"]["words"] == {
        "known": False,
        "label": "unknown",
        "function": "unknown",
        "config": {},
        "dimension": 8,
        "deltas": {"unknown": 1},
    }
    human = cli("status", "--snapshot-dir", tmp_path / "snap", "--store", sqlite_url)
    assert model_line(human.stdout, "words") == (
        "model words    unknown (8-d): the deltas recorded no model; query cannot embed for "
        "it; deltas: 1 by unknown"
    )
    pushed = cli_json("snapshot", "push", tmp_path / "snap", tmp_path / "published")
    manifest = open_snapshot_store(str(tmp_path / "published")).manifest(pushed["key"])
    assert manifest.provenance == {"lines": Provenance(), "words": Provenance()}
    store.close()


# -- one model per collection --------------------------------------------------------------


def mixed_log(tmp_path: Path) -> tuple[Log, Path, list[int]]:
    """run-1 (the model's), run-2 (its words delta made by another model), run-3 (the
    model's again), one receipt each; returns the log, the delta root and the positions."""
    log = Log(open_store("memory://"))
    root = tmp_path / "deltas"
    positions = log.add(
        write_run(
            log,
            root,
            "run-1",
            lines={1: "TOTAL 5.00"},
            words={(1, 1): "TOTAL"},
            embed=stand_in_vectors("run-1"),
        ),
        write_run(
            log,
            root,
            "run-2",
            receipt=2,
            lines={1: "TAX 0.40"},
            words={(1, 1): "TAX"},
            words_function=OtherModel(),
            embed=stand_in_vectors("run-2"),
        ),
        write_run(
            log,
            root,
            "run-3",
            receipt=3,
            lines={1: "MILK 2.49"},
            words={(1, 1): "MILK"},
            embed=stand_in_vectors("run-3"),
        ),
    )
    assert LocalDeltaSource(root).read("run-2/words", "words").provenance == OTHER
    return log, root, positions


def ids(path: Path, collection: str) -> list[str]:
    return sorted(records(path)[collection])


def test_a_delta_of_another_model_is_held_back_and_its_records_stay_out(tmp_path: Path) -> None:
    log, root, positions = mixed_log(tmp_path)
    snap = tmp_path / "snap"
    result = project(log.store, snap, LocalDeltaSource(root), policy="hold")
    assert result.held_deltas == 1
    assert checkpoint(snap) == (positions[-1], None)  # went on past it
    with open_snapshot(snap, create=False) as snapshot:
        state = snapshot.state
        [held] = state.held_deltas()
        assert (held.run_id, held.collection, held.location, held.position) == (
            "run-2",
            "words",
            "run-2/words",
            positions[1],
        )
        assert held.error == (
            "delta run-2/words: embedded by test_other_model other, but 'words' holds vectors "
            f"of {LABEL}: vectors of two models cannot be compared"
        )
        assert state.provenance("words") == minilm.PROVENANCE  # unchanged
        assert state.delta_provenances("words") == {LABEL: 2}  # run-1 and run-3
        assert state.delta_provenances("lines") == {LABEL: 3}
    words = ids(snap, "words")
    assert len(words) == 2
    assert not [record_id for record_id in words if "#RECEIPT#00002#" in record_id]
    assert [record_id for record_id in ids(snap, "lines") if "#RECEIPT#00002#" in record_id]


def test_a_delta_of_another_model_stops_the_projection_naming_run_and_collection(
    tmp_path: Path,
) -> None:
    log, root, positions = mixed_log(tmp_path)
    snap = tmp_path / "snap"
    with pytest.raises(ProjectionStopped) as raised:
        project(log.store, snap, LocalDeltaSource(root))  # policy "stop", the default
    problem = raised.value.problem
    assert (problem.position, problem.run_id, problem.collection) == (
        positions[1],
        "run-2",
        "words",
    )
    message = str(raised.value)
    assert message.startswith(f"log position {positions[1]}: compaction run run-2, collection ")
    assert "embedded by test_other_model other" in message
    assert LABEL in message
    assert checkpoint(snap) == (positions[0], None)  # everything before it applied
    [word] = ids(snap, "words")  # run-1's only
    assert "#RECEIPT#00001#" in word


def test_a_delta_of_unknown_model_joins_a_collection_of_a_known_one(tmp_path: Path) -> None:
    log = Log(open_store("memory://"))
    root = tmp_path / "deltas"
    log.add(
        write_run(
            log, root, "run-1", lines={}, words={(1, 1): "TOTAL"}, embed=stand_in_vectors("run-1")
        ),
        write_run(
            log,
            root,
            "run-2",
            receipt=2,
            lines={},
            words={(1, 1): "TAX"},
            function=None,
            embed=stand_in_vectors("run-2"),
        ),
    )
    snap = tmp_path / "snap"
    result = project(log.store, snap, LocalDeltaSource(root))  # "stop": nothing stops it
    assert result.held_deltas == 0
    with open_snapshot(snap, create=False) as snapshot:
        state = snapshot.state
        assert state.held_deltas() == []
        assert state.provenance("words") == minilm.PROVENANCE
        assert state.delta_provenances("words") == {LABEL: 1, "unknown": 1}
    assert len(ids(snap, "words")) == 2


def test_a_known_model_after_unknown_deltas_becomes_the_collections(tmp_path: Path) -> None:
    """Deltas that said nothing cannot contradict one that does: the first known model is
    the collection's, so a snapshot started by old deltas learns its model later."""
    log = Log(open_store("memory://"))
    root = tmp_path / "deltas"
    log.add(
        write_run(
            log,
            root,
            "run-1",
            lines={},
            words={(1, 1): "TOTAL"},
            function=None,
            embed=stand_in_vectors("run-1"),
        ),
    )
    snap = tmp_path / "snap"
    project(log.store, snap, LocalDeltaSource(root))
    with open_snapshot(snap, create=False) as snapshot:
        assert snapshot.state.provenance("words") == Provenance()
    log.add(
        write_run(
            log,
            root,
            "run-2",
            receipt=2,
            lines={},
            words={(1, 1): "TAX"},
            function=MINILM,
            embed=stand_in_vectors("run-2"),
        ),
    )
    project(log.store, snap, LocalDeltaSource(root))
    with open_snapshot(snap, create=False) as snapshot:
        assert snapshot.state.provenance("words") == minilm.PROVENANCE
        assert snapshot.state.delta_provenances("words") == {LABEL: 1, "unknown": 1}
