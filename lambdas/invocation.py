"""One handler call, as the handlers report it: a JSON log line and an EMF metrics line.

Both Lambdas end every invocation the same way: one structured log line saying what happened
(with the request id) and one line of CloudWatch metrics under the function's name, with the
invocation's duration. :class:`Invocation` holds what that needs, so a handler reads as routing
and one call into the package.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lambdas.observability import emit_metrics, log


class Invocation:
    def __init__(self, function: str, context: Any) -> None:
        self.function = function
        self.context = context
        self.request_id: str | None = getattr(context, "aws_request_id", None)
        self.started = time.monotonic()

    def seconds_left(self) -> float | None:
        """The invocation's remaining time, from the Lambda context (None outside Lambda)."""
        remaining = getattr(self.context, "get_remaining_time_in_millis", None)
        return remaining() / 1000.0 if callable(remaining) else None

    def report(
        self,
        level: str,
        message: str,
        metrics: Mapping[str, float | int],
        *,
        timed: bool = True,
        **fields: Any,
    ) -> None:
        """Write the invocation's log line and its metrics (``Duration`` added if ``timed``)."""
        log(level, message, request_id=self.request_id, **fields)
        units = {}
        if timed:
            duration = round((time.monotonic() - self.started) * 1000, 1)
            metrics = {**metrics, "Duration": duration}
            units["Duration"] = "Milliseconds"
        emit_metrics(self.function, metrics, units=units)


def batch_item_failures(identifiers: list[str]) -> dict[str, Any]:
    """The partial-batch response: Lambda retries (SQS) or resumes (a stream) from these."""
    return {"batchItemFailures": [{"itemIdentifier": item} for item in identifiers]}
