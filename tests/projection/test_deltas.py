"""Embedding deltas: local layouts, hostile tarballs, missing, changed and malformed deltas."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from projections.errors import DeltaProblem, ProjectionStopped
from projections.runner import rebuild
from projections.snapshot_dir import open_snapshot
from projections.state import HeldDelta
from projections.verify import verify
from receipt_chroma.deltas import DeltaError, LocalDeltaSource
from receipt_chroma.records import ChromaRecord
from synthetic.deltas import write_delta
from tests.projection.helpers import (
    Log,
    Writes,
    checkpoint,
    digest,
    line_id,
    line_meta,
    line_record,
    metadatas,
    project,
    records,
    word_id,
    word_meta,
    word_record,
)

W11, W12 = word_id(1, 1), word_id(1, 2)


def sample_records() -> dict[str, list[ChromaRecord]]:
    return {
        "lines": [line_record("run-1", 1, "TOTAL 12.50"), line_record("run-1", 2, "THANK YOU")],
        "words": [word_record("run-1", 1, 1, "TOTAL"), word_record("run-1", 1, 2, "12.50")],
    }


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


# -- LocalDeltaSource ----------------------------------------------------------------------


def test_local_deltas_in_directory_and_tarball_layouts_read_the_same(tmp_path: Path) -> None:
    root = tmp_path / "deltas"
    written = sample_records()
    for collection, found in written.items():
        write_delta(root / "dir" / collection, collection, found, "directory")  # type: ignore[arg-type]
        write_delta(root / "tar" / collection, collection, found, "tarball")  # type: ignore[arg-type]
    assert (root / "tar" / "words" / "delta.tar.gz").is_file()
    assert (root / "dir" / "words" / "chroma.sqlite3").is_file()
    before = tree_digest(root)

    source = LocalDeltaSource(root)
    for collection in ("lines", "words"):
        from_dir = source.read(f"dir/{collection}", collection)  # type: ignore[arg-type]
        from_tar = source.read(f"tar/{collection}", collection)  # type: ignore[arg-type]
        from_file = source.read(f"tar/{collection}/delta.tar.gz", collection)  # type: ignore[arg-type]
        absolute = source.read(str(root / "dir" / collection), collection)  # type: ignore[arg-type]
        assert (from_dir.location, from_dir.collection) == (f"dir/{collection}", collection)
        assert from_tar.records == from_dir.records == from_file.records == absolute.records
        assert from_tar.digest == from_dir.digest == from_file.digest == absolute.digest
        assert from_dir.digest.startswith("sha256:")
        expected = written[collection]
        assert [(r.id, r.document, r.metadata) for r in from_dir.records] == [
            (r.id, r.document, r.metadata) for r in expected
        ]
        for got, want in zip(from_dir.records, expected, strict=True):
            np.testing.assert_allclose(got.vector(), want.vector(), atol=1e-6)
    assert tree_digest(root) == before  # read from private copies: the deltas are untouched


def test_projecting_from_either_layout_gives_the_same_snapshot(tmp_path: Path, log: Log) -> None:
    root = tmp_path / "deltas"
    written = sample_records()
    for collection, found in written.items():
        write_delta(root / "run-1" / collection, collection, found, "directory")  # type: ignore[arg-type]
        write_delta(root / "tarred" / "run-1" / collection, collection, found, "tarball")  # type: ignore[arg-type]
    log.add(log.run("run-1", store_deltas=False), log.label(1, 1, "TOTAL", "VALID"))
    project(log.store, tmp_path / "a", LocalDeltaSource(root))
    project(log.store, tmp_path / "b", LocalDeltaSource(root / "tarred"))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert metadatas(tmp_path / "a") == {
        "lines": {
            line_id(1): line_meta("run-1", 1, "TOTAL 12.50"),
            line_id(2): line_meta("run-1", 2, "THANK YOU"),
        },
        "words": {
            W11: {
                **word_meta("run-1", 1, 1, "TOTAL"),
                "valid_labels": ["TOTAL"],
                "label_status": "validated",
            },
            W12: word_meta("run-1", 1, 2, "12.50"),
        },
    }


def hostile_tarball(path: Path, bad: tarfile.TarInfo, data: bytes = b"") -> None:
    """A real delta's files plus one hostile member."""
    good = path.parent / "good"
    write_delta(good, "words", sample_records()["words"], "directory")
    path.mkdir(parents=True)
    with tarfile.open(path / "delta.tar.gz", "w:gz") as archive:
        archive.add(good, arcname=".")
        archive.addfile(bad, io.BytesIO(data) if bad.isfile() else None)


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 4
    return info


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        pytest.param(_file("../evil"), "unsafe path '../evil' in delta.tar.gz", id="dotdot"),
        pytest.param(
            _file("./sub/../../evil"),
            "unsafe path './sub/../../evil' in delta.tar.gz",
            id="nested-dotdot",
        ),
        pytest.param(
            _file("/tmp/receipt-events-evil"),
            "unsafe path '/tmp/receipt-events-evil' in delta.tar.gz",
            id="absolute",
        ),
        pytest.param(
            _link("link", "/etc/passwd", tarfile.SYMTYPE),
            "'link' in delta.tar.gz is not a file",
            id="symlink",
        ),
        pytest.param(
            _link("hard", "chroma.sqlite3", tarfile.LNKTYPE),
            "'hard' in delta.tar.gz is not a file",
            id="hardlink",
        ),
    ],
)
def test_a_hostile_tarball_is_rejected_naming_the_file(
    tmp_path: Path, member: tarfile.TarInfo, problem: str
) -> None:
    root = tmp_path / "deltas"
    hostile_tarball(root / "run-x" / "words", member, b"evil")
    with pytest.raises(DeltaError) as raised:
        LocalDeltaSource(root).read("run-x/words", "words")
    assert str(raised.value) == f"delta run-x/words: {problem}"
    assert raised.value.location == "run-x/words"
    assert not raised.value.missing
    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/receipt-events-evil").exists()


