"""The table a backfill follows: it must exist and stream both images to the log."""

from __future__ import annotations

from typing import Any

import msgspec

from receipt_events.backfill.errors import StreamNotReady, TableMissing

ENABLE_STREAM = (
    "aws dynamodb update-table --table-name {table} "
    "--stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"
)


class TableFacts(msgspec.Struct, frozen=True):
    stream_label: str | None  # when the stream was enabled (ISO 8601)
    item_count: int | None  # DynamoDB's estimate (refreshed about every six hours)


def check_stream(client: Any, table: str) -> TableFacts:
    """Refuse a table whose changes the log cannot follow; say what the backfill needs of it.

    The backfill only adopts what the stream will not bring: without a stream (or with one
    that does not carry both images), changes made while it reads would be lost.
    """
    try:
        description = client.describe_table(TableName=table)["Table"]
    except client.exceptions.ResourceNotFoundException:
        raise TableMissing(table) from None
    spec = description.get("StreamSpecification") or {}
    if not spec.get("StreamEnabled"):
        raise StreamNotReady(
            f"table {table!r} has no stream, so changes made during and after the backfill "
            f"would be lost: enable it ({ENABLE_STREAM.format(table=table)}), deploy the "
            "stream processor on it, then run backfill"
        )
    view = spec.get("StreamViewType")
    if view != "NEW_AND_OLD_IMAGES":
        raise StreamNotReady(
            f"table {table!r} streams {view}, but the log needs NEW_AND_OLD_IMAGES (a stream's "
            "view type cannot be changed: disable the stream, enable it again with "
            "NEW_AND_OLD_IMAGES, and redeploy the stream processor on the new stream)"
        )
    label = description.get("LatestStreamLabel")
    count = description.get("ItemCount")
    return TableFacts(str(label) if label else None, int(count) if count is not None else None)
