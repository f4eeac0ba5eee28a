"""A local cache of decoded deltas: only the first read of a delta pays for Chroma (~45 ms).

``v1/entries/<hex>`` holds a delta's records (msgpack), named by the delta's content digest and
checked against it on every read. ``v1/index/<sha256(collection, place)>`` maps where a delta
is to the source's cheap stamp of it (file sizes and times, or S3 ETags) and its digest; a
stamp that no longer matches is a miss, so a delta changed at its source is read again and
the projection still sees the change. Files are written under a temporary name and renamed,
so processes may share a cache; a missing or damaged file is a miss; least recently used
files go first once the total passes the cap; the directory may be deleted at any time. No
Chroma is imported at load time: the command line names the settings from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from receipt_chroma.provenance import decode_provenance, encode_provenance

if TYPE_CHECKING:
    from receipt_chroma.client import CollectionName
    from receipt_chroma.deltas import Delta, DeltaSource, Fingerprint

CACHE_ENV = "RECEIPT_EVENTS_DELTA_CACHE"  # the cache directory; unset or empty: no cache
MAX_MB_ENV = "RECEIPT_EVENTS_DELTA_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
LOW_WATER = 0.9  # eviction goes down to this share of the cap, not one file per write
STALE_TEMP_SECONDS = 3600  # a temporary file this old was left by a crashed writer
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_log = logging.getLogger(__name__)

Row = tuple[str, str | None, dict[str, Any], bytes]  # id, document, metadata, embedding


class Entry(msgspec.Struct, array_like=True, frozen=True):
    records: list[Row]  # as the source returned them: sorted by id


class IndexEntry(msgspec.Struct, frozen=True):
    place: str
    collection: str
    stamp: str
    digest: str
    # the delta's provenance (JSON), a property of the place, not of the records the entry
    # holds; None in indexes written before provenance was read: a miss
    provenance: str | None = None


_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(Entry)
_index_decoder = msgspec.msgpack.Decoder(IndexEntry)


@runtime_checkable
class FingerprintedSource(Protocol):
    """A delta source that can stamp a delta cheaply (see ``LocalDeltaSource.fingerprint``)."""

    def read(self, location: str, collection: CollectionName) -> Delta: ...

    def fingerprint(self, location: str) -> Fingerprint | None: ...


class DeltaCache:
    """The files of the cache; every failure to read one is a miss, to write one is ignored."""

    def __init__(self, root: Path | str, max_bytes: int = DEFAULT_MAX_MB * 2**20) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._entries = self.root / "v1" / "entries"
        self._index = self.root / "v1" / "index"
        self._lock = threading.Lock()
        self._total: int | None = None  # bytes in the cache as far as this process knows
        self._warned = False

    def get(
        self, place: str, collection: CollectionName, stamp: str, location: str
    ) -> Delta | None:
        index_path = self._index_path(place, collection)
        try:
            index = _index_decoder.decode(index_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError):
            _unlink(index_path)
            return None
        named = _DIGEST.fullmatch(index.digest)
        if (index.place, index.collection, index.stamp) != (place, collection, stamp) or not named:
            return None
        entry_path = self._entries / named.group(1)
        try:
            delta = _decode(entry_path.read_bytes(), index, location, collection)
        except OSError:
            return None
        if delta is None:  # truncated, damaged or not what its name says
            _unlink(entry_path)
            return None
        now = time.time_ns()
        for path in (index_path, entry_path):
            with contextlib.suppress(OSError):
                os.utime(path, ns=(now, now))
        return delta

    def put(self, place: str, collection: CollectionName, stamp: str, delta: Delta) -> None:
        named = _DIGEST.fullmatch(delta.digest)
        if not named:
            return
        rows = [(r.id, r.document, r.metadata, r.embedding) for r in delta.records]
        index = IndexEntry(
            place, collection, stamp, delta.digest, encode_provenance(delta.provenance)
        )
        try:  # the entry before the index that names it
            written = self._write(self._entries / named.group(1), _encoder.encode(Entry(rows)))
            written += self._write(self._index_path(place, collection), _encoder.encode(index))
        except OSError as error:
            if not self._warned:
                self._warned = True
                _log.warning(
                    "delta cache %s is not writable, reading without it: %s", self.root, error
                )
            return
        with self._lock:
            if self._total is None or self._total + written > self.max_bytes:
                self._total = self._evict()
            else:
                self._total += written

    def _index_path(self, place: str, collection: str) -> Path:
        return self._index / hashlib.sha256(f"{collection}\n{place}".encode()).hexdigest()

    def _write(self, path: Path, body: bytes) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(body)
            now = time.time_ns()  # explicit: file times from the kernel are coarse (LRU order)
            os.utime(temporary, ns=(now, now))
            os.replace(temporary, path)
        except BaseException:
            _unlink(Path(temporary))
            raise
        return len(body)

    def _evict(self) -> int:
        """Remove least recently used files down to the low-water mark; returns the total
        left, other processes' files included (their temporary files are theirs to finish)."""
        files: list[tuple[int, int, str]] = []
        stale = time.time_ns() - STALE_TEMP_SECONDS * 10**9
        for folder in (self._entries, self._index):
            with contextlib.suppress(OSError), os.scandir(folder) as listing:
                for item in listing:
                    with contextlib.suppress(OSError):
                        stat = item.stat()
                        if not item.name.startswith(".tmp-"):
                            files.append((stat.st_mtime_ns, stat.st_size, item.path))
                        elif stat.st_mtime_ns < stale:
                            os.unlink(item.path)
        total = sum(size for _, size, _ in files)
        if total > self.max_bytes:
            for _, size, path in sorted(files):
                if total <= self.max_bytes * LOW_WATER:
                    break
                _unlink(Path(path))
                total -= size
        return total


