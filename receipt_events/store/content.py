"""Content hashes: what tells a redelivered copy from a different item under the same key.

A stored event's identity is its dedup key (a stream record's eventID, a backfilled item's
keys); its content hash is the sha256 of its canonical encoding at the current schema, so an
event stored under an older schema hashes the same once upcast. A parked record's content is
its payload alone (the reason and origin may differ between deliveries), canonicalised when
it is JSON, since the Lambda path re-encodes the record and a file keeps the line as written.

Only identities that name one change are compared (:func:`content_checked`): a stream
record's eventID. A backfilled item's identity names the item, which is backfilled at most
once whatever it held when read (a later pass reads it again at another time; its later
changes come from the stream), so a second one under that key is a plain duplicate.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from receipt_events.events import BACKFILL_KEY_PREFIX
from receipt_events.store.parked import ParkedRecord

_encoder = msgspec.json.Encoder(order="deterministic")
_sorted = msgspec.json.Encoder(order="sorted")


def content_hash(item: Any) -> str:
    """The sha256 (hex) of an item's content, stable across encodings of the same content."""
    if isinstance(item, ParkedRecord):
        return _payload_hash(item.payload)
    return hashlib.sha256(_encoder.encode(item)).hexdigest()


def _payload_hash(payload: bytes) -> str:
    try:
        canonical = _sorted.encode(msgspec.json.decode(payload))
    except (msgspec.DecodeError, msgspec.EncodeError, RecursionError):
        canonical = payload
    return hashlib.sha256(canonical).hexdigest()


def content_checked(item: Any) -> bool:
    """Whether other content under this item's stored key is a conflict (else a duplicate)."""
    key: str = item.parked_id if isinstance(item, ParkedRecord) else item.originator_id
    return not key.startswith(BACKFILL_KEY_PREFIX)
