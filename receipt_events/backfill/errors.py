"""What stops a backfill, each saying what to do about it (the CLI maps them to exit 2)."""

from __future__ import annotations

from receipt_events.errors import MissingResource


class BackfillError(Exception):
    """A backfill cannot start or cannot go on; the message names the fix."""


class TableMissing(MissingResource):
    def __init__(self, table: str) -> None:
        super().__init__(
            f"DynamoDB table {table!r}",
            "check --table (and AWS_REGION / AWS_ENDPOINT_URL_DYNAMODB)",
        )


class StreamNotReady(BackfillError):
    """The table has no stream, or one without both images: the log could not follow it."""


class BackfillStopped(Exception):
    """The backfill could not complete (the log or the stream kept it from deciding); what it
    decided is checkpointed, and running it again continues. Exit 1, not a usage error."""


class BarrierTimeout(BackfillStopped):
    """A marker was not ingested within the settle time: the barrier never passes."""

    def __init__(self, marker: str, table: str, settle: float) -> None:
        super().__init__(
            f"the stream processor did not ingest backfill marker {marker!r} within "
            f"--settle {settle:g} s: is the stream processor deployed on {table!r}'s stream "
            "and appending to this same --store? (If it is only slow, its lag — the "
            "function's IteratorAge — must stay under --settle: raise --settle.) Nothing "
            "read since the last checkpoint was appended; run backfill again to continue."
        )
        self.marker = marker
