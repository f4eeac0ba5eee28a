"""``compare OURS THEIRS``: two Chroma directories record by record (shadow mode).

Pairs of directories are written with known differences (a stale label, a record on one
side only, a changed vector or document, a collection missing) and the comparison must name
exactly those, in the library and through the command line with its exit statuses. A
snapshot built by the real pipeline must equal a copy of itself, its plain ``chroma/`` too.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from projections.snapshot_dir import CHROMA_SUBDIR
from receipt_chroma.client import NoEmbeddingFunction, open_chroma
from receipt_chroma.compare import (
    SNAPSHOT_CHROMA_SUBDIR,
    VECTOR_TOLERANCE,
    Comparison,
    Difference,
    NotAChromaDirectory,
    RecordRef,
    compare_directories,
    vectors_match,
)
from receipt_chroma.directory_lock import DirectoryLock
from receipt_chroma.records import ChromaRecord, Metadata, embedding_bytes
from receipt_chroma.writer import Upsert, upsert
from receipt_events.cli.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED
from synthetic.deltas import deterministic_vector
from tests.support.cli_runs import ingested_history, ok_json, run

DIM = 8
Records = dict[str, list[ChromaRecord]]


def record(
    record_id: str,
    metadata: Metadata | None = None,
    *,
    document: str | None = "text",
    vector: Any = None,
) -> ChromaRecord:
    """A record with an 8-d unit vector drawn from its id unless one is given."""
    if vector is None:
        vector = deterministic_vector("run-1", record_id, DIM)
    return ChromaRecord(record_id, document, dict(metadata or {}), embedding_bytes(vector))


def write(path: Path, collections: Records) -> Path:
    """A Chroma directory holding exactly these collections and records."""
    with open_chroma(path, create=True) as chroma:
        for name, records in collections.items():
            collection = chroma.collection(name)  # type: ignore[arg-type]
            upsert(collection, [Upsert(item) for item in records], chroma.max_batch_size())
    return path


def nudged(record_id: str, by: float) -> Any:
    """The record's own vector with its first component moved by ``by``."""
    vector = deterministic_vector("run-1", record_id, DIM).astype(np.float64)
    vector[0] += by
    return vector.astype(np.float32)


def base() -> Records:
    """Both sides' common starting point: 4 lines, 4 words with labels."""
    lines = [record(f"L{n}", {"line_id": n, "merchant_name": "Shop"}) for n in range(1, 5)]
    words = [
        record(f"W{n}", {"word_id": n, "valid_labels": ["TOTAL"], "label_status": "validated"})
        for n in range(1, 5)
    ]
    return {"lines": lines, "words": words}


def replaced(records: list[ChromaRecord], *changed: ChromaRecord) -> list[ChromaRecord]:
    by_id = {item.id: item for item in records}
    by_id.update({item.id: item for item in changed})
    return list(by_id.values())


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """OURS and THEIRS differing in known ways (and agreeing on W4 and L3/L4 in tolerance)."""
    ours = base()
    ours["words"].append(record("W5", {"word_id": 5}))  # only ours
    theirs = base()
    theirs["words"] = replaced(
        theirs["words"],
        # the old system lost the label update: a stale label
        record("W1", {"word_id": 1, "valid_labels": ["SUBTOTAL"], "label_status": "validated"}),
        # a key only we have, and a value of another type (1.0 is not 1)
        record("W2", {"word_id": 2, "valid_labels": ["TOTAL"]}),
        record("W3", {"word_id": 3.0, "valid_labels": ["TOTAL"], "label_status": "validated"}),
    )
    theirs["words"].append(record("W6", {"word_id": 6}))  # only theirs
    theirs["lines"] = replaced(
        theirs["lines"],
        record("L1", {"line_id": 1, "merchant_name": "Shop"}, vector=nudged("L1", 0.25)),
        record("L2", {"line_id": 2, "merchant_name": "Shop"}, document="other text"),
        # within the tolerance: the same vector stored another way
        record("L3", {"line_id": 3, "merchant_name": "Shop"}, vector=nudged("L3", 5e-7)),
        # just beyond it
        record("L4", {"line_id": 4, "merchant_name": "Shop"}, vector=nudged("L4", 3e-6)),
    )
    return write(tmp_path / "ours", ours), write(tmp_path / "theirs", theirs)


