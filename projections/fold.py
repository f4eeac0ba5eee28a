"""Fold a batch of events into per-receipt state, then plan the Chroma writes it needs.

Events change the projection's *state* (places, labels, owned records); Chroma writes are
planned from each touched record's state before and after the batch, so many changes to one
word become one write, and a write that changes nothing is skipped. An embedding is sent only
for a record whose vector or document a delta in this batch changed; every other change is a
metadata-only update (about 20x cheaper in Chroma).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from projections.errors import DeltaProblem
from projections.metadata import MANAGED_KEYS, LabelState, record_metadata
from projections.state import (
    HashChanges,
    HeldDelta,
    MergedDelta,
    PlaceState,
    ProjectionState,
    ReceiptView,
    RecordKey,
    RecordState,
)
from receipt_chroma.client import COLLECTIONS, CollectionName
from receipt_chroma.deltas import Delta, DeltaError
from receipt_chroma.digest import record_hash
from receipt_chroma.provenance import Provenance
from receipt_chroma.records import ChromaRecord
from receipt_chroma.writer import MetadataUpdate, Upsert
from receipt_events.events import (
    EmbeddingsAdopted,
    EmbeddingsPublished,
    LineRemoved,
    PlaceChanged,
    PlaceRemoved,
    ReceiptRemoved,
    WordLabelRemoved,
    WordLabelSet,
    WordRemoved,
)
from receipt_events.keys import KeyFormatError, LineKey, WordKey, parse_chroma_id
from receipt_events.store import Recorded

DeltaPolicy = Literal["stop", "hold"]
ReceiptId = tuple[str, int]
DeltaLoader = Callable[[str, CollectionName], Delta]


def receipt_tombstone(image_id: str, receipt_id: int) -> RecordKey:
    """The mark a receipt's removal leaves in its ``removed`` set (adopted vectors stay out)."""
    return ("receipt", f"IMAGE#{image_id}#RECEIPT#{receipt_id:05d}")


def baseline_run_id(event: EmbeddingsAdopted) -> str:
    """The name the baseline's records and deltas go by in the state, where runs have ids."""
    return f"baseline:{event.digest}"


class CollectionPlan(msgspec.Struct):
    upserts: list[Upsert] = msgspec.field(default_factory=list)
    updates: list[MetadataUpdate] = msgspec.field(default_factory=list)
    deletes: list[str] = msgspec.field(default_factory=list)
    added_ids: list[str] = msgspec.field(default_factory=list)  # upserts of new records

    @property
    def added(self) -> int:
        return len(self.added_ids)

    @property
    def writes(self) -> int:
        return len(self.upserts) + len(self.updates) + len(self.deletes)


class Plan(msgspec.Struct):
    collections: dict[str, CollectionPlan] = msgspec.field(
        default_factory=lambda: {name: CollectionPlan() for name in COLLECTIONS}
    )

    @property
    def writes(self) -> int:
        return sum(plan.writes for plan in self.collections.values())


