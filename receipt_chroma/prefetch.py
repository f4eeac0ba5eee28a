"""Reading deltas ahead, on threads, while the projection folds and writes Chroma.

Each delta costs ~45 ms to open and read, mostly inside Chroma's Rust code (loading the
delta's segment), which runs largely outside the GIL; a few reader threads working ahead of
the fold hide much of that time on a rebuild. ``read`` returns the deltas in whatever order
the fold asks for them and re-raises a failed read's :class:`DeltaError` as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from receipt_chroma.client import CollectionName
from receipt_chroma.deltas import Delta, DeltaSource

DeltaRequest = tuple[str, CollectionName]


class PrefetchingDeltaSource:
    """Wraps a source; ``prefetch`` queues reads, ``read`` collects them.

    At most ``window`` deltas are read ahead (and held in memory) at a time; the rest wait in
    order and are started as the fold consumes the earlier ones.
    """

    def __init__(self, inner: DeltaSource, threads: int = 3, window: int = 48) -> None:
        self.inner = inner
        self._window = window
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="delta-reader")
        self._futures: dict[DeltaRequest, Future[Delta]] = {}
        self._waiting: dict[DeltaRequest, None] = {}  # an ordered set

    def prefetch(self, requests: Iterable[DeltaRequest]) -> None:
        for request in requests:
            if request not in self._futures:
                self._waiting.setdefault(request)
        self._top_up()

    def read(self, location: str, collection: CollectionName) -> Delta:
        request = (location, collection)
        self._waiting.pop(request, None)
        future = self._futures.pop(request, None)
        self._top_up()
        if future is None:
            return self.inner.read(location, collection)
        return future.result()

    def _top_up(self) -> None:
        while self._waiting and len(self._futures) < self._window:
            request = next(iter(self._waiting))
            del self._waiting[request]
            self._futures[request] = self._pool.submit(self.inner.read, *request)

    def close(self) -> None:
        self._waiting.clear()
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PrefetchingDeltaSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
