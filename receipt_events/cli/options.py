"""The options every layer's commands share, defined once: ``--store``, ``--json``, ``--to``.

``opened_store`` turns a ``--store`` value into an open store for the length of a command,
naming the store in the message when it cannot be opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from eventsourcing.persistence import PersistenceError

from receipt_events.cli.errors import EXIT_CHECK_FAILED, fail
from receipt_events.store import STORE_ENV, EventStore, open_store, redact, resolve_store_url

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=STORE_ENV,
        help="Event store URL: sqlite:///PATH, postgresql://USER@HOST:PORT/DB, dynamodb://TABLE "
        "or memory://. "
        "Default: sqlite:///./.receipt-events/events.db",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (for scripts).")
]
ToOption = Annotated[
    int | None,
    typer.Option("--to", min=0, help="Stop at this log position, inclusive (default: the head)."),
]


@contextmanager
def opened_store(url: str | None) -> Iterator[EventStore]:
    """Open the store for a command; a store that cannot be opened is named in the message."""
    try:
        store = open_store(url)
    except PersistenceError as error:
        fail(
            f"cannot open the event store {redact(resolve_store_url(url))}: {error}",
            EXIT_CHECK_FAILED,
        )
    try:
        yield store
    finally:
        store.close()
