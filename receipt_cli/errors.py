"""Every error a command can end with, mapped in one place to a message and an exit status.

Errors a user can cause (or fix) become one line on stderr and an exit status: 2 for bad
usage, unreadable input or a resource to create first, 1 when a check fails or the work
cannot complete. Anything else is an internal error: one line asking for a report, and the
traceback with ``RECEIPT_EVENTS_DEBUG=1``. The classes come from modules that import no
Chroma, so mapping them costs the light commands nothing.
"""

from __future__ import annotations

import os
import traceback

from eventsourcing.persistence import PersistenceError

from projections.errors import (
    CompactionGaveUp,
    DeltaProblem,
    NotASnapshot,
    ProjectionConflict,
    ProjectionStopped,
    QueryError,
    StateError,
)
from receipt_chroma.directory_lock import DirectoryBusy
from receipt_chroma.lease import LeaseBusy, LeaseLost, LeaseTableRequired
from receipt_chroma.snapshots import (
    FencedOut,
    NoSnapshot,
    PointerConflict,
    SnapshotCorrupt,
    SnapshotMissing,
)
from receipt_events.backfill.errors import BackfillError, BackfillStopped
from receipt_events.cli.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, UserError
from receipt_events.cli.output import error_console
from receipt_events.errors import MissingResource
from receipt_events.records import UnreadableInput
from receipt_events.store import StoreURLError

# (error classes, exit status, what the message starts with), first match wins
KNOWN: tuple[tuple[tuple[type[BaseException], ...], int, str], ...] = (
    ((UnreadableInput, StoreURLError, LeaseTableRequired), EXIT_BAD_INPUT, ""),
    ((MissingResource,), EXIT_BAD_INPUT, ""),
    ((BackfillError,), EXIT_BAD_INPUT, "backfill: "),
    ((BackfillStopped,), EXIT_CHECK_FAILED, "backfill stopped: "),
    ((PersistenceError,), EXIT_CHECK_FAILED, "the event store failed: "),
    ((ProjectionStopped, DeltaProblem), EXIT_CHECK_FAILED, "projection stopped: "),
    ((ProjectionConflict, NotASnapshot, StateError), EXIT_BAD_INPUT, ""),
    ((QueryError,), EXIT_BAD_INPUT, "query: "),
    ((DirectoryBusy,), EXIT_CHECK_FAILED, ""),
    (
        (PointerConflict, FencedOut, LeaseBusy, LeaseLost, CompactionGaveUp),
        EXIT_CHECK_FAILED,
        "not published: ",
    ),
    ((SnapshotCorrupt, SnapshotMissing), EXIT_CHECK_FAILED, "refused: "),
    ((NoSnapshot,), EXIT_CHECK_FAILED, ""),
    ((FileExistsError,), EXIT_BAD_INPUT, ""),
)


def report(error: Exception) -> int:
    """Print one line for ``error`` on stderr; return the exit status it means."""
    status, message = _classify(error)
    error_console.print(message, highlight=False, soft_wrap=True)
    return status


def _classify(error: Exception) -> tuple[int, str]:
    if isinstance(error, UserError):
        return error.status, f"[bold red]error:[/] {error}"
    for classes, status, prefix in KNOWN:
        if isinstance(error, classes):
            return status, f"[bold red]error:[/] {prefix}{error}"
    if type(error).__module__.split(".")[0] in ("botocore", "boto3"):
        # S3 or DynamoDB failing (5xx, throttling, unreachable endpoint): not our bug, and
        # every step retries from its last commit, so say what failed and that it is safe
        return EXIT_CHECK_FAILED, (
            f"[bold red]error:[/] an AWS request failed ({type(error).__name__}): {error}\n"
            "Nothing partial was made visible; run the command again once the service answers."
        )
    if os.environ.get("RECEIPT_EVENTS_DEBUG"):
        traceback.print_exception(error)
    return EXIT_CHECK_FAILED, (
        f"[bold red]internal error[/] ({type(error).__name__}): {error}\n"
        "Set RECEIPT_EVENTS_DEBUG=1 for the traceback, and please report it."
    )
