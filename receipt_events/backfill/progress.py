"""The backfill's checkpoint, kept in the store's progress table (SPEC §11: resumable).

A backfill *job* is named by its source (``scan:TABLE:SEGMENTS`` or ``export:<export id>``);
each attempt to complete it is a *pass*. Every page the backfill has decided and appended is
recorded as :class:`PagePassed` with the cursor to resume after it, so Ctrl-C or a crash loses
at most the pages still waiting at the barrier, and a re-run goes on from each part's last
recorded page. A finished pass is marked :class:`PassFinished`; running the same job again
starts a new pass over every row (which appends nothing the log already holds).
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
from eventsourcing.utils import register_topic

from receipt_events.store import EventStore


class PagePassed(msgspec.Struct, frozen=True, kw_only=True):
    """One page of one part decided and appended; ``resume`` continues after it."""

    originator_version: ClassVar[int] = 1

    job: str
    run: int  # the pass number
    part: int  # a scan segment, or an export data file's index
    page: int  # 1, 2, … within the part
    resume: str | None  # the part's cursor after this page; None when the part is finished
    read: int
    appended: int
    superseded: int
    parked: int
    skipped_by_kind: dict[str, int] = msgspec.field(default_factory=dict)
    runs: list[bytes] = msgspec.field(default_factory=list)  # run rows, appended at the end

    @classmethod
    def topic(cls) -> str:
        return "receipt_events.BackfillPagePassed.v1"

    @property
    def originator_id(self) -> str:
        return f"backfill:{self.job}:{self.run}:{self.part}:{self.page}"


class PassFinished(msgspec.Struct, frozen=True, kw_only=True):
    """Every part of a pass is done and its compaction runs were decided."""

    originator_version: ClassVar[int] = 1

    job: str
    run: int

    @classmethod
    def topic(cls) -> str:
        return "receipt_events.BackfillPassFinished.v1"

    @property
    def originator_id(self) -> str:
        return f"backfill:{self.job}:{self.run}:finished"


register_topic(PagePassed.topic(), PagePassed)
register_topic(PassFinished.topic(), PassFinished)


class PartCursor(msgspec.Struct):
    """Where a part stands in the current pass."""

    pages: int = 0
    resume: str | None = None
    finished: bool = False


class Checkpoint(msgspec.Struct):
    """The current pass of a job, as the progress table records it."""

    job: str
    run: int
    parts: dict[int, PartCursor]
    runs: list[bytes]  # run rows read so far in this pass
    resumed: bool  # the pass had recorded pages before this invocation

    def cursor(self, part: int) -> PartCursor:
        return self.parts.setdefault(part, PartCursor())


def load_checkpoint(store: EventStore, job: str) -> Checkpoint:
    """The pass to work on: the last unfinished one of ``job``, else a new one."""
    run = 1
    pages: dict[int, list[PagePassed]] = {}
    for _, entry in store.progress_after(0):
        if getattr(entry, "job", None) != job:
            continue
        if isinstance(entry, PassFinished):
            run = max(run, entry.run + 1)
        elif isinstance(entry, PagePassed):
            pages.setdefault(entry.run, []).append(entry)
    current = sorted(pages.get(run, []), key=lambda page: (page.part, page.page))
    parts: dict[int, PartCursor] = {}
    runs: list[bytes] = []
    for page in current:
        parts[page.part] = PartCursor(page.page, page.resume, page.resume is None)
        runs.extend(page.runs)
    return Checkpoint(job, run, parts, runs, resumed=bool(current))


def totals(store: EventStore, job: str, run: int) -> dict[str, Any]:
    """Counts of every page recorded in a pass (this invocation's and earlier ones')."""
    counts: dict[str, Any] = {"read": 0, "appended": 0, "superseded": 0, "parked": 0}
    for _, entry in store.progress_after(0):
        if isinstance(entry, PagePassed) and entry.job == job and entry.run == run:
            for name in ("read", "appended", "superseded", "parked"):
                counts[name] += getattr(entry, name)
    return counts
