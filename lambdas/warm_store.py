"""An event store kept open across warm Lambda invocations, and dropped when it fails."""

from __future__ import annotations

from receipt_events.store import STORE_ENV, EventStore, open_store


class StoreNotConfigured(RuntimeError):
    """A Lambda without ``RECEIPT_EVENTS_STORE``: its local disk would lose the events."""


class WarmStore:
    """Opens the store on first use; after a failure, ``drop`` so the next use reconnects.

    Unlike the command line, there is no default: a function's local disk does not outlive
    its container, so appending there would report success and lose the events.
    """

    def __init__(self) -> None:
        self._store: EventStore | None = None

    def get(self, url: str | None) -> EventStore:
        if not url:
            raise StoreNotConfigured(
                f"{STORE_ENV} is not set; set it to the event store's URL "
                "(postgresql://...): a Lambda's local disk does not keep events"
            )
        if self._store is None:
            self._store = open_store(url)
        return self._store

    def drop(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()