def test_a_hostile_tarball_stops_the_projection_naming_run_collection_and_position(
    tmp_path: Path, log: Log, snap: Path
) -> None:
    root = tmp_path / "deltas"
    write_delta(root / "run-x" / "lines", "lines", [], "directory")
    hostile_tarball(root / "run-x" / "words", _file("../evil"), b"evil")
    positions = log.add(log.place(merchant_name="Shop"), log.run("run-x", store_deltas=False))
    with pytest.raises(ProjectionStopped) as raised:
        project(log.store, snap, LocalDeltaSource(root))
    assert str(raised.value) == (
        f"log position {positions[1]}: compaction run run-x, collection words: "
        "delta run-x/words: unsafe path '../evil' in delta.tar.gz"
    )
    assert checkpoint(snap) == (positions[0], None)


def test_a_local_delta_that_is_not_there_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DeltaError) as raised:
        LocalDeltaSource(tmp_path).read("nowhere/words", "words")
    assert raised.value.missing
    assert str(raised.value) == f"delta nowhere/words: not found at {tmp_path / 'nowhere/words'}"


def test_a_local_delta_without_the_collection_is_rejected(tmp_path: Path) -> None:
    write_delta(tmp_path / "run" / "words", "lines", sample_records()["lines"], "directory")
    with pytest.raises(DeltaError) as raised:
        LocalDeltaSource(tmp_path).read("run/words", "words")
    assert str(raised.value) == "delta run/words: has no 'words' collection"


# -- missing deltas: stop or hold back ------------------------------------------------------------


def history_with_missing_words_delta(log: Log) -> list[int]:
    positions = log.add(
        log.run("run-1", lines={1: "A"}, words={(1, 1): "A"}),
        log.label(1, 1, "TOTAL", "VALID"),
        log.place(merchant_name="Shop"),
    )
    run2 = log.run("run-2", lines={1: "A2"}, words={(1, 1): "A2", (1, 2): "B2"})
    del log.deltas.deltas[("run-2/words", "words")]
    positions += log.add(run2, log.place(merchant_name="Later Shop"))
    return positions


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_a_missing_delta_stops_before_its_event_after_applying_those_before(
    log: Log, snap: Path, batch_size: int
) -> None:
    positions = history_with_missing_words_delta(log)
    with pytest.raises(ProjectionStopped) as raised:
        project(log.store, snap, log.deltas, batch_size=batch_size)
    stopped = raised.value
    assert str(stopped) == (
        f"log position {positions[3]}: compaction run run-2, collection words: "
        "delta run-2/words: not found"
    )
    assert (stopped.problem.position, stopped.problem.run_id, stopped.problem.collection) == (
        positions[3],
        "run-2",
        "words",
    )
    assert (stopped.result.applied, stopped.result.to_position) == (3, positions[2])
    assert checkpoint(snap) == (positions[2], None)
    # everything before the run is in Chroma; nothing of the run (its lines delta was fine)
    assert metadatas(snap) == {
        "lines": {line_id(1): {**line_meta("run-1", 1, "A"), "merchant_name": "Shop"}},
        "words": {
            W11: {
                **word_meta("run-1", 1, 1, "A"),
                "merchant_name": "Shop",
                "valid_labels": ["TOTAL"],
                "label_status": "validated",
            }
        },
    }
    # asking again stops at the same place, changing nothing
    with pytest.raises(ProjectionStopped):
        project(log.store, snap, log.deltas, batch_size=batch_size)
    assert checkpoint(snap) == (positions[2], None)

    # once the delta is there, the projection goes on and equals a rebuild
    log.deltas.put("run-2/words", "words", [word_record("run-2", 1, 1, "A2")])
    result = project(log.store, snap, log.deltas, batch_size=batch_size)
    assert (result.from_position, result.to_position, result.applied) == (
        positions[2],
        positions[4],
        2,
    )
    assert digest(snap) == rebuild(log.store, snap.parent / "rebuilt", log.deltas).digest


