"""The projection's state: a small SQLite file inside the snapshot directory.

It holds what the Chroma records are a function of (each receipt's place fields, each word's
labels, each record's delta metadata and embedding digest), the deltas merged so far with
their content digests, held deltas, and the checkpoint. State is loaded and saved a whole
receipt at a time, and a batch's receipts are saved in one transaction together with the new
checkpoint, so state and checkpoint can never disagree.

Before a batch writes to Chroma, ``begin_batch`` commits the batch's end position
(``inflight_to``). A process that dies mid-batch leaves it set, and the next run redoes exactly
that batch from the unchanged state: the same events on the same state plan the same writes,
so whatever part of them reached Chroma is simply written again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from projections.errors import StateError
from projections.metadata import LabelState
from receipt_chroma.client import COLLECTIONS
from receipt_chroma.digest import DIGEST_VERSION, Digest, snapshot_digest
from receipt_chroma.lthash import LtHash
from receipt_chroma.provenance import Provenance, decode_provenance, encode_provenance

PROJECTION_VERSION = 1
STATE_FILE = "state.sqlite3"
TOMBSTONES_MISSING = "tombstones_missing_to"  # meta: removals up to here left no tombstones
DIGEST_VERSION_KEY = "digest_version"  # meta: 2 once the state keeps record hashes and lanes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS places (
    image_id TEXT, receipt_id INTEGER, entity TEXT, fields TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (image_id, receipt_id, entity));
CREATE TABLE IF NOT EXISTS labels (
    image_id TEXT, receipt_id INTEGER, line_id INTEGER, word_id INTEGER, label TEXT,
    validation_status TEXT NOT NULL, label_proposed_by TEXT, timestamp_added TEXT,
    position INTEGER NOT NULL,
    PRIMARY KEY (image_id, receipt_id, line_id, word_id, label));
CREATE TABLE IF NOT EXISTS records (
    collection TEXT, id TEXT, image_id TEXT NOT NULL, receipt_id INTEGER NOT NULL,
    run_id TEXT NOT NULL, document TEXT, metadata TEXT NOT NULL, embedding_sha TEXT NOT NULL,
    adopted INTEGER NOT NULL DEFAULT 0, stored_sha BLOB, record_hash BLOB,
    PRIMARY KEY (collection, id));
CREATE INDEX IF NOT EXISTS records_by_receipt ON records (image_id, receipt_id);
CREATE TABLE IF NOT EXISTS deltas (
    run_id TEXT, collection TEXT, location TEXT NOT NULL, digest TEXT NOT NULL,
    records INTEGER NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (run_id, collection));
CREATE TABLE IF NOT EXISTS removed_records (
    collection TEXT, id TEXT, image_id TEXT NOT NULL, receipt_id INTEGER NOT NULL,
    PRIMARY KEY (collection, id));
CREATE INDEX IF NOT EXISTS removed_by_receipt ON removed_records (image_id, receipt_id);
CREATE TABLE IF NOT EXISTS held_deltas (
    run_id TEXT, collection TEXT, location TEXT NOT NULL, position INTEGER NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (run_id, collection));
CREATE TABLE IF NOT EXISTS collection_hashes (
    collection TEXT PRIMARY KEY, records INTEGER NOT NULL, lanes BLOB NOT NULL);
"""


class PlaceState(msgspec.Struct, frozen=True):
    fields: dict[str, str | None]
    position: int


class RecordState(msgspec.Struct, frozen=True):
    """A record the projection owns: where it came from and what its metadata derives from."""

    run_id: str
    document: str | None
    delta_metadata: dict[str, Any]
    embedding_sha: str
    adopted: bool = False  # from the baseline or a backfilled run: a streamed run's replaces it
    # sha256 of the vector as Chroma stored it (cosine space normalises it), and of the whole
    # record as Chroma holds it: what the digest is made of (None until the record is written)
    stored_sha: bytes | None = None
    record_hash: bytes | None = None


class MergedDelta(msgspec.Struct, frozen=True):
    run_id: str
    collection: str
    location: str
    digest: str
    records: int
    position: int
    provenance: Provenance = Provenance()


class HeldDelta(msgspec.Struct, frozen=True):
    """A delta the projection could not use (missing, changed, malformed) and went on without,
    under ``--on-missing-delta hold``: its run's records of that collection stay out."""

    run_id: str
    collection: str
    location: str
    position: int
    error: str


