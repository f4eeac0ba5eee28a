"""Reading deltas ahead, in worker processes, while the projection writes Chroma.

Each delta costs ~45 ms to open and read (mostly Chroma loading its segment), and a Chroma
upsert runs on one core; on a rebuild, worker processes reading the next deltas on the other
cores hide most of the reading. Workers are started with ``spawn`` (forking a process that
runs Chroma's Rust threads is unsafe) and only when there is enough to read to pay for their
start-up. A worker's failure comes back as a value and is re-raised here as the same
:class:`DeltaError` a direct read would raise.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType

from receipt_chroma.client import CollectionName
from receipt_chroma.deltas import Delta, DeltaError, DeltaSource

MIN_READS_FOR_WORKERS = 8
DeltaRequest = tuple[str, CollectionName]


def _read_in_worker(
    source: DeltaSource, location: str, collection: CollectionName
) -> Delta | tuple[str, str, bool]:
    try:
        return source.read(location, collection)
    except DeltaError as error:
        return (error.location, error.problem, error.missing)


class PrefetchingDeltaSource:
    """Wraps a picklable source; ``prefetch`` queues reads, ``read`` collects them in order."""

    def __init__(self, inner: DeltaSource, workers: int = 2) -> None:
        self.inner = inner
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[DeltaRequest, Future[Delta | tuple[str, str, bool]]] = {}

    def prefetch(self, requests: Iterable[DeltaRequest]) -> None:
        wanted = [request for request in dict.fromkeys(requests) if request not in self._futures]
        if not wanted or (self._pool is None and len(wanted) < MIN_READS_FOR_WORKERS):
            return
        pool = self._pool or self._start()
        for location, collection in wanted:
            self._futures[(location, collection)] = pool.submit(
                _read_in_worker, self.inner, location, collection
            )

    def read(self, location: str, collection: CollectionName) -> Delta:
        future = self._futures.pop((location, collection), None)
        if future is None:
            return self.inner.read(location, collection)
        result = future.result()
        if isinstance(result, Delta):
            return result
        failed_location, problem, missing = result
        raise DeltaError(failed_location, problem, missing=missing)

    def _start(self) -> ProcessPoolExecutor:
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
        )
        return self._pool

    def close(self) -> None:
        self._futures.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> PrefetchingDeltaSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