def test_with_policy_park_the_projection_goes_on_and_keeps_the_parked_delta(
    log: Log, snap: Path
) -> None:
    positions = history_with_missing_words_delta(log)
    result = project(log.store, snap, log.deltas, policy="hold")
    assert (result.to_position, result.applied, result.held_deltas) == (positions[4], 5, 1)
    with open_snapshot(snap, create=False) as snapshot:
        assert snapshot.state.held_deltas() == [
            HeldDelta(
                run_id="run-2",
                collection="words",
                location="run-2/words",
                position=positions[3],
                error="delta run-2/words: not found",
            )
        ]
        assert snapshot.state.checkpoint == positions[4]
    shop = {"merchant_name": "Later Shop"}
    assert metadatas(snap) == {
        "lines": {line_id(1): {**line_meta("run-2", 1, "A2"), **shop}},  # lines delta merged
        "words": {
            W11: {
                **word_meta("run-1", 1, 1, "A"),
                **shop,
                "valid_labels": ["TOTAL"],
                "label_status": "validated",
            }
        },
    }


# -- a delta changed after it was merged -----------------------------------------------------


def changed_after_merge(log: Log, snap: Path) -> int:
    (position,) = log.add(log.run("run-1", lines={1: "A"}, words={(1, 1): "A", (1, 2): "B"}))
    project(log.store, snap, log.deltas)
    log.deltas.put(
        "run-1/words", "words", [word_record("run-1", 1, 1, "A"), word_record("run-1", 1, 2, "C")]
    )
    return position


def test_a_rebuild_told_the_known_digests_detects_a_changed_delta(log: Log, snap: Path) -> None:
    position = changed_after_merge(log, snap)
    with open_snapshot(snap, create=False) as snapshot:
        known = snapshot.state.known_delta_digests()
    assert set(known) == {("run-1", "lines"), ("run-1", "words")}
    with pytest.raises(ProjectionStopped) as raised:
        rebuild(log.store, snap.parent / "rebuilt", log.deltas, known_digests=known)
    message = str(raised.value)
    assert message.startswith(
        f"log position {position}: compaction run run-1, collection words: delta run-1/words: "
        f"content changed since it was first merged (was {known[('run-1', 'words')]}, now sha256:"
    )
    problem = raised.value.problem
    assert (problem.position, problem.run_id, problem.collection) == (position, "run-1", "words")


def test_verify_names_a_delta_changed_since_the_snapshot_merged_it(log: Log, snap: Path) -> None:
    position = changed_after_merge(log, snap)
    with pytest.raises(ProjectionStopped) as raised:
        verify(log.store, snap, log.deltas)
    assert str(raised.value).startswith(
        f"log position {position}: compaction run run-1, collection words: delta run-1/words: "
        "content changed since it was first merged"
    )


def test_a_run_published_again_is_checked_against_its_first_digest(
    log: Log, snap: Path, writes: Writes
) -> None:
    (first,) = log.add(log.run("run-1", lines={1: "A"}, words={(1, 1): "A"}))
    project(log.store, snap, log.deltas)
    # the same run published again with the same content: accepted, nothing to write
    (again,) = log.add(log.run("run-1", lines={1: "A"}, words={(1, 1): "A"}))
    result = project(log.store, snap, log.deltas, on_write=writes)
    assert (result.to_position, result.applied, writes) == (again, 1, [])
    # now with other content: stopped, naming the second publication's position
    (changed,) = log.add(log.run("run-1", lines={1: "A"}, words={(1, 1): "Z"}))
    with pytest.raises(ProjectionStopped) as raised:
        project(log.store, snap, log.deltas)
    assert str(raised.value).startswith(
        f"log position {changed}: compaction run run-1, collection words: delta run-1/words: "
        "content changed since it was first merged"
    )
    assert checkpoint(snap) == (again, None)
    assert first < again < changed


