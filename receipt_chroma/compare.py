"""Record-by-record comparison of two Chroma directories (``receipt-events compare``).

Made for shadow mode: before switching from the old pipeline, compare our snapshot with the
old system's Chroma directory and see which records it lost or left stale. Only the Chroma
contents are read (no projection state), so either side may be a plain Chroma directory or
a snapshot directory (its ``chroma/`` inside). Records are matched by id in ``lines`` and
``words``; documents and metadata must be equal (same values and types, as the canonical
digest sees them); vectors are compared with a small tolerance (:data:`VECTOR_TOLERANCE`).

Memory: the ids of both sides, plus one page of full records from each side at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import msgspec
import numpy as np
from chromadb.api.models.Collection import Collection
from chromadb.errors import ChromaError

from receipt_chroma.client import COLLECTIONS, ChromaDirectory, CollectionName, open_chroma
from receipt_chroma.digest import DUMP_PAGE_SIZE
from receipt_chroma.directory_lock import LOCK_FILE, DirectoryLock
from receipt_chroma.records import ChromaRecord, records_from_get

# Two vectors are the same when every component differs by at most this much (compared as
# float32, the difference taken in float64). Chroma hands back a cosine-space vector up to
# 1 ulp off what was written (docs/chromadb.md), and the old system may have stored the same
# vector by another path; for unit-length embeddings 1 ulp is at most 1.2e-7, so 1e-6 leaves
# room for a few roundings while a re-embedded text moves components by ~1e-2.
VECTOR_TOLERANCE = 1e-6

# Where a snapshot directory keeps its Chroma directory (projections/snapshot_dir.py, which
# this layer may not import; a test checks the two agree).
SNAPSHOT_CHROMA_SUBDIR = "chroma"
CHROMA_DATABASE = "chroma.sqlite3"

_MISSING = object()


class CompareError(Exception):
    """A comparison that could not be made; the message names the directory."""


class NotAChromaDirectory(CompareError):
    """A path that is not a readable Chroma directory holding ``lines`` or ``words``."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path = path
        self.problem = problem


class ChangedDuringComparison(CompareError):
    """A record listed at the start was gone when its contents were read: someone writes."""


class RecordRef(msgspec.Struct, frozen=True):
    collection: str
    id: str


class Difference(msgspec.Struct, frozen=True):
    collection: str
    id: str
    keys: list[str]  # sorted: metadata keys that differ or exist on one side, and "document"
    vector_differs: bool


class Comparison(msgspec.Struct, kw_only=True):
    same: int
    only_ours: list[RecordRef]
    only_theirs: list[RecordRef]
    differing: list[Difference]
    same_by_collection: dict[str, int] = msgspec.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every record is on both sides and equal."""
        return not (self.only_ours or self.only_theirs or self.differing)


class _Side:
    """One opened directory: its Chroma client and which of our collections it holds."""

    def __init__(self, path: Path, chroma: ChromaDirectory, names: set[str]) -> None:
        self.path = path
        self.chroma = chroma
        self.names = names

    def collection(self, name: CollectionName) -> Collection | None:
        return self.chroma.collection(name) if name in self.names else None


def compare_directories(
    ours: Path,
    theirs: Path,
    *,
    page_size: int = DUMP_PAGE_SIZE,
    collections: tuple[CollectionName, ...] = COLLECTIONS,
) -> Comparison:
    """Compare the ``lines`` and ``words`` records (or only ``collections``) of two Chroma (or
    snapshot) directories. The old system keeps one directory per collection: compare each
    with ``collections=("lines",)`` or ``("words",)``."""
    with ExitStack() as stack:
        mine = _open_side(stack, ours)
        other = mine if _chroma_path(theirs) == mine.path else _open_side(stack, theirs)
        comparisons = [_compare_collection(name, mine, other, page_size) for name in collections]
    return _combine(comparisons)


def _chroma_path(path: Path) -> Path:
    """The Chroma directory at ``path``: itself, or a snapshot directory's ``chroma/``."""
    if (path / CHROMA_DATABASE).is_file():
        return path.resolve()
    nested = path / SNAPSHOT_CHROMA_SUBDIR
    if (nested / CHROMA_DATABASE).is_file():
        return nested.resolve()
    if not path.exists():
        raise NotAChromaDirectory(path, "does not exist")
    if not path.is_dir():
        raise NotAChromaDirectory(path, "is not a directory")
    raise NotAChromaDirectory(
        path,
        f"is not a Chroma directory (no {CHROMA_DATABASE}, "
        f"nor {SNAPSHOT_CHROMA_SUBDIR}/{CHROMA_DATABASE} as in a snapshot directory)",
    )


def _snapshot_root(path: Path, chroma_path: Path) -> Path | None:
    """The snapshot directory around ``chroma_path``, if it is one: given as such, or given
    as its ``chroma/`` with the snapshot's lock file beside it."""
    if chroma_path.parent == path.resolve():
        return path
    if chroma_path.name == SNAPSHOT_CHROMA_SUBDIR and (chroma_path.parent / LOCK_FILE).is_file():
        return chroma_path.parent
    return None