class CachedDeltaSource:
    """A delta source read through a :class:`DeltaCache`; deltas its source cannot stamp
    (in memory, say) are read from the source every time."""

    def __init__(self, inner: DeltaSource, cache: DeltaCache) -> None:
        self.inner = inner
        self.cache = cache
        self.hits = self.misses = 0  # reads served by the cache, and by the source
        self._counting = threading.Lock()

    def read(self, location: str, collection: CollectionName) -> Delta:
        inner = self.inner
        found = inner.fingerprint(location) if isinstance(inner, FingerprintedSource) else None
        if found is None:  # not there (the source says why) or not stampable
            return inner.read(location, collection)
        place, stamp = found  # taken before the read: a change during it makes a later miss
        delta = self.cache.get(place, collection, stamp, location)
        with self._counting:
            if delta is not None:
                self.hits += 1
            else:
                self.misses += 1
        if delta is not None:
            return delta
        delta = inner.read(location, collection)
        self.cache.put(place, collection, stamp, delta)
        return delta


def with_delta_cache(
    source: DeltaSource, directory: Path | str | None, max_mb: int = DEFAULT_MAX_MB
) -> DeltaSource:
    """``source`` read through a cache in ``directory``, or as it is when no directory."""
    if not directory:
        return source
    return CachedDeltaSource(source, DeltaCache(directory, max_bytes=max_mb * 2**20))


def delta_cache_from_env(source: DeltaSource, env: Mapping[str, str]) -> DeltaSource:
    """The cache the environment asks for (the projector Lambda: ``/tmp`` survives warm)."""
    max_mb = env.get(MAX_MB_ENV) or str(DEFAULT_MAX_MB)
    if not max_mb.isdigit() or int(max_mb) < 1:
        raise ValueError(f"{MAX_MB_ENV} must be a whole number of megabytes, not {max_mb!r}")
    return with_delta_cache(source, env.get(CACHE_ENV), int(max_mb))


def _decode(
    body: bytes, index: IndexEntry, location: str, collection: CollectionName
) -> Delta | None:
    from receipt_chroma.deltas import Delta, delta_digest
    from receipt_chroma.records import ChromaRecord

    try:
        records = [ChromaRecord(*row) for row in _entry_decoder.decode(body).records]
        provenance = decode_provenance(index.provenance)
    except msgspec.DecodeError:
        return None
    if provenance is None or delta_digest(records) != index.digest:
        return None
    return Delta(
        location=location,
        collection=collection,
        records=records,
        digest=index.digest,
        provenance=provenance,
    )


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
