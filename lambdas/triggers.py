"""What woke the projector: SQS wake-up messages, an EventBridge schedule, or a direct invoke.

SQS messages are known by their ``messageId`` so the handler can report the ones it could
not act on; a direct invoke may ask for a position (``{"to": P}``). Anything else is refused
with the event quoted: a misrouted trigger must not silently run a compaction.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Trigger = Literal["sqs", "schedule", "direct"]


class Wakeup(msgspec.Struct, frozen=True):
    trigger: Trigger
    message_ids: list[str]
    to: int | None = None


def parse_wakeup(event: Any) -> Wakeup:
    """The wake-up an event carries; ``ValueError`` if it is not one."""
    if isinstance(event, dict):
        records = event.get("Records")
        if isinstance(records, list) and records:
            if all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records):
                return Wakeup("sqs", [str(r.get("messageId")) for r in records])
            raise ValueError("Records that are not SQS messages: not a projector wake-up")
        if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
            return Wakeup("schedule", [])
        to = event.get("to")
        if to is None or (isinstance(to, int) and not isinstance(to, bool) and to >= 0):
            unknown = set(event) - {"to"}
            if not unknown:
                return Wakeup("direct", [], to)
    raise ValueError(f'not a projector wake-up (SQS, schedule, or {{"to": P}}): {event!r:.200}')
