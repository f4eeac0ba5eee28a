"""``query DIR --text T``: the records of a snapshot directory nearest to a text.

The text is embedded by the model the snapshot records for the collection (see
``receipt_chroma/provenance.py``), never by a guess: a collection whose model is unknown, or
one this install cannot run, is refused with the reason (:mod:`projections.query`). The query
and the model are imported when the command runs, so the command line starts without Chroma.
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.markup import escape
from rich.table import Table

from receipt_events.cli.errors import fail
from receipt_events.cli.options import JsonOption
from receipt_events.cli.output import console, emit_json

if TYPE_CHECKING:
    from projections.query import QueryResult
    from receipt_chroma.client import CollectionName

# metadata keys worth a column when a hit has them (the rest are in --json)
SHOWN_KEYS = ("merchant_name", "label_status", "valid_labels")
WHERE_EXAMPLE = '{"label_status": "validated"}'


def query_command(
    directory: Annotated[Path, typer.Argument(help="A snapshot directory.", show_default=False)],
    text: Annotated[
        str,
        typer.Option("--text", "-t", help="The text to look for.", show_default=False),
    ],
    collection: Annotated[
        str, typer.Option("--collection", help="The collection to search: lines or words.")
    ] = "words",
    results: Annotated[
        int, typer.Option("--results", "-n", min=1, help="How many records to return.")
    ] = 10,
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            help="Keep only records whose metadata match this Chroma filter (a JSON object), "
            f"e.g. '{WHERE_EXAMPLE}' or "
            '\'{"valid_labels": {"$contains": "GRAND_TOTAL"}}\'.',
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """The records of a snapshot directory nearest to a text (cosine distance, nearest first).

    The text is embedded by the model recorded for the collection in the snapshot, so that
    its distances to the records mean something; a snapshot whose deltas recorded no model
    (or one this install cannot run) is refused (exit 2), with what to do. Records are shown
    with their id, document, distance and metadata; --where filters them first, in Chroma's
    filter syntax (one condition per object; combine several with $and / $or).

    Example (the 5 validated grand totals nearest to "grand total"):

        receipt-events query SNAP -t "grand total" -n 5 \\
            --where '{"valid_labels": {"$contains": "GRAND_TOTAL"}}'
    """
    if collection not in ("lines", "words"):
        fail(f"--collection must be 'lines' or 'words', not {collection!r}")
    name = cast("CollectionName", collection)
    condition = parse_where(where)

    from projections.query import WhereRefused, query_snapshot

    try:
        result = query_snapshot(directory, text, collection=name, n=results, where=condition)
    except WhereRefused as error:
        fail(f"--where: {error}")
    if json:
        emit_json(result)
        return
    print_result(result)


def parse_where(value: str | None) -> dict[str, Any] | None:
    """``--where``: a JSON object (Chroma's filter), or None; ``{}`` means no filter."""
    if value is None:
        return None
    try:
        parsed = jsonlib.loads(value)
    except ValueError as error:
        fail(f"--where is not valid JSON ({error}): {value!r}; for example '{WHERE_EXAMPLE}'")
    if not isinstance(parsed, dict):
        fail(
            f"--where must be a JSON object (Chroma's filter syntax), not a "
            f"{type(parsed).__name__}: {value!r}; for example '{WHERE_EXAMPLE}'"
        )
    return parsed or None


def print_result(result: QueryResult) -> None:
    """One line naming what was searched, then a table of the hits, nearest first."""
    condition = "" if result.where is None else f", where {jsonlib.dumps(result.where)}"
    console.print(
        f"{result.collection} nearest to {result.text!r} (embedded by {result.model}), "
        f"snapshot at position {result.position}{condition}",
        highlight=False,
        markup=False,
    )
    if not result.results:
        console.print("no records match", highlight=False)
        return
    keys = [key for key in SHOWN_KEYS if any(key in hit.metadata for hit in result.results)]
    table = Table(box=None, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("distance", justify="right")
    table.add_column("document")
    table.add_column("id", overflow="fold")
    for key in keys:
        table.add_column(key)
    for rank, hit in enumerate(result.results, start=1):
        table.add_row(
            str(rank),
            f"{hit.distance:.4f}",
            escape(hit.document or ""),
            escape(hit.id),
            *(escape(_shown(hit.metadata.get(key))) for key in keys),
        )
    console.print(table)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)
