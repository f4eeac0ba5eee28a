"""Keep a lease alive on a background thread while a long job runs under it.

Separate from the backends: it works on any :class:`~receipt_chroma.lease.interface.Lease`.
"""

from __future__ import annotations

import threading
from types import TracebackType

from receipt_chroma.lease.errors import LeaseLost
from receipt_chroma.lease.interface import Lease
from receipt_chroma.lease.values import _check_ttl


class LeaseKeeper:
    """Keep a lease alive while a long job runs: heartbeat every ``interval`` seconds (default
    ``lease.ttl / 3``) on a daemon thread, from ``__enter__`` until ``__exit__``.

    The first failed heartbeat (lost, or any error) stops the heartbeats and is remembered;
    :meth:`check` then raises :class:`LeaseLost`. Call :meth:`check` before anything that must
    happen under the lock (and fence the write itself with ``lease.token``). Exiting stops the
    thread and waits for it, so no heartbeat happens afterwards; it does not release the lease.
    """

    def __init__(self, lease: Lease, *, interval: float | None = None) -> None:
        self.lease = lease
        self.interval = _check_ttl(lease.ttl / 3 if interval is None else interval)
        self.heartbeats = 0
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def failure(self) -> BaseException | None:
        """The error of the heartbeat that failed, if one did."""
        return self._failure

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this LeaseKeeper was already started")
        self._thread = threading.Thread(
            target=self._run, name=f"lease-keeper-{self.lease.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.lease.heartbeat()
            except BaseException as error:
                self._failure = error
                return
            self.heartbeats += 1

    def check(self) -> None:
        """Raise :class:`LeaseLost` if a heartbeat failed or the lease no longer holds."""
        failure = self._failure
        lease = self.lease
        if failure is not None:
            reason = (
                failure.reason
                if isinstance(failure, LeaseLost)
                else f"a heartbeat failed: {type(failure).__name__}: {failure}"
            )
            raise LeaseLost(
                lease.name, owner=lease.owner, token=lease.token, reason=reason
            ) from failure
        lease.check()

    def __enter__(self) -> LeaseKeeper:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