EXPECTED = Comparison(
    same=1,  # W4 (L3 is the same within the tolerance, counted below)
    only_ours=[RecordRef("words", "W5")],
    only_theirs=[RecordRef("words", "W6")],
    differing=[
        Difference("lines", "L1", [], vector_differs=True),
        Difference("lines", "L2", ["document"], vector_differs=False),
        Difference("lines", "L4", [], vector_differs=True),
        Difference("words", "W1", ["valid_labels"], vector_differs=False),
        Difference("words", "W2", ["label_status"], vector_differs=False),
        Difference("words", "W3", ["word_id"], vector_differs=False),
    ],
)


# -- the library --------------------------------------------------------------------------


def test_identical_directories_are_the_same(tmp_path: Path) -> None:
    records = base()
    reordered = {name: list(reversed(items)) for name, items in records.items()}
    result = compare_directories(write(tmp_path / "a", records), write(tmp_path / "b", reordered))
    assert result == Comparison(
        same=8,
        only_ours=[],
        only_theirs=[],
        differing=[],
        same_by_collection={"lines": 4, "words": 4},
    )
    assert result.ok


def test_names_exactly_the_records_that_differ_and_how(pair: tuple[Path, Path]) -> None:
    result = compare_directories(*pair)
    assert result.only_ours == EXPECTED.only_ours
    assert result.only_theirs == EXPECTED.only_theirs
    assert result.differing == EXPECTED.differing
    assert result.same == 2  # W4, and L3 within the tolerance
    assert result.same_by_collection == {"lines": 1, "words": 1}
    assert not result.ok


def test_swapping_the_sides_swaps_only_ours_and_only_theirs(pair: tuple[Path, Path]) -> None:
    ours, theirs = pair
    forward, backward = compare_directories(ours, theirs), compare_directories(theirs, ours)
    assert backward.only_ours == forward.only_theirs
    assert backward.only_theirs == forward.only_ours
    assert backward.differing == forward.differing
    assert backward.same == forward.same


def test_small_pages_give_the_same_answer(pair: tuple[Path, Path]) -> None:
    assert compare_directories(*pair, page_size=2) == compare_directories(*pair)


def test_a_collection_missing_on_one_side_is_all_on_the_other(tmp_path: Path) -> None:
    records = base()
    ours = write(tmp_path / "ours", records)
    theirs = write(tmp_path / "theirs", {"lines": records["lines"]})
    result = compare_directories(ours, theirs)
    assert result.only_ours == [RecordRef("words", f"W{n}") for n in range(1, 5)]
    assert (result.only_theirs, result.differing, result.same) == ([], [], 4)
    assert compare_directories(theirs, ours).only_theirs == result.only_ours


