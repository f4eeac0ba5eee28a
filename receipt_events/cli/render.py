"""Human renderings of summaries and events (the ``--json`` forms are the structs themselves)."""

from __future__ import annotations

from rich.table import Table

from receipt_events.events import (
    EmbeddingsPublished,
    Event,
    LineRemoved,
    PlaceChanged,
    PlaceRemoved,
    ReceiptRemoved,
    WordLabelRemoved,
    WordLabelSet,
    WordRemoved,
)
from receipt_events.ingest import IngestSummary
from receipt_events.store import Recorded


def describe(event: Event) -> tuple[str, str]:
    """(what it is about, what changed) for one event, in a line's worth of text."""
    if isinstance(event, WordLabelSet):
        by = f" by {event.label_proposed_by}" if event.label_proposed_by else ""
        return event.word.chroma_id, f"{event.label} = {event.validation_status}{by}"
    if isinstance(event, WordLabelRemoved):
        return event.word.chroma_id, f"{event.label} removed"
    if isinstance(event, PlaceChanged):
        name = event.merchant_name or event.canonical_merchant_name or "(no name)"
        return event.receipt.chroma_prefix, f"{name} [{event.entity}]"
    if isinstance(event, PlaceRemoved):
        return event.receipt.chroma_prefix, f"place removed [{event.entity}]"
    if isinstance(event, EmbeddingsPublished):
        return event.receipt.chroma_prefix, f"run {event.run_id}"
    if isinstance(event, WordRemoved):
        return event.word.chroma_id, "word removed"
    if isinstance(event, LineRemoved):
        return event.line.chroma_id, "line removed"
    assert isinstance(event, ReceiptRemoved)
    return event.receipt.chroma_prefix, "receipt removed"


def event_line(recorded: Recorded) -> str:
    subject, change = describe(recorded.event)
    return f"{recorded.position:>9}  {type(recorded.event).__name__:<19} {subject}  {change}"


def ingest_table(summary: IngestSummary, title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left", box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    table.add_row("records read", str(summary.records), "")
    table.add_row("appended", str(summary.appended), "new events in the log")
    table.add_row("duplicates", str(summary.duplicates), "already stored (redeliveries)")
    table.add_row("unchanged", str(summary.unchanged), _kinds(summary.unchanged_by_kind))
    table.add_row("skipped", str(summary.skipped), _kinds(summary.skipped_by_kind))
    table.add_row("parked", str(summary.parked), "see `receipt-events parked list`")
    table.add_row("log head", str(summary.head), "last position")
    return table


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