class Fold:
    """One batch: events applied in log order to a copy of the touched receipts' state."""

    def __init__(
        self,
        state: ProjectionState,
        load_delta: DeltaLoader,
        *,
        policy: DeltaPolicy = "stop",
        known_digests: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self._state = state
        self._load_delta = load_delta
        self._policy = policy
        self._known_digests = dict(known_digests or {})
        self.pre: dict[ReceiptId, ReceiptView] = {}
        self.post: dict[ReceiptId, ReceiptView] = {}
        self.touched: dict[ReceiptId, set[RecordKey]] = {}
        self.fresh: dict[RecordKey, ChromaRecord] = {}  # vectors from this batch's deltas
        self.merged: list[MergedDelta] = []
        self.held: list[HeldDelta] = []
        self.dimensions: dict[str, int] = {}
        self.provenances: dict[str, Provenance] = {}  # collections whose model this batch set
        self.hashes = HashChanges()  # what the planned writes do to each collection's digest
        self.unhashed: dict[RecordKey, dict[str, Any]] = {}  # upserted: metadata, awaiting hash
        self.applied = 0
        self.last: Recorded | None = None

    # -- applying events -----------------------------------------------------------------

    def add(self, recorded: Recorded) -> None:
        """Apply one event; raises :class:`DeltaProblem` (changing nothing) under "stop"."""
        event = recorded.event
        if isinstance(event, EmbeddingsAdopted):
            self._adopt(event, recorded.position)
            self.applied += 1
            self.last = recorded
            return
        receipt = (event.image_id, event.receipt_id)
        if isinstance(event, EmbeddingsPublished):
            deltas = self._load_run(event, recorded.position)  # may raise, before any change
            view = self._view(receipt)
            for delta in deltas:
                self._merge(view, receipt, event, delta, recorded.position)
        else:
            view = self._view(receipt)
            if isinstance(event, PlaceChanged):
                view.places[event.entity] = PlaceState(event.fields(), recorded.position)
                self._touch_all(receipt, view)
            elif isinstance(event, PlaceRemoved):
                view.places.pop(event.entity, None)
                self._touch_all(receipt, view)
            elif isinstance(event, WordLabelSet):
                view.labels.setdefault((event.line_id, event.word_id), {})[event.label] = (
                    LabelState(
                        event.label,
                        event.validation_status,
                        event.label_proposed_by,
                        event.timestamp_added,
                        recorded.position,
                    )
                )
                self._touch(receipt, ("words", event.word.chroma_id))
            elif isinstance(event, WordLabelRemoved):
                word = (event.line_id, event.word_id)
                remaining = view.labels.get(word, {})
                remaining.pop(event.label, None)
                if not remaining:
                    view.labels.pop(word, None)
                self._touch(receipt, ("words", event.word.chroma_id))
            elif isinstance(event, ReceiptRemoved):
                self._touch_all(receipt, view)
                view.records.clear()
                view.removed.add(receipt_tombstone(event.image_id, event.receipt_id))
            elif isinstance(event, LineRemoved):
                self._remove(receipt, view, ("lines", event.line.chroma_id))
            elif isinstance(event, WordRemoved):
                self._remove(receipt, view, ("words", event.word.chroma_id))
        self.applied += 1
        self.last = recorded

    def _remove(self, receipt: ReceiptId, view: ReceiptView, key: RecordKey) -> None:
        self._touch(receipt, key)
        view.records.pop(key, None)
        view.removed.add(key)

    def _view(self, receipt: ReceiptId) -> ReceiptView:
        view = self.post.get(receipt)
        if view is None:
            before = self._state.load_receipt(*receipt)
            self.pre[receipt] = before
            view = self.post[receipt] = before.copy()
            self.touched[receipt] = set()
        return view

    def _touch(self, receipt: ReceiptId, key: RecordKey) -> None:
        self.touched[receipt].add(key)

    def _touch_all(self, receipt: ReceiptId, view: ReceiptView) -> None:
        self.touched[receipt].update(view.records)

    def _load_run(self, event: EmbeddingsPublished, position: int) -> list[Delta]:
        """Read and check both deltas of a run; hold back (or stop at) any that cannot be used."""
        deltas: list[Delta] = []
        problems: list[HeldDelta] = []
        locations: tuple[tuple[CollectionName, str], ...] = (
            ("lines", event.lines_delta),
            ("words", event.words_delta),
        )
        for collection, location in locations:
            try:
                delta = self._load_delta(location, collection)
                self._check(delta, event)
                deltas.append(delta)
            except DeltaError as error:
                if self._policy == "stop":
                    raise DeltaProblem(position, event.run_id, collection, error) from error
                problems.append(HeldDelta(event.run_id, collection, location, position, str(error)))
        self.held.extend(problems)
        return deltas

    def _check(self, delta: Delta, event: EmbeddingsPublished) -> None:
        """A run's delta must hold records of its receipt only, in one known dimension."""
        self._check_records(delta, event.run_id, (event.image_id, event.receipt_id))

    def _check_records(self, delta: Delta, run_id: str, receipt: ReceiptId | None) -> None:
        """Unchanged since first merged, ids of the right kind (of ``receipt`` if given), one
        embedding dimension, the collection's, and the collection's model."""
        collection = delta.collection
        known = self._known_digests.get((run_id, collection)) or self._state.delta_digest(
            run_id, collection
        )
        if known is not None and known != delta.digest:
            raise DeltaError(
                delta.location,
                f"content changed since it was first merged (was {known}, now {delta.digest})",
            )
        expected_kind = LineKey if collection == "lines" else WordKey
        for record in delta.records:
            try:
                key = parse_chroma_id(record.id)
            except KeyFormatError as error:
                raise DeltaError(delta.location, str(error)) from None
            if not isinstance(key, expected_kind):
                raise DeltaError(delta.location, f"{record.id} does not belong in {collection!r}")
            if receipt is not None and (key.image_id, key.receipt_id) != receipt:
                raise DeltaError(
                    delta.location,
                    f"{record.id} is not a record of receipt RECEIPT#{receipt[1]:05d}",
                )
        dimensions = {len(record.embedding) // 4 for record in delta.records}
        expected = self.dimensions.get(collection) or self._state.dimension(collection)
        if expected is not None:
            dimensions.add(expected)
        if len(dimensions) > 1:
            raise DeltaError(
                delta.location,
                f"embedding dimensions {sorted(dimensions)} in {collection!r}"
                + (f", which holds {expected}" if expected else ""),
            )
        model = self._collection_provenance(collection)
        both_known = model is not None and model.known and delta.provenance.known
        if both_known and model is not None and not delta.provenance.same_model(model):
            raise DeltaError(
                delta.location,
                f"embedded by {delta.provenance.label}, but {collection!r} holds vectors "
                f"of {model.label}: vectors of two models cannot be compared",
            )

    def _collection_provenance(self, collection: str) -> Provenance | None:
        return self.provenances.get(collection) or self._state.provenance(collection)

    def _merge(
        self,
        view: ReceiptView,
        receipt: ReceiptId,
        event: EmbeddingsPublished,
        delta: Delta,
        position: int,
    ) -> None:
        collection = delta.collection
        backfilled = not event.streamed
        tombstone = receipt_tombstone(*receipt)
        if not backfilled:
            view.removed.discard(tombstone)  # the stream embedded the receipt again
        for record in delta.records:
            key = (collection, record.id)
            if backfilled and not self._adoptable(view, key, tombstone):
                continue
            view.removed.discard(key)
            self._hold(receipt, view, key, record, event.run_id, adopted=backfilled)
        self._note_merged(delta, event.run_id, position)

    def _hold(
        self,
        receipt: ReceiptId,
        view: ReceiptView,
        key: RecordKey,
        record: ChromaRecord,
        run_id: str,
        *,
        adopted: bool,
    ) -> None:
        """Make ``record`` (from a delta of ``run_id``) the receipt's record at ``key``."""
        view.records[key] = RecordState(
            run_id=run_id,
            document=record.document,
            delta_metadata=record.metadata,
            embedding_sha=hashlib.sha256(record.embedding).hexdigest(),
            adopted=adopted,
        )
        self.fresh[key] = record
        self._touch(receipt, key)

    def _note_merged(self, delta: Delta, run_id: str, position: int) -> None:
        """Remember a merged delta: its dimension, its digest (checked on every later read),
        and its model, which becomes the collection's if the collection has no known one."""
        if delta.records:
            self.dimensions[delta.collection] = len(delta.records[0].embedding) // 4
        model = self._collection_provenance(delta.collection)
        if model is None or (not model.known and delta.provenance.known):
            self.provenances[delta.collection] = delta.provenance
        self._known_digests[(run_id, delta.collection)] = delta.digest
        self.merged.append(
            MergedDelta(
                run_id,
                delta.collection,
                delta.location,
                delta.digest,
                len(delta.records),
                position,
                delta.provenance,
            )
        )

    def _adopt(self, event: EmbeddingsAdopted, position: int) -> None:
        """Merge the baseline's records where the log has not spoken for them: a record no
        run in the log wrote (any run, adopted or streamed, is newer than the snapshot's
        copy) and the stream did not remove (:meth:`_adoptable`)."""
        deltas = self._load_baseline(event, position)  # may raise, before any change
        by_receipt: dict[ReceiptId, list[tuple[CollectionName, ChromaRecord]]] = {}
        for delta in deltas:
            for record in delta.records:
                owner = parse_chroma_id(record.id)
                by_receipt.setdefault((owner.image_id, owner.receipt_id), []).append(
                    (delta.collection, record)
                )
        run_id = baseline_run_id(event)
        for receipt in sorted(by_receipt):
            view = self._view(receipt)
            tombstone = receipt_tombstone(*receipt)
            for collection, record in by_receipt[receipt]:
                key = (collection, record.id)
                if key in view.records or not self._adoptable(view, key, tombstone):
                    continue  # the baseline only fills in: every run in the log is newer
                self._hold(receipt, view, key, record, run_id, adopted=True)
        for delta in deltas:
            self._note_merged(delta, run_id, position)

    @staticmethod
    def _adoptable(view: ReceiptView, key: RecordKey, tombstone: RecordKey) -> bool:
        """Whether an adopted record (the baseline's, a backfilled run's) may be merged: not
        when the stream removed it or its receipt, nor over a record a streamed run wrote."""
        if key in view.removed or tombstone in view.removed:
            return False
        held = view.records.get(key)
        return held is None or held.adopted

    def _load_baseline(self, event: EmbeddingsAdopted, position: int) -> list[Delta]:
        run_id = baseline_run_id(event)
        deltas: list[Delta] = []
        locations: tuple[tuple[CollectionName, str | None], ...] = (
            ("lines", event.lines_delta),
            ("words", event.words_delta),
        )
        for collection, location in locations:
            if location is None:
                continue
            try:
                delta = self._load_delta(location, collection)
                self._check_records(delta, run_id, None)
                deltas.append(delta)
            except DeltaError as error:
                if self._policy == "stop":
                    raise DeltaProblem(position, run_id, collection, error) from error
                self.held.append(HeldDelta(run_id, collection, location, position, str(error)))
        return deltas

    def fresh_done(self, receipt: ReceiptId) -> None:
        """Drop a planned receipt's new vectors: they are queued for writing, not needed here."""
        for key in self.touched[receipt]:
            self.fresh.pop(key, None)

    # -- planning ------------------------------------------------------------------------

    def plan(self, *, force: bool = False) -> Plan:
        """The writes that take Chroma from the batch's "before" state to its "after" state.

        ``force`` (redoing a batch a crash interrupted, when Chroma may already hold part of
        its writes) skips nothing: every touched record is deleted, upserted or given its full
        metadata, whatever the state says Chroma held before.
        """
        plan = Plan()
        for receipt in sorted(self.touched):
            self.plan_receipt(receipt, plan, force=force)
        return plan

    def plan_receipt(self, receipt: ReceiptId, plan: Plan, *, force: bool = False) -> None:
        """Add one receipt's writes to ``plan`` (once no later event in the batch touches it)."""
        before, after = self.pre[receipt], self.post[receipt]
        for key in sorted(self.touched[receipt]):
            self._plan_record(plan.collections[key[0]], key, before, after, force)

    def _plan_record(
        self,
        plan: CollectionPlan,
        key: RecordKey,
        before: ReceiptView,
        after: ReceiptView,
        force: bool,
    ) -> None:
        collection, record_id = key
        old, new = before.records.get(key), after.records.get(key)
        if new is None:
            if old is not None or force:
                plan.deletes.append(record_id)
            self._rehash(key, old, None)
            return
        new_metadata = metadata_of(after, collection, record_id, new)
        old_metadata = metadata_of(before, collection, record_id, old) if old else None
        vector_changed = old is None or (old.embedding_sha, old.document) != (
            new.embedding_sha,
            new.document,
        )
        if vector_changed:
            fresh = self.fresh.get(key)
            if fresh is None:  # pragma: no cover - records only appear through a delta
                raise AssertionError(f"{record_id}: new record without an embedding")
            removed = tuple(sorted(set(old_metadata or ()) - set(new_metadata)))
            record = ChromaRecord(record_id, new.document, new_metadata, fresh.embedding)
            plan.upserts.append(Upsert(record, removed))
            if old is None:
                plan.added_ids.append(record_id)
            self._rehash(key, old, None)
            self.unhashed[key] = new_metadata  # hashed once Chroma has stored the vector
            return
        # Chroma keeps the vector it stored; the record's hash follows its metadata.
        if new.stored_sha is None and old is not None:
            new = msgspec.structs.replace(new, stored_sha=old.stored_sha)
        if new.stored_sha is not None and (old_metadata != new_metadata or new.record_hash is None):
            hashed = record_hash(record_id, new.document, new_metadata, new.stored_sha)
            new = msgspec.structs.replace(new, record_hash=hashed)
        after.records[key] = new
        self._rehash(key, old, new)
        if force or old_metadata != new_metadata:
            stale = set(old_metadata or ()) | (MANAGED_KEYS[collection] if force else set())
            patch: dict[str, Any] = dict(new_metadata)
            patch.update(dict.fromkeys(sorted(stale - set(new_metadata))))
            plan.updates.append(MetadataUpdate(record_id, patch))

    def stored(self, collection: str, stored_shas: dict[str, bytes]) -> None:
        """Hash the records just upserted, now that Chroma's stored vectors are known."""
        for record_id, stored_sha in stored_shas.items():
            key = (collection, record_id)
            metadata = self.unhashed.pop(key, None)
            if metadata is None:
                continue
            owner = parse_chroma_id(record_id)
            view = self.post[(owner.image_id, owner.receipt_id)]
            record = view.records[key]
            hashed = record_hash(record_id, record.document, metadata, stored_sha)
            view.records[key] = msgspec.structs.replace(
                record, stored_sha=stored_sha, record_hash=hashed
            )
            self.hashes.added[collection].append(hashed)

    def _rehash(self, key: RecordKey, old: RecordState | None, new: RecordState | None) -> None:
        """Note a record's hash leaving and entering its collection's multiset hash."""
        before = old.record_hash if old is not None else None
        after = new.record_hash if new is not None else None
        if before == after:
            return
        if old is not None:
            assert before is not None, f"{key[1]}: a kept record without its hash (digest v1)"
            self.hashes.removed[key[0]].append(before)
        if after is not None:
            self.hashes.added[key[0]].append(after)


def metadata_of(
    view: ReceiptView, collection: str, record_id: str, record: RecordState
) -> dict[str, Any]:
    """The metadata a record must have, given its receipt's state."""
    labels: list[LabelState] = []
    if collection == "words":
        word = parse_chroma_id(record_id)
        assert isinstance(word, WordKey)
        labels = list(view.labels.get((word.line_id, word.word_id), {}).values())
    return record_metadata(collection, record.delta_metadata, view.place_fields(), labels)
