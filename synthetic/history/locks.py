"""The compactor's lock items, one per collection, written once every receipt has lived.

The locks follow run completions across the whole timeline, not any one receipt's clock, so
they are simulated last; all of their records are noise that ingest must skip.
"""

from __future__ import annotations

from decimal import Decimal

from receipt_events.attributes import Item
from synthetic.history import ids
from synthetic.history.stream import Stream
from synthetic.history.values import iso


def write_locks(stream: Stream) -> None:
    """The compactor's lock per collection: acquire, heartbeat, release around run completions."""
    rng = stream.rng
    start = stream.config.start_time
    completions = sorted(stream.completions)
    for collection in ("lines", "words"):
        lock_id = f"chroma-{collection}-update"
        pk, sk = ids.lock_pk(collection, lock_id), "LOCK"
        free_at = start - 1
        for completed in completions:
            acquired = max(start, completed - rng.randint(1, 20))
            if acquired <= free_at or rng.random() < 0.5:
                continue
            released = acquired + rng.randint(20, 240)
            owner = ids.random_uuid(rng)
            expires = acquired + 300
            item: Item = {
                "PK": pk,
                "SK": sk,
                "GSI1PK": f"LOCK#{collection}",
                "GSI1SK": f"EXPIRES#{expires}",
                "TYPE": "COMPACTION_LOCK",
                "lock_id": lock_id,
                "owner": owner,
                "expires": Decimal(expires),
                "collection": collection,
                "heartbeat": None,
            }
            stream.put(acquired, pk, sk, item, "lock")
            beat = acquired
            while True:
                beat += rng.randint(30, 60)
                if beat >= released:
                    break
                item = dict(item)
                item["expires"] = Decimal(beat + 300)
                item["GSI1SK"] = f"EXPIRES#{beat + 300}"
                item["heartbeat"] = iso(beat, rng.randrange(1_000_000))
                stream.put(beat, pk, sk, item, "lock")
            stream.delete(released, pk, sk, "lock")
            free_at = released
