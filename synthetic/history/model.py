"""What the generator returns: the stream, its intents, and what each embedding run saw.

The output types live apart from the simulation so the tests, the Lambda harness and
``receipt_chroma`` (which writes :class:`RunContent` as delta directories) depend on data only.
"""

from __future__ import annotations

from typing import Any

import msgspec


class LineContent(msgspec.Struct, frozen=True):
    """A line as its embedding run saw it (the bounding box origin, as the old metadata had)."""

    line_id: int
    text: str
    x: float
    y: float
    width: float
    height: float
    confidence: float


class WordContent(msgspec.Struct, frozen=True):
    """A word as its embedding run saw it."""

    line_id: int
    word_id: int
    text: str
    x: float
    y: float
    width: float
    height: float
    confidence: float


class RunContent(msgspec.Struct, frozen=True):
    """What a compaction run's embedding deltas hold: the receipt's lines and words at the run's time."""  # noqa: E501

    image_id: str
    receipt_id: int
    run_id: str
    lines_delta: str
    words_delta: str
    lines: tuple[LineContent, ...]
    words: tuple[WordContent, ...]


class History(msgspec.Struct, frozen=True):
    """A generated stream: records in stream order, one intent per record, the runs' contents.

    Records are JSON-ready dicts (what a Lambda event's ``Records`` holds). Consecutive records
    of one item share their image dicts (a MODIFY's OldImage is the previous NewImage object):
    treat them as read-only, or copy before changing one.
    """

    records: list[dict[str, Any]]
    intents: list[str]
    runs: list[RunContent]
