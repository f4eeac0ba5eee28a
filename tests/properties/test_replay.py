"""Replay determinism of the Chroma projection on real ChromaDB (its guarantees:
docs/projection.md).

1. Any partition of the log into catch-up batches ≡ one rebuild from zero.
2. A snapshot at a random k, caught up (or rebuilt ``--from-snapshot``) to n ≡ rebuild to n.
3. A crash after any Chroma write, before or inside the checkpoint commit, then a re-run
   (with another batch size) ≡ rebuild; re-running when nothing is new changes nothing.
4. The collections hold exactly what the reference model (``model.py``) says, at any k.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from projections.runner import catch_up
from projections.snapshot_dir import open_snapshot
from projections.state import ProjectionState
from tests.properties import profiles
from tests.properties.harness import (
    assert_contents_equal,
    digest_both_ways,
    dump_snapshot,
    rebuild_to,
)
from tests.properties.histories import History, cut_points, histories, positions
from tests.properties.model import replay

property_settings = settings(settings.get_profile(profiles.PROFILE))
batch_sizes = st.integers(1, 6)


@contextmanager
def workdir() -> Iterator[Path]:
    """A fresh temporary directory per example (function-scoped fixtures are per test)."""
    with tempfile.TemporaryDirectory(prefix="receipt-props-") as name:
        yield Path(name)


def draw_history(data: st.DataObject) -> History:
    return data.draw(histories(profiles.SIZES), label="history")


@property_settings
@given(data=st.data())
def test_any_partition_equals_rebuild(data: st.DataObject) -> None:
    history = draw_history(data)
    cuts = cut_points(data.draw, history.head)
    sizes = [data.draw(batch_sizes, label=f"batch size up to {cut}") for cut in cuts]
    with workdir() as root:
        reference = rebuild_to(history, root / "rebuilt")
        path = root / "incremental"
        with history.open_store() as store, open_snapshot(path) as snapshot:
            deltas = history.delta_source()
            for cut, size in zip(cuts, sizes, strict=True):
                catch_up(store, snapshot, deltas, to=cut, batch_size=size)
                assert snapshot.state.checkpoint == cut
        assert digest_both_ways(path) == reference


@property_settings
@given(data=st.data())
def test_snapshot_then_catch_up_equals_rebuild(data: st.DataObject) -> None:
    history = draw_history(data)
    k = data.draw(positions(history.head), label="k")
    k_batch = data.draw(batch_sizes, label="batch size up to k")
    restore = data.draw(st.booleans(), label="rebuild --from-snapshot (else catch up)")
    tail_batch = data.draw(batch_sizes, label="batch size after k")
    with workdir() as root:
        reference = rebuild_to(history, root / "rebuilt")
        rebuild_to(history, root / "at-k", to=k, batch_size=k_batch)
        if restore:
            digest = rebuild_to(
                history, root / "restored", from_snapshot=root / "at-k", batch_size=tail_batch
            )
        else:
            with history.open_store() as store, open_snapshot(root / "at-k") as snapshot:
                catch_up(store, snapshot, history.delta_source(), batch_size=tail_batch)
            digest = digest_both_ways(root / "at-k")
        assert digest == reference


class Crash(Exception):
    """Injected: the process dies here."""


crash_points = st.one_of(
    st.tuples(st.just("write"), st.integers(1, 4)),  # raise after the j-th Chroma write call
    st.tuples(st.just("begin"), st.integers(1, 2)),  # j-th in-flight note made, nothing written
    st.tuples(st.just("commit"), st.integers(1, 2)),  # the j-th checkpoint commit never starts
    st.tuples(st.just("mid-commit"), st.integers(1, 2)),  # inside it, after j receipts saved
)


@contextmanager
def crash_at(kind: str, j: int) -> Iterator[Any]:
    """Arm one crash; yields the ``on_write`` hook to pass to ``catch_up``."""
    calls = 0

    def count(*_: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == j:
            raise Crash(f"{kind} #{j}")

    with pytest.MonkeyPatch.context() as patch:
        if kind == "begin":
            begin_batch = ProjectionState.begin_batch

            def begin(self: ProjectionState, to: int) -> None:
                begin_batch(self, to)
                count()

            patch.setattr(ProjectionState, "begin_batch", begin)
        elif kind == "commit":
            commit_batch = ProjectionState.commit_batch

            def commit(self: ProjectionState, *args: Any, **kwargs: Any) -> None:
                count()
                commit_batch(self, *args, **kwargs)

            patch.setattr(ProjectionState, "commit_batch", commit)
        elif kind == "mid-commit":
            save_receipt = ProjectionState._save_receipt

            def save(self: ProjectionState, view: Any) -> None:
                save_receipt(self, view)
                count()

            patch.setattr(ProjectionState, "_save_receipt", save)
        yield count if kind == "write" else None


@property_settings
@given(data=st.data())
def test_crash_and_rerun_equals_rebuild(data: st.DataObject) -> None:
    history = draw_history(data)
    crashes = data.draw(st.lists(crash_points, min_size=1, max_size=3), label="crashes")
    crashed = 0
    with workdir() as root, history.open_store() as store:
        reference = rebuild_to(history, root / "rebuilt")
        path = root / "crashed"
        deltas = history.delta_source()
        size = 0
        for kind, j in crashes:
            size = data.draw(batch_sizes, label="batch size")
            with crash_at(kind, j) as on_write, open_snapshot(path) as snapshot:
                try:
                    catch_up(store, snapshot, deltas, batch_size=size, on_write=on_write)
                except Crash:
                    crashed += 1  # closing the snapshot drops its handles and lock, as exit would
        event(f"crashed {crashed} of {len(crashes)} time(s)")
        rerun_size = data.draw(batch_sizes.filter(lambda s: s != size), label="re-run size")
        with open_snapshot(path) as snapshot:  # the re-run, in another batch size
            catch_up(store, snapshot, deltas, batch_size=rerun_size)
            assert snapshot.state.checkpoint == history.head
            assert snapshot.state.inflight_to is None
            again = catch_up(store, snapshot, deltas, batch_size=data.draw(batch_sizes))
            assert (again.applied, again.records_written) == (0, 0)
        assert digest_both_ways(path) == reference


@settings(property_settings, max_examples=3 * property_settings.max_examples)  # one rebuild
@given(data=st.data())
def test_contents_equal_reference_model(data: st.DataObject) -> None:
    history = draw_history(data)
    k = data.draw(st.just(history.head) | positions(history.head), label="k")
    size = data.draw(st.just(10_000) | batch_sizes, label="batch size")
    with workdir() as root:
        rebuild_to(history, root / "rebuilt", to=k, batch_size=size)
        actual = dump_snapshot(root / "rebuilt")
    event(f"{sum(map(len, actual.values()))} records at k")
    assert_contents_equal(actual, replay(history.events, history.deltas, k), history)
