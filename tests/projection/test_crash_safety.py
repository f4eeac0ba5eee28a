"""Crash safety, the one-writer lock, and a snapshot's identity (its log, its version)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from projections.errors import ProjectionConflict, ProjectionStopped, StateError
from projections.runner import catch_up, rebuild, snapshot_digest
from projections.snapshot_dir import open_snapshot
from projections.state import STATE_FILE, ProjectionState
from projections.verify import diff, verify
from receipt_chroma.client import ChromaDirectory
from receipt_chroma.directory_lock import DirectoryBusy
from receipt_events.store import open_store
from tests.projection.helpers import Log, Writes, checkpoint, digest, project

ROOT = Path(__file__).resolve().parents[2]


class InjectedCrash(Exception):
    pass


def crash_history(log: Log) -> list[int]:
    """12 events; batches of 4 end at 4, 8, 12. The batch 5-8 writes lines and words, with a
    delete, an upsert of an existing record, new records and metadata updates."""
    return log.add(
        # 1-4
        log.run("run-1", lines={1: "A", 2: "B"}, words={(1, 1): "A", (1, 2): "B", (2, 1): "C"}),
        log.place(merchant_name="Shop"),
        log.label(1, 1, "TOTAL", "VALID"),
        log.label(1, 2, "AMOUNT", "PENDING", by="m1"),
        # 5-8
        log.remove_line(2),
        log.run("run-2", lines={1: "A'"}, words={(1, 1): "A'"}),
        log.run("run-3", lines={1: "R2"}, words={(1, 1): "R2", (1, 2): "R2b"}, receipt=2),
        log.place(merchant_name="Shop 2", address="2 St"),
        # 9-12
        log.label(1, 2, "AMOUNT", "VALID", at="2024-01-01T00:00:00Z"),
        log.remove_word(2, 1),
        log.place(merchant_name="R2 Shop", receipt=2),
        log.label(1, 1, "TOTAL", "INVALID", receipt=2),
    )


class CrashOnWrite(Writes):
    """An on_write hook that raises after the ``nth`` Chroma call of the batch ending at
    position ``in_batch``."""

    def __init__(self, nth: int) -> None:
        super().__init__()
        self.nth = nth

    def __call__(self, operation: str, collection: str, records: int) -> None:
        super().__call__(operation, collection, records)
        if len(self) == self.nth:
            raise InjectedCrash(f"after {operation} {collection}")


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_a_crash_after_a_chroma_write_is_redone_exactly_on_the_next_run(
    log: Log, snap: Path, nth: int
) -> None:
    positions = crash_history(log)
    project(log.store, snap, log.deltas, to=4)
    hook = CrashOnWrite(nth)
    with pytest.raises(InjectedCrash):
        project(log.store, snap, log.deltas, batch_size=4, on_write=hook)
    # the batch 5-8 planned 4 calls; the crash left it in flight, the checkpoint at 4
    assert (
        hook
        == [
            ("delete", "lines", 1),
            ("upsert", "lines", 2),
            ("upsert", "words", 3),
            ("update", "words", 2),
        ][:nth]
    )
    assert checkpoint(snap) == (positions[3], positions[7])
    with pytest.raises(StateError, match="has a batch in flight"):
        snapshot_digest(snap)

    reached: list[int] = []
    result = project(
        log.store,
        snap,
        log.deltas,
        batch_size=3,
        progress=lambda position, target: reached.append(position),
    )
    assert reached == [8, 11, 12]  # exactly the interrupted batch first, then batches of 3
    assert (result.from_position, result.to_position, result.applied) == (4, 12, 8)
    assert checkpoint(snap) == (positions[-1], None)
    assert digest(snap) == rebuild(log.store, snap.parent / "clean", log.deltas).digest


def test_a_crash_inside_the_state_commit_is_redone_on_the_next_run(
    log: Log, snap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    positions = crash_history(log)
    project(log.store, snap, log.deltas, to=4)
    original = ProjectionState.commit_batch
    calls: list[int] = []

    def commit_once(self: ProjectionState, *args: Any, **kwargs: Any) -> None:
        calls.append(kwargs["checkpoint"])
        if len(calls) == 1:
            raise InjectedCrash("commit")
        original(self, *args, **kwargs)

    monkeypatch.setattr(ProjectionState, "commit_batch", commit_once)
    with pytest.raises(InjectedCrash):
        project(log.store, snap, log.deltas, batch_size=4)
    assert checkpoint(snap) == (positions[3], positions[7])
    result = project(log.store, snap, log.deltas, batch_size=5)
    assert calls == [8, 8, 12]
    assert (result.to_position, result.applied) == (12, 8)
    assert digest(snap) == rebuild(log.store, snap.parent / "clean", log.deltas).digest


def test_a_crash_half_way_through_the_state_transaction_rolls_it_back(
    log: Log, snap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    positions = crash_history(log)
    project(log.store, snap, log.deltas, to=4)
    with open_snapshot(snap, create=False) as snapshot:
        receipt_before = snapshot.state.load_receipt("3f2b1c9e-8d4a-4e6f-9b1a-2c3d4e5f6a7b", 1)
    original = ProjectionState._save_receipt
    saved: list[int] = []

    def save_then_crash(self: ProjectionState, view: Any) -> None:
        original(self, view)  # receipt 1 is written inside the transaction...
        saved.append(view.receipt_id)
        if len(saved) == 1:
            raise InjectedCrash("mid-transaction")  # ...and must be rolled back

    monkeypatch.setattr(ProjectionState, "_save_receipt", save_then_crash)
    with pytest.raises(InjectedCrash):
        project(log.store, snap, log.deltas, batch_size=4)
    monkeypatch.setattr(ProjectionState, "_save_receipt", original)
    with open_snapshot(snap, create=False) as snapshot:
        assert snapshot.state.load_receipt(receipt_before.image_id, 1) == receipt_before
        assert snapshot.state.checkpoint == positions[3]
        assert snapshot.state.inflight_to == positions[7]
        assert snapshot.state.known_delta_digests().keys() == {
            ("run-1", "lines"),
            ("run-1", "words"),
        }
    project(log.store, snap, log.deltas)
    assert digest(snap) == rebuild(log.store, snap.parent / "clean", log.deltas).digest


def test_verify_refuses_a_snapshot_with_a_batch_in_flight(log: Log, snap: Path) -> None:
    crash_history(log)
    with pytest.raises(InjectedCrash):
        project(log.store, snap, log.deltas, batch_size=4, on_write=CrashOnWrite(1))
    with pytest.raises(StateError, match="batch in flight"):
        verify(log.store, snap, log.deltas)


# -- one writer per directory --------------------------------------------------------------


def test_a_second_writer_in_the_same_process_gets_directory_busy_naming_the_pid(
    snap: Path,
) -> None:
    with open_snapshot(snap):
        with pytest.raises(DirectoryBusy) as raised:
            open_snapshot(snap)
        assert str(raised.value) == (
            f"{snap} is being written by another process (pid {os.getpid()}); "
            "a snapshot directory has one writer at a time"
        )
    with open_snapshot(snap, create=False):  # released on close
        pass


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from projections.snapshot_dir import open_snapshot
    with open_snapshot(Path(sys.argv[1])):
        print("holding", flush=True)
        sys.stdin.readline()
    """
)


