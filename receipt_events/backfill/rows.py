"""A row the backfill read → an event, a skip, or a parked record.

The event comes from :func:`receipt_events.changes.item_event`, the same code that turns a
stream record's NewImage into an event, so a row and a stream INSERT of the same state give
the same event (only the source differs). A row that cannot be read is parked, never dropped.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from receipt_events.attributes import AttributeValueError, decode_item
from receipt_events.changes import ChangeError, Skipped, item_event
from receipt_events.events import (
    BACKFILL_KEY_PREFIX,
    BackfillSource,
    EmbeddingsPublished,
    ReceiptEvent,
)
from receipt_events.ingest import BACKFILL_ORIGIN
from receipt_events.keys import KeyFormatError, parse_key
from receipt_events.store import ParkedRecord

_EXPECTED = (AttributeValueError, KeyFormatError, ChangeError)
_encoder = msgspec.json.Encoder(order="deterministic")


def row_outcome(
    row: dict[str, Any], source: BackfillSource
) -> ReceiptEvent | Skipped | ParkedRecord:
    """What one row (DynamoDB JSON, as Scan and exports give it) means for the log."""
    try:
        item = decode_item(row, "Item")
        pk, sk = item.get("PK"), item.get("SK")
        if not isinstance(pk, str) or not isinstance(sk, str):
            raise ChangeError("the item has no string PK and SK")
        return item_event(parse_key(pk, sk), item, source)
    except _EXPECTED as error:
        return park_row(row, source, str(error))
    except Exception as error:  # a bug must not stop the backfill: park the row, keep it
        return park_row(row, source, f"internal error ({type(error).__name__}): {error}")


def park_row(row: dict[str, Any], source: BackfillSource, error: str) -> ParkedRecord:
    """A row kept whole with its reason, identified by its key (or its bytes)."""
    payload = _encoder.encode({"Item": row})
    key = _key_of(row)
    parked_id = (
        f"{BACKFILL_KEY_PREFIX}{key}"
        if key is not None
        else "sha256:" + hashlib.sha256(payload).hexdigest()
    )
    return ParkedRecord(
        parked_id=parked_id,
        origin=f"{BACKFILL_ORIGIN}{source.via}:{source.table}",
        error=error,
        payload=payload,
    )


def _key_of(row: dict[str, Any]) -> str | None:
    pk, sk = row.get("PK"), row.get("SK")
    if isinstance(pk, dict) and isinstance(sk, dict):
        pk_text, sk_text = pk.get("S"), sk.get("S")
        if isinstance(pk_text, str) and isinstance(sk_text, str):
            return f"{pk_text}|{sk_text}"
    return None


def merge_order(row: dict[str, Any], event: EmbeddingsPublished) -> tuple[Any, ...]:
    """Where the old system merged a run (docs/backfill.md): runs it finished, by finish time
    (``lines_finished_at``, then ``words_finished_at``), then ``created_at`` (unreliable: a
    default evaluated once), then run id; runs it never finished come last, in the same order.
    """

    def text(name: str) -> str:
        value = row.get(name)
        found = value.get("S") if isinstance(value, dict) else None
        return found if isinstance(found, str) else ""

    finished = (text("lines_finished_at"), text("words_finished_at"))
    return (finished == ("", ""), finished, text("created_at"), event.run_id)
