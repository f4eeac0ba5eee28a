"""One projection batch against a snapshot directory: fold → plan → write → commit.

The order is what makes a crash anywhere harmless: the batch's end is noted in the state
before any Chroma write (``begin_batch``), and state and checkpoint are committed together
only after every write. A re-run after a crash redoes the noted batch, forcing every write.

Writes stream while the batch is folded: a receipt whose last event in the batch has been
applied has its final state for this batch, so its records are planned and queued at once,
and queues are written whenever they reach Chroma's max batch size. On a rebuild (one very
large batch) Chroma writes therefore overlap the reading of later deltas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
from chromadb.api.models.Collection import Collection

from projections.errors import DeltaProblem
from projections.fold import CollectionPlan, DeltaLoader, DeltaPolicy, Fold, Plan
from projections.snapshot_dir import SnapshotDirectory
from receipt_chroma.client import ChromaDirectory
from receipt_chroma.writer import delete, update_metadata, upsert
from receipt_events import faults
from receipt_events.events import EmbeddingsAdopted
from receipt_events.store import Recorded

WriteHook = Callable[[str, str, int], None]  # (operation, collection, records) after each call
StoredHook = Callable[[str, dict[str, bytes]], None]  # (collection, id → stored vector's sha256)


class BatchResult(msgspec.Struct):
    first: int
    last: int
    applied: int
    added: int
    updated: int
    deleted: int
    held_deltas: int

    @property
    def records_written(self) -> int:
        return self.added + self.updated + self.deleted


def fold_events(
    snapshot: SnapshotDirectory,
    events: Sequence[Recorded],
    load_delta: DeltaLoader,
    *,
    policy: DeltaPolicy,
    known_digests: dict[tuple[str, str], str] | None = None,
) -> tuple[Fold, DeltaProblem | None]:
    """Fold events in order, stopping before the first one whose delta cannot be used."""
    fold = Fold(snapshot.state, load_delta, policy=policy, known_digests=known_digests)
    for recorded in events:
        try:
            fold.add(recorded)
        except DeltaProblem as problem:
            return fold, problem
    return fold, None


class PlanWriter:
    """Queues planned writes and sends them to Chroma in max-size batches.

    ``before_first_write`` runs once, before anything reaches Chroma (the in-flight note);
    ``on_stored`` gets the hashes of the vectors Chroma stored for each upsert.
    Deletes, upserts and updates touch distinct records, so queues flush independently.
    """

    def __init__(
        self,
        chroma: ChromaDirectory,
        before_first_write: Callable[[], None],
        on_write: WriteHook | None = None,
        on_stored: StoredHook = lambda collection, stored: None,
    ) -> None:
        self._chroma = chroma
        self._before_first_write: Callable[[], None] | None = before_first_write
        self._on_write = on_write
        self._on_stored = on_stored
        self._batch_size = chroma.max_batch_size()
        self.queued = Plan()
        self.added = self.updated = self.deleted = 0

    @property
    def started(self) -> bool:
        """Whether anything has been written (and the batch noted in flight)."""
        return self._before_first_write is None

    def add(self, plan: Plan) -> None:
        for name, incoming in plan.collections.items():
            queue = self.queued.collections[name]
            queue.deletes += incoming.deletes
            queue.upserts += incoming.upserts
            queue.updates += incoming.updates
            queue.added_ids += incoming.added_ids
            self._flush(name, queue, full_only=True)

    def flush(self) -> None:
        for name, queue in self.queued.collections.items():
            self._flush(name, queue, full_only=False)

    def _flush(self, name: str, queue: CollectionPlan, *, full_only: bool) -> None:
        size = self._batch_size if full_only else 1
        batch = self._batch_size
        if len(queue.deletes) >= size:
            self._write(
                "delete", name, len(queue.deletes), lambda c: delete(c, queue.deletes, batch)
            )
            self.deleted += len(queue.deletes)
            queue.deletes.clear()
        if len(queue.upserts) >= size:
            self._write(
                "upsert",
                name,
                len(queue.upserts),
                lambda c: self._on_stored(name, upsert(c, queue.upserts, batch)),
            )
            self.added += len(queue.added_ids)
            self.updated += len(queue.upserts) - len(queue.added_ids)
            queue.upserts.clear()
            queue.added_ids.clear()
        if len(queue.updates) >= size:
            updates = queue.updates
            self._write("update", name, len(updates), lambda c: update_metadata(c, updates, batch))
            self.updated += len(updates)
            queue.updates.clear()

    def _write(
        self, operation: str, name: str, records: int, write: Callable[[Collection], None]
    ) -> None:
        if self._before_first_write is not None:
            self._before_first_write()
            self._before_first_write = None
        write(self._chroma.collection(name))  # type: ignore[arg-type]
        faults.point("projection.after_chroma_write")
        if self._on_write is not None:
            self._on_write(operation, name, records)


def write_plan(chroma: ChromaDirectory, plan: Plan, on_write: WriteHook | None = None) -> None:
    """Write a whole plan (deletes, upserts, metadata updates) in max-size batches."""
    writer = PlanWriter(chroma, lambda: None, on_write)
    writer.add(plan)
    writer.flush()


def apply_batch(
    snapshot: SnapshotDirectory,
    events: Sequence[Recorded],
    load_delta: DeltaLoader,
    *,
    policy: DeltaPolicy = "stop",
    known_digests: dict[tuple[str, str], str] | None = None,
    redo: bool = False,
    on_write: WriteHook | None = None,
) -> tuple[BatchResult | None, DeltaProblem | None]:
    """Apply the events (or those before a delta problem) and advance the checkpoint."""
    if not events:
        return None, None
    state = snapshot.state
    fold = Fold(state, load_delta, policy=policy, known_digests=known_digests)
    batch_end = [events[-1].position]  # where the batch ends, as noted before any write
    writer = PlanWriter(
        snapshot.chroma, lambda: state.begin_batch(batch_end[0]), on_write, fold.stored
    )
    # A receipt is planned once no later event of the batch touches it; a baseline (which
    # touches any receipt) defers every plan to the end of its batch.
    adopting = any(isinstance(r.event, EmbeddingsAdopted) for r in events)
    last_event_of = {
        (r.event.image_id, r.event.receipt_id): r.position
        for r in events
        if not isinstance(r.event, EmbeddingsAdopted)
    }
    problem: DeltaProblem | None = None
    planned: set[tuple[str, int]] = set()
    for recorded in events:
        try:
            fold.add(recorded)
        except DeltaProblem as stopped:
            problem = stopped
            break
        event = recorded.event
        if adopting or isinstance(event, EmbeddingsAdopted):
            continue
        receipt = (event.image_id, event.receipt_id)
        if last_event_of[receipt] == recorded.position:  # no later event of it in this batch
            planned.add(receipt)
            writer.add(_receipt_plan(fold, receipt, redo))
    if fold.last is None or (problem is not None and redo):
        # Nothing applied, or a redo that cannot complete: the batch stays in flight (any
        # writes already made are redone, forced, by the next run).
        return None, problem
    if problem is not None:
        # The batch now ends before the stop. Every write made so far belongs to a receipt
        # whose last event precedes it, so narrowing the in-flight note keeps a redo exact.
        batch_end[0] = fold.last.position
        if writer.started:
            state.begin_batch(batch_end[0])
    for receipt in sorted(set(fold.touched) - planned):
        writer.add(_receipt_plan(fold, receipt, redo))
    writer.flush()
    assert not fold.unhashed, "every upserted record is hashed once written"
    state.commit_batch(
        views=[fold.post[receipt] for receipt in fold.touched],
        merged=fold.merged,
        held=fold.held,
        dimensions=fold.dimensions,
        checkpoint=fold.last.position,
        checkpoint_event=fold.last.event.originator_id,
        hashes=fold.hashes,
        provenances=fold.provenances,
    )
    faults.point("projection.after_state_commit")
    return (
        BatchResult(
            first=events[0].position,
            last=fold.last.position,
            applied=fold.applied,
            added=writer.added,
            updated=writer.updated,
            deleted=writer.deleted,
            held_deltas=len(fold.held),
        ),
        problem,
    )


def _receipt_plan(fold: Fold, receipt: tuple[str, int], force: bool) -> Plan:
    plan = Plan()
    fold.plan_receipt(receipt, plan, force=force)
    fold.fresh_done(receipt)
    return plan