# -- deltas holding the wrong records -------------------------------------------------------


@pytest.mark.parametrize(
    ("collection", "bad_record", "problem"),
    [
        pytest.param(
            "words",
            word_record("run-x", 1, 1, "X", receipt=2),
            f"{word_id(1, 1, receipt=2)} is not a record of receipt RECEIPT#00001",
            id="other-receipt",
        ),
        pytest.param(
            "lines",
            line_record("run-x", 1, "X", image="a1b2c3d4-0000-4000-8000-00000000beef"),
            f"{line_id(1, image='a1b2c3d4-0000-4000-8000-00000000beef')} is not a record of "
            "receipt RECEIPT#00001",
            id="other-image",
        ),
        pytest.param(
            "words",
            line_record("run-x", 3, "X"),
            f"{line_id(3)} does not belong in 'words'",
            id="line-in-words",
        ),
        pytest.param(
            "lines",
            word_record("run-x", 3, 1, "X"),
            f"{word_id(3, 1)} does not belong in 'lines'",
            id="word-in-lines",
        ),
        pytest.param(
            "words",
            word_record("run-x", 3, 1, "X", dim=16),
            "embedding dimensions [8, 16] in 'words'",
            id="mixed-dimensions",
        ),
    ],
)
def test_a_delta_with_wrong_records_is_rejected_whole(
    log: Log, snap: Path, collection: str, bad_record: ChromaRecord, problem: str
) -> None:
    event = log.run("run-x", lines={1: "A"}, words={(1, 1): "A", (1, 2): "B"})
    good = log.deltas.deltas[(f"run-x/{collection}", collection)]
    log.deltas.put(f"run-x/{collection}", collection, [*good, bad_record])  # type: ignore[arg-type]
    positions = log.add(log.place(merchant_name="Shop"), event)
    with pytest.raises(ProjectionStopped) as raised:
        project(log.store, snap, log.deltas)
    assert str(raised.value) == (
        f"log position {positions[1]}: compaction run run-x, collection {collection}: "
        f"delta run-x/{collection}: {problem}"
    )
    assert isinstance(raised.value.problem, DeltaProblem)
    assert checkpoint(snap) == (positions[0], None)
    assert records(snap) == {"lines": {}, "words": {}}


def test_a_malformed_chroma_id_in_a_delta_is_rejected(log: Log, snap: Path) -> None:
    event = log.run("run-x", words={(1, 1): "A"})
    log.deltas.put(
        "run-x/words", "words", [word_record("run-x", 1, 1, "A", record_id="IMAGE#x#RECEIPT#1")]
    )
    (position,) = log.add(event)
    with pytest.raises(ProjectionStopped) as raised:
        project(log.store, snap, log.deltas)
    assert str(raised.value).startswith(
        f"log position {position}: compaction run run-x, collection words: delta run-x/words: "
    )
    assert "IMAGE#x#RECEIPT#1" in str(raised.value)


@pytest.mark.parametrize("batch_size", [1, 1000], ids=["own-batch", "same-batch"])
def test_a_delta_in_another_dimension_than_the_collection_is_rejected(
    log: Log, snap: Path, batch_size: int
) -> None:
    positions = log.add(
        log.run("run-1", words={(1, 1): "A"}),
        log.run("run-2", words={(1, 1): "A"}, receipt=2, dim=16),
    )
    with pytest.raises(ProjectionStopped) as raised:
        project(log.store, snap, log.deltas, batch_size=batch_size)
    assert str(raised.value) == (
        f"log position {positions[1]}: compaction run run-2, collection words: "
        "delta run-2/words: embedding dimensions [8, 16] in 'words', which holds 8"
    )
    assert checkpoint(snap) == (positions[0], None)
    assert set(records(snap)["words"]) == {W11}


def test_with_policy_park_a_wrong_delta_is_parked_and_its_good_twin_merged(
    log: Log, snap: Path
) -> None:
    event = log.run("run-x", lines={1: "A"}, words={(1, 1): "A"})
    log.deltas.put("run-x/words", "words", [line_record("run-x", 2, "X")])
    (position,) = log.add(event)
    result = project(log.store, snap, log.deltas, policy="hold")
    assert result.held_deltas == 1
    with open_snapshot(snap, create=False) as snapshot:
        assert snapshot.state.held_deltas() == [
            HeldDelta(
                "run-x",
                "words",
                "run-x/words",
                position,
                f"delta run-x/words: {line_id(2)} does not belong in 'words'",
            )
        ]
    assert metadatas(snap) == {"lines": {line_id(1): line_meta("run-x", 1, "A")}, "words": {}}