def test_a_second_writer_in_another_process_gets_directory_busy_naming_its_pid(
    log: Log, snap: Path
) -> None:
    log.add(log.run("run-1", words={(1, 1): "A"}))
    project(log.store, snap, log.deltas)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(snap)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"
        for attempt in (
            lambda: open_snapshot(snap),
            lambda: snapshot_digest(snap),
            lambda: project(log.store, snap, log.deltas),
        ):
            with pytest.raises(DirectoryBusy) as raised:
                attempt()
            assert f"(pid {holder.pid})" in str(raised.value)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert snapshot_digest(snap).position == 1  # the lock went with the process


# -- a snapshot's identity -------------------------------------------------------------------


def test_catching_up_against_another_log_is_a_conflict(snap: Path) -> None:
    with open_store("memory://") as mine, open_store("memory://") as theirs:
        log = Log(mine, prefix="mine")
        log.add(log.run("run-1", words={(1, 1): "A"}), log.label(1, 1))
        project(mine, snap, log.deltas)
        other = Log(theirs, log.deltas, prefix="theirs")  # same kinds of events, other stream
        other.add(other.run("run-1", words={(1, 1): "A"}), other.label(1, 1), other.label(1, 2))
        with pytest.raises(ProjectionConflict) as raised:
            project(theirs, snap, log.deltas)
        assert str(raised.value) == (
            f"{snap} was built from another log: at its checkpoint 2 it recorded "
            "ddb:mine-00002, this store has ddb:theirs-00002"
        )
        with pytest.raises(ProjectionConflict):
            verify(theirs, snap, log.deltas)
        with pytest.raises(ProjectionConflict):
            diff(theirs, snap, log.deltas)
        assert checkpoint(snap) == (2, None)


def test_catching_up_against_a_shorter_log_is_a_conflict(snap: Path) -> None:
    with open_store("memory://") as mine, open_store("memory://") as theirs:
        log = Log(mine)
        log.add(log.run("run-1", words={(1, 1): "A"}), log.label(1, 1))
        project(mine, snap, log.deltas)
        Log(theirs).add(log.label(1, 1, "X"))  # one event only
        with pytest.raises(ProjectionConflict) as raised:
            project(theirs, snap, log.deltas)
        assert str(raised.value) == (
            f"{snap} was built from another log: at its checkpoint 2 it recorded "
            "ddb:ev-00002, this store has no event"
        )


