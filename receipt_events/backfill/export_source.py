"""Rows from a DynamoDB export to S3 (or a local copy of one), as pages of a row source.

Each data file is a part; a page is a run of its lines, and the checkpoint is the number of
lines already decided (a re-run re-reads the file, whose md5 is checked first, and skips
them). Every row's read time is the export's point in time plus its fuzziness.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from receipt_events.backfill.export import ExportManifest, open_export, read_export_file
from receipt_events.backfill.sources import DEFAULT_PAGE_ROWS, EXPORT_FUZZ_SECONDS, Page
from receipt_events.events import BackfillVia


class ExportSource:
    via: BackfillVia = "export"

    def __init__(
        self,
        manifest: ExportManifest,
        *,
        table: str | None = None,
        s3_client: Any | None = None,
        page_rows: int = DEFAULT_PAGE_ROWS,
        fuzz: float = EXPORT_FUZZ_SECONDS,
    ) -> None:
        self.manifest = manifest
        self.table = table or manifest.table_name
        self.export_id: str | None = manifest.export_id
        self.job = f"export:{manifest.export_id}"
        self.parts = len(manifest.files)
        self.expected_rows: int | None = manifest.item_count
        self._s3 = s3_client
        self._page_rows = page_rows
        self._fuzz = fuzz

    @classmethod
    def open(
        cls,
        url: str,
        *,
        table: str | None = None,
        s3_client: Any | None = None,
        fuzz: float = EXPORT_FUZZ_SECONDS,
    ) -> ExportSource:
        manifest = open_export(url, s3_client=s3_client)
        return cls(manifest, table=table, s3_client=s3_client, fuzz=fuzz)

    @property
    def read_at(self) -> float:
        return self.manifest.export_time + self._fuzz

    def pages(self, part: int, resume: str | None) -> Iterator[Page]:
        done = int(resume) if resume else 0
        rows = read_export_file(self.manifest, self.manifest.files[part], s3_client=self._s3)
        remaining = itertools.islice(rows, done, None)
        page: list[dict[str, Any]] = []
        for row in remaining:
            page.append(row)
            if len(page) == self._page_rows:
                done += len(page)
                yield Page(part, page, self.read_at, str(done))
                page = []
        # the file's count is checked when its rows run out: only then is the part finished
        yield Page(part, page, self.read_at, None)
