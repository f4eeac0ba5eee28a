"""A snapshot directory written before 0.2 keeps its held deltas: the state table they lived
in (``parked_deltas``) is renamed to ``held_deltas`` when the state is opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from projections.state import STATE_FILE, HeldDelta, ProjectionState


def test_a_state_file_with_the_old_table_name_is_carried_over(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    state = ProjectionState(path)
    held = HeldDelta("run-1", "words", "deltas/run-1/words", 7, "delta deltas/run-1/words: gone")
    state.commit_batch([], [], [held], {}, checkpoint=7, checkpoint_event="e-7")
    state.close()
    with sqlite3.connect(path) as db:  # as 0.1 wrote it
        db.execute("ALTER TABLE held_deltas RENAME TO parked_deltas")

    reopened = ProjectionState(path)
    assert reopened.held_deltas() == [held]
    assert reopened.checkpoint == 7
    reopened.close()
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "held_deltas" in tables
    assert "parked_deltas" not in tables


def test_a_current_state_file_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    ProjectionState(path).close()
    reopened = ProjectionState(path)
    assert reopened.held_deltas() == []
    reopened.close()


def test_a_state_file_from_0_2_gains_the_adopted_column_and_keeps_its_records(
    tmp_path: Path,
) -> None:
    from projections.state import ReceiptView, RecordState

    path = tmp_path / STATE_FILE
    state = ProjectionState(path)
    view = ReceiptView("img", 1)
    record = RecordState("run-1", "TOTAL", {"x": 1}, "ab" * 32)
    view.records[("words", "IMAGE#img#RECEIPT#00001#LINE#00001#WORD#00001")] = record
    state.commit_batch([view], [], [], {}, checkpoint=3, checkpoint_event="e-3")
    state.close()
    with sqlite3.connect(path) as db:  # as 0.2 wrote it: no adopted column, no tombstones
        db.execute("ALTER TABLE records DROP COLUMN adopted")
        db.execute("DROP TABLE removed_records")

    reopened = ProjectionState(path)
    loaded = reopened.load_receipt("img", 1)
    assert list(loaded.records.values()) == [record]  # adopted: False, as before 0.3
    assert loaded.removed == set()
    reopened.close()


def test_a_state_file_from_before_tombstones_recovers_them_from_the_log(tmp_path: Path) -> None:
    """Removals applied by a 0.2 state left no tombstones; catching up recovers them, so an
    adopted run that predates a removal does not bring the removed word back (the caught-up
    snapshot equals a fresh rebuild)."""
    import msgspec

    from receipt_events.events import BackfillSource, EmbeddingsPublished, WordRemoved
    from receipt_events.store import open_store
    from tests.support.cli_runs import ingested_history, ok_json, run

    store_url = ingested_history(tmp_path, seed=3, receipts=6)
    with open_store(store_url) as store:
        events = [recorded.event for recorded in store.iter_events()]
        removed_after = {
            (event.image_id, event.receipt_id): event
            for event in events
            if isinstance(event, WordRemoved)
        }
        stale = next(
            event
            for event in events
            if isinstance(event, EmbeddingsPublished)
            and (event.image_id, event.receipt_id) in removed_after
            and events.index(event)
            < events.index(removed_after[(event.image_id, event.receipt_id)])
        )
    deltas = ["--deltas", tmp_path]
    ok_json(
        run("rebuild", "--snapshot-dir", tmp_path / "old", "--store", store_url, *deltas, "--json")
    )
    with sqlite3.connect(tmp_path / "old" / STATE_FILE) as db:  # as 0.2 left it
        db.execute("DROP TABLE removed_records")
    adopted = msgspec.structs.replace(
        stale, source=BackfillSource(via="scan", table="receipts", read_at=1.0)
    )
    with open_store(store_url) as store:
        assert store.append([adopted]) != [None]
    ok_json(
        run("project", "--snapshot-dir", tmp_path / "old", "--store", store_url, *deltas, "--json")
    )
    ok_json(
        run("rebuild", "--snapshot-dir", tmp_path / "new", "--store", store_url, *deltas, "--json")
    )
    caught_up = ok_json(run("digest", tmp_path / "old", "--json"))
    rebuilt = ok_json(run("digest", tmp_path / "new", "--json"))
    assert caught_up == rebuilt