RecordKey = tuple[str, str]  # (collection, chroma id)
WordLabels = dict[str, LabelState]  # label → state


@dataclass
class HashChanges:
    """Record hashes a batch adds to and removes from each collection's multiset hash."""

    added: dict[str, list[bytes]] = field(default_factory=lambda: {n: [] for n in COLLECTIONS})
    removed: dict[str, list[bytes]] = field(default_factory=lambda: {n: [] for n in COLLECTIONS})


@dataclass
class ReceiptView:
    """Everything the projection knows about one receipt."""

    image_id: str
    receipt_id: int
    places: dict[str, PlaceState] = field(default_factory=dict)  # entity → place
    labels: dict[tuple[int, int], WordLabels] = field(default_factory=dict)  # (line, word) → labels
    records: dict[RecordKey, RecordState] = field(default_factory=dict)
    # lines and words the stream removed: a backfilled run's older delta must not bring them back
    removed: set[RecordKey] = field(default_factory=set)

    def copy(self) -> ReceiptView:
        return ReceiptView(
            self.image_id,
            self.receipt_id,
            dict(self.places),
            {word: dict(labels) for word, labels in self.labels.items()},
            dict(self.records),
            set(self.removed),
        )

    def place_fields(self) -> dict[str, str | None] | None:
        """The receipt's effective place: of the place items it has, the last one changed."""
        if not self.places:
            return None
        return max(self.places.values(), key=lambda place: place.position).fields


