"""Where commands write: JSON documents for scripts, rich text and progress bars for people."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True)

Advance = Callable[[int, int], None]  # (done, total)


def emit_json(document: Any) -> None:
    """Write one JSON document (or one line of a stream of them) to stdout."""
    sys.stdout.buffer.write(msgspec.json.encode(document) + b"\n")
    sys.stdout.flush()


@contextmanager
def progress_bar(enabled: bool, label: str, unit: str) -> Iterator[Advance | None]:
    """A progress bar on a terminal (never with ``--json``): yields the callback that feeds
    it ``(done, total)``, or None when there is no bar to feed."""
    if not enabled or not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