def test_catching_up_to_a_position_before_the_checkpoint_is_a_conflict(
    log: Log, snap: Path
) -> None:
    log.add(log.run("run-1", words={(1, 1): "A"}), log.label(1, 1))
    project(log.store, snap, log.deltas)
    with pytest.raises(ProjectionConflict) as raised:
        project(log.store, snap, log.deltas, to=1)
    assert str(raised.value) == (
        f"{snap} is already at position 2, past 1; rebuild to reach an earlier position"
    )


def test_a_state_file_of_another_projection_version_is_refused(log: Log, snap: Path) -> None:
    log.add(log.run("run-1", words={(1, 1): "A"}))
    project(log.store, snap, log.deltas)
    state = ProjectionState(snap / STATE_FILE)
    state.set_meta("projection_version", 99)
    state.close()
    with pytest.raises(StateError) as raised:
        open_snapshot(snap)
    assert str(raised.value) == (
        f"{snap / STATE_FILE} was built by projection version 99; this code is version 1: "
        "rebuild the snapshot (receipt-events rebuild)"
    )
    with pytest.raises(StateError):  # refused again: the failed open released its lock
        snapshot_digest(snap)
    with pytest.raises(StateError):
        project(log.store, snap, log.deltas)


def test_catch_up_of_a_restored_copy_continues_like_the_original(
    log: Log, snap: Path, tmp_path: Path
) -> None:
    log.add(log.run("run-1", words={(1, 1): "A"}), log.label(1, 1))
    project(log.store, snap, log.deltas)
    log.add(log.place(merchant_name="Shop"), log.run("run-2", words={(1, 1): "B"}, receipt=2))
    copy = rebuild(log.store, tmp_path / "copy", log.deltas, from_snapshot=snap)
    assert (copy.from_snapshot, copy.position, copy.applied) == (2, 4, 2)
    with open_snapshot(snap) as snapshot:
        catch_up(log.store, snapshot, log.deltas)
    assert digest(snap) == copy.digest == rebuild(log.store, tmp_path / "zero", log.deltas).digest


@pytest.mark.parametrize("nth", [1, 3])
def test_crash_safety_holds_when_writes_stream_in_tiny_chroma_batches(
    log: Log, snap: Path, nth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a max Chroma batch of 2, writes go out while the batch is still being folded."""
    monkeypatch.setattr(ChromaDirectory, "max_batch_size", lambda self: 2)
    positions = crash_history(log)
    with pytest.raises(InjectedCrash):
        project(log.store, snap, log.deltas, batch_size=8, on_write=CrashOnWrite(nth))
    assert checkpoint(snap) == (0, positions[7])
    project(log.store, snap, log.deltas, batch_size=5)
    assert checkpoint(snap) == (positions[-1], None)
    monkeypatch.undo()
    assert digest(snap) == rebuild(log.store, snap.parent / "clean", log.deltas).digest


def test_a_crash_in_a_batch_that_stops_at_a_missing_delta_is_redone_up_to_the_stop(
    log: Log, snap: Path
) -> None:
    positions = log.add(
        log.run("run-1", lines={1: "A"}, words={(1, 1): "A"}),
        log.place(merchant_name="Shop"),
        log.run("run-2", words={(1, 1): "B"}, receipt=2),
    )
    missing = log.run("run-3", words={(1, 1): "C"}, receipt=3)
    del log.deltas.deltas[("run-3/words", "words")]
    positions += log.add(missing, log.label(1, 1, "TOTAL", "VALID"))
    with pytest.raises(InjectedCrash):
        project(log.store, snap, log.deltas, on_write=CrashOnWrite(1))
    with pytest.raises(ProjectionStopped) as raised:
        project(log.store, snap, log.deltas)
    assert raised.value.problem.position == positions[3]
    # the events before the missing delta are applied, and nothing is left in flight
    assert checkpoint(snap) == (positions[2], None)
    assert (
        digest(snap)
        == rebuild(log.store, snap.parent / "clean", log.deltas, to=positions[2]).digest
    )


@pytest.mark.parametrize(
    ("batch_size", "chroma_batch"),
    [(1, None), (3, None), (7, None), (1000, None), (3, 1), (1000, 2)],
)
def test_incremental_projection_in_any_batch_sizes_equals_a_rebuild(
    log: Log,
    snap: Path,
    batch_size: int,
    chroma_batch: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crash_history(log)
    clean = rebuild(log.store, snap.parent / "clean", log.deltas).digest
    if chroma_batch is not None:
        monkeypatch.setattr(ChromaDirectory, "max_batch_size", lambda self: chroma_batch)
    result = project(log.store, snap, log.deltas, batch_size=batch_size)
    assert (result.to_position, result.applied) == (12, 12)
    assert result.batches == -(-12 // batch_size)
    assert digest(snap) == clean
