"""Waking the projector: a small SQS message after new events were appended.

The message carries only the log head: the log is the truth, a wake-up only says "look".
Losing one costs latency, not data (the projector also runs on a schedule), so failures are
reported to the caller to log and count, never raised into the ingest path.
"""

from __future__ import annotations

from typing import Any

import msgspec

WAKE_QUEUE_ENV = "RECEIPT_EVENTS_WAKE_QUEUE"


def send_wakeup(queue_url: str, head: int, *, client: Any = None) -> str | None:
    """Send a wake-up; returns an error description instead of raising."""
    try:
        if client is None:
            import boto3

            client = boto3.client("sqs")
        client.send_message(
            QueueUrl=queue_url, MessageBody=msgspec.json.encode({"head": head}).decode()
        )
    except Exception as error:  # a failed wake-up must never fail the ingest
        return f"{type(error).__name__}: {error}"
    return None
