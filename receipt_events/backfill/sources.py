"""Where rows come from: pages of a consistent parallel Scan, or of a DynamoDB export.

A source has *parts* (scan segments, export data files) read independently; each part yields
pages in order, each page with the time its rows were read and the cursor to resume after it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import msgspec

from receipt_events.events import BackfillVia

DEFAULT_PAGE_ROWS = 1000  # an export page; a Scan page is what one Scan call returns
EXPORT_FUZZ_SECONDS = 60.0  # an export's point in time is fuzzy by about a minute


class Page(msgspec.Struct):
    part: int
    rows: list[dict[str, Any]]
    read_at: float  # epoch seconds, at or after the rows' state was read
    resume: str | None  # the part's cursor after this page; None: the part is finished


class RowSource(Protocol):
    via: BackfillVia
    table: str
    job: str  # names the backfill job (its checkpoint) in the progress table
    parts: int
    export_id: str | None
    expected_rows: int | None  # known exactly for an export; a Scan asks DescribeTable

    def pages(self, part: int, resume: str | None) -> Iterator[Page]: ...


class ScanSource:
    """A consistent, paginated, parallel Scan (``Segment``/``TotalSegments``).

    ``read_at`` is taken when a page's response arrives: a consistent Scan reflects every
    write completed before the request, and perhaps some during it, so any write it may have
    missed has a stream record created after ``read_at``.
    """

    via: BackfillVia = "scan"
    export_id: str | None = None
    expected_rows: int | None = None

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        segments: int = 1,
        page_rows: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.table = table
        self.parts = segments
        self.job = f"scan:{table}:{segments}"
        self._page_rows = page_rows
        self._clock = clock

    def pages(self, part: int, resume: str | None) -> Iterator[Page]:
        request: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        if self.parts > 1:
            request.update(Segment=part, TotalSegments=self.parts)
        if self._page_rows:
            request["Limit"] = self._page_rows
        if resume is not None:
            request["ExclusiveStartKey"] = json.loads(resume)
        while True:
            response = self._client.scan(**request)
            read_at = self._clock()
            next_key = response.get("LastEvaluatedKey")
            cursor = json.dumps(next_key, sort_keys=True) if next_key else None
            yield Page(part, response.get("Items", []), read_at, cursor)
            if not next_key:
                return
            request["ExclusiveStartKey"] = next_key