def _open_side(stack: ExitStack, path: Path) -> _Side:
    """Open a directory for reading. A snapshot directory is locked like its writers lock it:
    opening Chroma can write (it replays its queue), and two writers corrupt a directory."""
    chroma_path = _chroma_path(path)
    snapshot = _snapshot_root(path, chroma_path)
    if snapshot is not None:
        stack.enter_context(DirectoryLock(snapshot))
    try:
        chroma = stack.enter_context(open_chroma(chroma_path, create=False))
        names = {collection.name for collection in chroma.client.list_collections()}
    except ChromaError as error:
        raise NotAChromaDirectory(path, f"cannot be read by Chroma: {error}") from None
    if not names & set(COLLECTIONS):
        found = ", ".join(sorted(names)) or "none"
        raise NotAChromaDirectory(
            path, f"holds neither a `lines` nor a `words` collection (collections: {found})"
        )
    return _Side(chroma_path, chroma, names)


class _CollectionComparison(msgspec.Struct):
    name: str
    same: int
    only_ours: list[RecordRef]
    only_theirs: list[RecordRef]
    differing: list[Difference]


def _compare_collection(
    name: CollectionName, ours: _Side, theirs: _Side, page_size: int
) -> _CollectionComparison:
    """Match one collection's records by id; read the shared ones a page at a time."""
    mine, other = ours.collection(name), theirs.collection(name)
    mine_ids = _all_ids(mine, page_size)
    other_ids = _all_ids(other, page_size)
    result = _CollectionComparison(
        name,
        same=0,
        only_ours=[RecordRef(name, record_id) for record_id in sorted(mine_ids - other_ids)],
        only_theirs=[RecordRef(name, record_id) for record_id in sorted(other_ids - mine_ids)],
        differing=[],
    )
    if mine is None or other is None:
        return result
    for chunk in _chunks(sorted(mine_ids & other_ids), page_size):
        ours_page = _fetch(mine, chunk, ours.path)
        theirs_page = _fetch(other, chunk, theirs.path)
        for record_id in chunk:
            difference = record_difference(name, ours_page[record_id], theirs_page[record_id])
            if difference is None:
                result.same += 1
            else:
                result.differing.append(difference)
    return result


def _all_ids(collection: Collection | None, page_size: int) -> set[str]:
    """Every id of a collection (none for a missing one), read in pages without contents."""
    ids: set[str] = set()
    if collection is None:
        return ids
    offset = 0
    while True:
        page = collection.get(include=[], limit=page_size, offset=offset)
        ids.update(page["ids"])
        offset += len(page["ids"])
        if len(page["ids"]) < page_size:
            return ids


def _chunks(ids: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _fetch(collection: Collection, ids: Sequence[str], path: Path) -> dict[str, ChromaRecord]:
    """The full records of ``ids`` by id (Chroma returns them in storage order)."""
    page = collection.get(ids=list(ids), include=["embeddings", "documents", "metadatas"])
    records = {record.id: record for record in records_from_get(page)}
    if len(records) != len(ids):
        gone = sorted(set(ids) - set(records))[0]
        raise ChangedDuringComparison(
            f"{path}: record {gone} of `{collection.name}` disappeared during the comparison; "
            "compare directories nobody is writing (a copy of a live one)"
        )
    return records


def record_difference(
    collection: str, ours: ChromaRecord, theirs: ChromaRecord
) -> Difference | None:
    """What differs between two records with the same id, or None when they are the same."""
    keys = [
        key
        for key in set(ours.metadata) | set(theirs.metadata)
        if not _same_value(ours.metadata.get(key, _MISSING), theirs.metadata.get(key, _MISSING))
    ]
    if ours.document != theirs.document:
        keys.append("document")
    vector_differs = not vectors_match(ours.embedding, theirs.embedding)
    if not keys and not vector_differs:
        return None
    return Difference(collection, ours.id, sorted(keys), vector_differs)


def _same_value(ours: object, theirs: object) -> bool:
    """Equal as the canonical digest sees them: ``1``, ``1.0`` and ``True`` all differ."""
    if ours is _MISSING or theirs is _MISSING:
        return ours is theirs
    return msgspec.json.encode(ours) == msgspec.json.encode(theirs)


def vectors_match(ours: bytes, theirs: bytes) -> bool:
    """Same length and every float32 component within :data:`VECTOR_TOLERANCE` (NaN never)."""
    if ours == theirs:
        return True
    if len(ours) != len(theirs):
        return False
    a = np.frombuffer(ours, dtype="<f4").astype(np.float64)
    b = np.frombuffer(theirs, dtype="<f4").astype(np.float64)
    return bool(np.all(np.abs(a - b) <= VECTOR_TOLERANCE))


def _combine(comparisons: Sequence[_CollectionComparison]) -> Comparison:
    """One result over the collections, every list sorted by (collection, id)."""

    def by_place(item: RecordRef | Difference) -> tuple[str, str]:
        return (item.collection, item.id)

    return Comparison(
        same=sum(part.same for part in comparisons),
        only_ours=sorted((ref for part in comparisons for ref in part.only_ours), key=by_place),
        only_theirs=sorted((ref for part in comparisons for ref in part.only_theirs), key=by_place),
        differing=sorted((d for part in comparisons for d in part.differing), key=by_place),
        same_by_collection={part.name: part.same for part in comparisons},
    )
