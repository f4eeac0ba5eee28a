"""``compare OURS THEIRS``: two Chroma directories record by record (shadow mode).

Before switching from the old pipeline, run both side by side and compare our snapshot
with the old system's Chroma directory: the records each side lacks, and per shared record
the metadata keys, document or vector that differ. The library (and so chromadb) is
imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.table import Table

from receipt_events.cli.errors import EXIT_CHECK_FAILED, fail
from receipt_events.cli.options import JsonOption
from receipt_events.cli.output import console, emit_json

if TYPE_CHECKING:
    from receipt_chroma.client import CollectionName
    from receipt_chroma.compare import Comparison

KINDS = ("same", "only_ours", "only_theirs", "differing")


def compare_command(
    ours: Annotated[
        Path,
        typer.Argument(
            help="Our side: a snapshot directory (from rebuild or project) or a Chroma directory."
        ),
    ],
    theirs: Annotated[
        Path,
        typer.Argument(
            help="Their side: e.g. the old system's Chroma directory (no projection state needed)."
        ),
    ],
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection",
            help="Compare only this collection (lines or words): the old system keeps one "
            "Chroma directory per collection.",
        ),
    ] = None,
    json: JsonOption = False,
    limit: Annotated[
        int,
        typer.Option("--limit", min=0, help="Records listed without --json (--json lists all)."),
    ] = 20,
) -> None:
    """Compare two Chroma directories record by record, for shadow mode before switching from
    the old pipeline: which records only one side has, and for records on both, which metadata
    keys, document or vector differ (vectors within 1e-6 per component count as equal).

    Exit 0 when they are the same, 1 when they differ, 2 when a directory cannot be read.
    Compare directories nobody is writing (a copy of a live one).
    """
    from receipt_chroma.compare import ChangedDuringComparison, CompareError, compare_directories

    if collection not in (None, "lines", "words"):
        fail(f"--collection must be 'lines' or 'words', not {collection!r}")
    names: tuple[CollectionName, ...] = (
        ("lines", "words") if collection is None else (cast("CollectionName", collection),)
    )
    try:
        comparison = compare_directories(ours, theirs, collections=names)
    except ChangedDuringComparison as error:
        fail(str(error), EXIT_CHECK_FAILED)
    except CompareError as error:
        fail(str(error))
    if json:
        emit_json(_document(comparison))
    else:
        _print_summary(comparison, limit)
    if not comparison.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _document(comparison: Comparison) -> dict[str, object]:
    """The ``--json`` document: the comparison's lists in full, ``ok``, and counts."""
    return {
        "ok": comparison.ok,
        "same": comparison.same,
        "only_ours": comparison.only_ours,
        "only_theirs": comparison.only_theirs,
        "differing": comparison.differing,
        "counts": _counts(comparison),
    }


def _counts(comparison: Comparison) -> dict[str, dict[str, int]]:
    """Per collection, how many records fall in each kind."""
    counts = {
        name: dict.fromkeys(KINDS, 0) | {"same": same}
        for name, same in comparison.same_by_collection.items()
    }
    for kind, items in (
        ("only_ours", comparison.only_ours),
        ("only_theirs", comparison.only_theirs),
        ("differing", comparison.differing),
    ):
        for item in items:
            counts.setdefault(item.collection, dict.fromkeys(KINDS, 0))[kind] += 1
    return counts


def _print_summary(comparison: Comparison, limit: int) -> None:
    """A table of counts, then the first ``limit`` records that are not the same."""
    table = Table(title_justify="left", box=None, pad_edge=False)
    table.add_column("collection", style="bold")
    for heading in ("same", "only ours", "only theirs", "differing"):
        table.add_column(heading, justify="right")
    for name, counts in _counts(comparison).items():
        table.add_row(name, *(str(counts[kind]) for kind in KINDS))
    console.print(table)
    lines = _difference_lines(comparison)
    if not lines:
        console.print("[green]same[/]: every record is on both sides and equal")
        return
    console.print(f"[red]{len(lines)} record(s) differ[/]", highlight=False)
    for line in lines[:limit]:
        console.print(f"  {line}", highlight=False)
    if len(lines) > limit:
        console.print(f"  ... and {len(lines) - limit} more (--json lists them all)")


def _difference_lines(comparison: Comparison) -> list[str]:
    """One line per record that is not the same, sorted by (collection, id)."""
    lines = [(ref.collection, ref.id, "only in ours") for ref in comparison.only_ours] + [
        (ref.collection, ref.id, "only in theirs") for ref in comparison.only_theirs
    ]
    for difference in comparison.differing:
        what = list(difference.keys) + (["the vector"] if difference.vector_differs else [])
        lines.append((difference.collection, difference.id, "differs: " + ", ".join(what)))
    return [f"{collection} {record_id}: {what}" for collection, record_id, what in sorted(lines)]