def test_one_collection_at_a_time_as_the_old_system_keeps_them(tmp_path: Path) -> None:
    records = base()
    ours = write(tmp_path / "ours", records)
    old_lines = write(tmp_path / "old-lines", {"lines": records["lines"]})
    assert compare_directories(ours, old_lines, collections=("lines",)).ok
    assert not compare_directories(ours, old_lines).ok  # without it, words are all "ours"
    result = run("compare", ours, old_lines, "--collection", "lines", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["same"] == 4
    bad = run("compare", ours, old_lines, "--collection", "receipts")
    assert bad.exit_code == 2
    assert "--collection must be 'lines' or 'words'" in bad.stderr


def test_vectors_match_within_the_tolerance_only() -> None:
    one = struct.pack("<2f", 0.5, -0.25)
    assert VECTOR_TOLERANCE == 1e-6
    assert vectors_match(one, one)
    assert vectors_match(one, struct.pack("<2f", 0.5 + 9e-7, -0.25))
    assert not vectors_match(one, struct.pack("<2f", 0.5 + 2e-6, -0.25))
    assert not vectors_match(one, struct.pack("<3f", 0.5, -0.25, 0.0))  # another dimension
    assert not vectors_match(one, struct.pack("<2f", float("nan"), -0.25))


@pytest.mark.parametrize("case", ["missing", "file", "empty dir", "no collections", "others"])
def test_a_directory_that_is_not_chroma_is_named(tmp_path: Path, case: str) -> None:
    good = write(tmp_path / "good", base())
    bad = tmp_path / "bad"
    problem = {
        "missing": "does not exist",
        "file": "is not a directory",
        "empty dir": "is not a Chroma directory",
        "no collections": "holds neither a `lines` nor a `words` collection (collections: none)",
        "others": "holds neither a `lines` nor a `words` collection (collections: receipts)",
    }[case]
    if case == "file":
        bad.write_text("not chroma")
    elif case == "empty dir":
        bad.mkdir()
    elif case in ("no collections", "others"):
        with open_chroma(bad, create=True) as chroma:
            if case == "others":
                chroma.client.create_collection(
                    "receipts",
                    embedding_function=NoEmbeddingFunction(),  # type: ignore[arg-type]
                )
    for sides in ((good, bad), (bad, good)):
        with pytest.raises(NotAChromaDirectory) as caught:
            compare_directories(*sides)
        assert str(caught.value).startswith(f"{bad} {problem}")


def test_a_corrupt_database_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "chroma.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(NotAChromaDirectory, match=f"^{bad} cannot be read by Chroma: "):
        compare_directories(write(tmp_path / "good", base()), bad)


def test_our_layout_constant_is_the_snapshot_directorys() -> None:
    assert SNAPSHOT_CHROMA_SUBDIR == CHROMA_SUBDIR


# -- the real pipeline ---------------------------------------------------------------------


@pytest.fixture
def rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, int]]:
    """A snapshot directory built by ``rebuild`` from a synthetic history, and its counts."""
    for name in ("RECEIPT_EVENTS_STORE", "RECEIPT_EVENTS_DELTAS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    store = ingested_history(tmp_path, seed=11)
    snap = tmp_path / "snap"
    built = ok_json(
        run("rebuild", "--snapshot-dir", snap, "--store", store, "--deltas", tmp_path, "--json")
    )
    assert built["counts"]["lines"] > 0
    assert built["counts"]["words"] > 0
    return snap, built["counts"]


def test_a_rebuilt_snapshot_equals_a_copy_of_itself(
    rebuilt: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    snap, counts = rebuilt
    copy = tmp_path / "copy"
    shutil.copytree(snap, copy)
    plain = tmp_path / "plain"  # the old system's shape: a Chroma directory, no state
    shutil.copytree(snap / CHROMA_SUBDIR, plain)
    total = counts["lines"] + counts["words"]
    for theirs in (copy, plain, snap, snap / CHROMA_SUBDIR):
        result = compare_directories(snap, theirs)
        assert (result.same, result.ok) == (total, True)
        assert result.same_by_collection == counts
    document = ok_json(run("compare", snap, plain, "--json"))
    assert document == {
        "ok": True,
        "same": total,
        "only_ours": [],
        "only_theirs": [],
        "differing": [],
        "counts": {
            name: {"same": counts[name], "only_ours": 0, "only_theirs": 0, "differing": 0}
            for name in ("lines", "words")
        },
    }


def test_the_old_systems_lost_updates_are_named(
    rebuilt: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    snap, counts = rebuilt
    plain = tmp_path / "old"
    shutil.copytree(snap / CHROMA_SUBDIR, plain)
    with open_chroma(plain, create=False) as chroma:
        words, lines = chroma.collection("words"), chroma.collection("lines")
        stale = sorted(words.get(include=[])["ids"])[0]
        lost = sorted(lines.get(include=[])["ids"])[-1]
        words.update(ids=[stale], metadatas=[{"valid_labels": ["STALE"]}])
        lines.delete(ids=[lost])
    done = run("compare", snap, plain, "--json")
    assert done.exit_code == EXIT_CHECK_FAILED, done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is False
    assert document["same"] == counts["lines"] + counts["words"] - 2
    assert document["only_ours"] == [{"collection": "lines", "id": lost}]
    assert document["only_theirs"] == []
    assert document["differing"] == [
        {"collection": "words", "id": stale, "keys": ["valid_labels"], "vector_differs": False}
    ]


def test_a_snapshot_being_written_is_not_read(rebuilt: tuple[Path, dict[str, int]]) -> None:
    snap, _ = rebuilt
    with DirectoryLock(snap):
        done = run("compare", snap, snap / CHROMA_SUBDIR)
    assert done.exit_code == EXIT_CHECK_FAILED
    assert "is being written by another process" in done.stderr


# -- the command line ----------------------------------------------------------------------


def test_the_command_exits_1_and_its_json_names_each_difference(pair: tuple[Path, Path]) -> None:
    done = run("compare", *pair, "--json")
    assert done.exit_code == EXIT_CHECK_FAILED, done.stderr
    assert json.loads(done.stdout) == {
        "ok": False,
        "same": 2,
        "only_ours": [{"collection": "words", "id": "W5"}],
        "only_theirs": [{"collection": "words", "id": "W6"}],
        "differing": [
            {"collection": "lines", "id": "L1", "keys": [], "vector_differs": True},
            {"collection": "lines", "id": "L2", "keys": ["document"], "vector_differs": False},
            {"collection": "lines", "id": "L4", "keys": [], "vector_differs": True},
            {"collection": "words", "id": "W1", "keys": ["valid_labels"], "vector_differs": False},
            {"collection": "words", "id": "W2", "keys": ["label_status"], "vector_differs": False},
            {"collection": "words", "id": "W3", "keys": ["word_id"], "vector_differs": False},
        ],
        "counts": {
            "lines": {"same": 1, "only_ours": 0, "only_theirs": 0, "differing": 3},
            "words": {"same": 1, "only_ours": 1, "only_theirs": 1, "differing": 3},
        },
    }


def test_the_summary_for_people_counts_and_lists_the_first_differences(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    done = run("compare", *pair, "--limit", "3")
    assert done.exit_code == EXIT_CHECK_FAILED
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["collection", "same", "only", "ours", "only", "theirs", "differing"]
    assert lines[1].split() == ["lines", "1", "0", "0", "3"]
    assert lines[2].split() == ["words", "1", "1", "1", "3"]
    assert lines[3:] == [
        "8 record(s) differ",
        "  lines L1: differs: the vector",
        "  lines L2: differs: document",
        "  lines L4: differs: the vector",
        "  ... and 5 more (--json lists them all)",
    ]


def test_the_command_exits_0_on_identical_directories(tmp_path: Path) -> None:
    ours, theirs = write(tmp_path / "a", base()), write(tmp_path / "b", base())
    assert ok_json(run("compare", ours, theirs, "--json"))["ok"] is True
    done = run("compare", ours, theirs)
    assert done.exit_code == 0
    assert "every record is on both sides and equal" in done.stdout


def test_the_command_exits_2_naming_an_unreadable_directory(tmp_path: Path) -> None:
    good = write(tmp_path / "good", base())
    missing = tmp_path / "nowhere"
    done = run("compare", good, missing, "--json")
    assert done.exit_code == EXIT_BAD_INPUT
    assert done.stdout == ""
    assert " ".join(done.stderr.split()) == f"error: {missing} does not exist"