class ProjectionState:
    """The state file of one snapshot directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._rename_table("parked_deltas", "held_deltas")  # the name before 0.2
        had_tombstones = "removed_records" in self._tables()
        self._db.executescript(_SCHEMA)
        if not had_tombstones and self.checkpoint > 0:
            # A state file from before 0.3 applied removals without keeping tombstones: the
            # runner recovers them from the log before it applies anything new.
            self.set_meta(TOMBSTONES_MISSING, self.checkpoint)
        self._add_column("records", "adopted INTEGER NOT NULL DEFAULT 0")  # since 0.3
        self._add_column("records", "stored_sha BLOB")  # since 0.5 (digest v2)
        self._add_column("records", "record_hash BLOB")
        self._add_column("deltas", "provenance TEXT")  # since 0.6: NULL for deltas merged before
        if self.get_meta(DIGEST_VERSION_KEY) is None and self.checkpoint == 0:
            self.set_meta(DIGEST_VERSION_KEY, DIGEST_VERSION)  # new: nothing to hash yet
        version = self.get_meta("projection_version")
        if version is None:
            self.set_meta("projection_version", PROJECTION_VERSION)
        elif version != PROJECTION_VERSION:
            raise StateError(
                f"{path} was built by projection version {version}; this code is version "
                f"{PROJECTION_VERSION}: rebuild the snapshot (receipt-events rebuild)"
            )

    def _tables(self) -> set[str]:
        return {
            name
            for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }

    def _rename_table(self, old: str, new: str) -> None:
        """Carry a state file written under an older table name over to the current one."""
        tables = self._tables()
        if old in tables and new not in tables:
            self._db.execute(f"ALTER TABLE {old} RENAME TO {new}")

    def _add_column(self, table: str, definition: str) -> None:
        """Carry a state file written before a column existed over to the current schema."""
        name = definition.split()[0]
        columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
        if name not in columns:
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN {definition}")

    # -- meta ------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else msgspec.json.decode(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, msgspec.json.encode(value).decode()),
        )

    @property
    def checkpoint(self) -> int:
        return int(self.get_meta("checkpoint") or 0)

    @property
    def checkpoint_event(self) -> str | None:
        """The store id of the event at the checkpoint: ties this state to one log."""
        value = self.get_meta("checkpoint_event")
        return None if value is None else str(value)

    @property
    def inflight_to(self) -> int | None:
        value = self.get_meta("inflight_to")
        return None if value is None else int(value)

    @property
    def digest_version(self) -> int:
        """2 for a state that keeps record hashes; 1 for one written before (none kept)."""
        return int(self.get_meta(DIGEST_VERSION_KEY) or 1)

    def require_digest_v2(self) -> None:
        """Refuse to go on from a state that keeps no record hashes (from before digest v2)."""
        if self.digest_version < DIGEST_VERSION:
            raise StateError(
                f"{self.path.parent} is a snapshot from before canonical digest v2: its state "
                "keeps no record hashes, and the digest published for it (v1) cannot be "
                "compared with today's. Rebuild it: `receipt-events rebuild --out NEW_DIR` "
                "(then `receipt-events snapshot push NEW_DIR DEST` to publish it)"
            )

    def collection_hashes(self) -> dict[str, LtHash]:
        """Each collection's multiset hash of its records, as of the checkpoint."""
        found: dict[str, LtHash] = {name: LtHash() for name in COLLECTIONS}
        for collection, records, lanes in self._db.execute(
            "SELECT collection, records, lanes FROM collection_hashes"
        ):
            found[collection] = LtHash.from_bytes(lanes, records)
        return found

    def digest(self) -> Digest:
        """The canonical digest at the checkpoint, from the kept hashes: no Chroma dump."""
        self.require_digest_v2()
        return snapshot_digest(self.collection_hashes(), self.checkpoint)

    def record_hashes(self, collection: str) -> dict[str, bytes | None]:
        """Each record's kept hash (id → hash), to name the records a digest differs on."""
        return dict(
            self._db.execute(
                "SELECT id, record_hash FROM records WHERE collection = ?", (collection,)
            )
        )

    def dimension(self, collection: str) -> int | None:
        value = self.get_meta(f"dimension:{collection}")
        return None if value is None else int(value)

    def provenance(self, collection: str) -> Provenance | None:
        """The model that made the collection's vectors: the first known provenance of a
        delta merged into it, unknown while none was known, None before any delta (or in a
        state from before provenance was kept)."""
        value = self.get_meta(f"provenance:{collection}")
        return None if value is None else msgspec.convert(value, Provenance)

    def delta_provenances(self, collection: str) -> dict[str, int]:
        """How many merged deltas of the collection each model made (its label; ``unknown``
        also counts deltas merged before provenance was kept)."""
        counts: dict[str, int] = {}
        for text, count in self._db.execute(
            "SELECT provenance, COUNT(*) FROM deltas WHERE collection = ? GROUP BY provenance",
            (collection,),
        ):
            label = (decode_provenance(text) or Provenance()).label
            counts[label] = counts.get(label, 0) + count
        return dict(sorted(counts.items()))

    # -- receipts --------------------------------------------------------------------

    def load_receipt(self, image_id: str, receipt_id: int) -> ReceiptView:
        view = ReceiptView(image_id, receipt_id)
        key = (image_id, receipt_id)
        for entity, fields, position in self._db.execute(
            "SELECT entity, fields, position FROM places WHERE image_id = ? AND receipt_id = ?",
            key,
        ):
            view.places[entity] = PlaceState(msgspec.json.decode(fields), position)
        for line_id, word_id, label, status, proposed_by, added, position in self._db.execute(
            "SELECT line_id, word_id, label, validation_status, label_proposed_by, "
            "timestamp_added, position FROM labels WHERE image_id = ? AND receipt_id = ?",
            key,
        ):
            view.labels.setdefault((line_id, word_id), {})[label] = LabelState(
                label, status, proposed_by, added, position
            )
        for (
            collection,
            record_id,
            run_id,
            document,
            metadata,
            sha,
            adopted,
            stored_sha,
            hashed,
        ) in self._db.execute(
            "SELECT collection, id, run_id, document, metadata, embedding_sha, adopted, "
            "stored_sha, record_hash FROM records WHERE image_id = ? AND receipt_id = ?",
            key,
        ):
            view.records[(collection, record_id)] = RecordState(
                run_id,
                document,
                msgspec.json.decode(metadata),
                sha,
                bool(adopted),
                stored_sha,
                hashed,
            )
        view.removed.update(
            self._db.execute(
                "SELECT collection, id FROM removed_records WHERE image_id = ? AND receipt_id = ?",
                key,
            )
        )
        return view

    def delta_digest(self, run_id: str, collection: str) -> str | None:
        row = self._db.execute(
            "SELECT digest FROM deltas WHERE run_id = ? AND collection = ?", (run_id, collection)
        ).fetchone()
        return None if row is None else str(row[0])

    def known_delta_digests(self) -> dict[tuple[str, str], str]:
        return {
            (run_id, collection): digest
            for run_id, collection, digest in self._db.execute(
                "SELECT run_id, collection, digest FROM deltas"
            )
        }

    def held_deltas(self) -> list[HeldDelta]:
        return [
            HeldDelta(*row)
            for row in self._db.execute(
                "SELECT run_id, collection, location, position, error FROM held_deltas "
                "ORDER BY position, collection"
            )
        ]

    def record_count(self) -> dict[str, int]:
        counts = dict.fromkeys(("lines", "words"), 0)
        for collection, count in self._db.execute(
            "SELECT collection, COUNT(*) FROM records GROUP BY collection"
        ):
            counts[collection] = count
        return counts

    @property
    def tombstones_missing_to(self) -> int | None:
        value = self.get_meta(TOMBSTONES_MISSING)
        return None if value is None else int(value)

    def recover_tombstones(self, removed: Iterable[tuple[str, str, str, int]]) -> None:
        """Record the tombstones (collection, id, image, receipt) of removals applied before
        tombstones were kept, and forget that they were missing."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO removed_records VALUES (?, ?, ?, ?)", removed
            )
            self._db.execute("DELETE FROM meta WHERE key = ?", (TOMBSTONES_MISSING,))

    # -- batches ---------------------------------------------------------------------

    def begin_batch(self, to: int) -> None:
        """Durably note that a batch ending at ``to`` is about to write to Chroma."""
        self.set_meta("inflight_to", to)

    def commit_batch(
        self,
        views: Iterable[ReceiptView],
        merged: Iterable[MergedDelta],
        held: Iterable[HeldDelta],
        dimensions: dict[str, int],
        checkpoint: int,
        checkpoint_event: str | None,
        hashes: HashChanges | None = None,
        provenances: dict[str, Provenance] | None = None,
    ) -> None:
        """Save the batch's receipts, deltas, hash changes and the new checkpoint in one
        transaction."""
        self.require_digest_v2()
        with self._transaction():
            if hashes is not None:
                self._update_collection_hashes(hashes)
            for view in views:
                self._save_receipt(view)
            self._db.executemany(
                "INSERT OR REPLACE INTO deltas (run_id, collection, location, digest, records, "
                "position, provenance) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.run_id,
                        d.collection,
                        d.location,
                        d.digest,
                        d.records,
                        d.position,
                        encode_provenance(d.provenance),
                    )
                    for d in merged
                ],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO held_deltas VALUES (?, ?, ?, ?, ?)",
                [(p.run_id, p.collection, p.location, p.position, p.error) for p in held],
            )
            for collection, dimension in dimensions.items():
                self.set_meta(f"dimension:{collection}", dimension)
            for collection, model in (provenances or {}).items():
                self.set_meta(f"provenance:{collection}", msgspec.to_builtins(model))
            self.set_meta("checkpoint", checkpoint)
            self.set_meta("checkpoint_event", checkpoint_event)
            self._db.execute("DELETE FROM meta WHERE key = 'inflight_to'")

    def _update_collection_hashes(self, changes: HashChanges) -> None:
        current = self.collection_hashes()
        for name in COLLECTIONS:
            added, removed = changes.added[name], changes.removed[name]
            if not added and not removed:
                continue
            lanes = current[name]
            lanes.update(added, removed)
            self._db.execute(
                "INSERT OR REPLACE INTO collection_hashes VALUES (?, ?, ?)",
                (name, lanes.count, lanes.to_bytes()),
            )

    def _save_receipt(self, view: ReceiptView) -> None:
        key = (view.image_id, view.receipt_id)
        for table in ("places", "labels", "records", "removed_records"):
            self._db.execute(f"DELETE FROM {table} WHERE image_id = ? AND receipt_id = ?", key)
        self._db.executemany(
            "INSERT INTO places VALUES (?, ?, ?, ?, ?)",
            [
                (*key, entity, msgspec.json.encode(place.fields).decode(), place.position)
                for entity, place in view.places.items()
            ],
        )
        self._db.executemany(
            "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    *key,
                    line_id,
                    word_id,
                    label,
                    state.validation_status,
                    state.label_proposed_by,
                    state.timestamp_added,
                    state.position,
                )
                for (line_id, word_id), labels in view.labels.items()
                for label, state in labels.items()
            ],
        )
        self._db.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    collection,
                    record_id,
                    *key,
                    record.run_id,
                    record.document,
                    msgspec.json.encode(record.delta_metadata).decode(),
                    record.embedding_sha,
                    int(record.adopted),
                    record.stored_sha,
                    record.record_hash,
                )
                for (collection, record_id), record in view.records.items()
            ],
        )
        self._db.executemany(
            "INSERT INTO removed_records VALUES (?, ?, ?, ?)",
            [(collection, record_id, *key) for collection, record_id in sorted(view.removed)],
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close, folding the write-ahead log into the database file (a snapshot is one file)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
