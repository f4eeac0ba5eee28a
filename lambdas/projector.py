"""Lambda: wake up (SQS, schedule, or a direct ``{"to": P}``) → compaction → publish.

Routing, failure reporting and metrics only; the work is ``projections.projector``. The
snapshot stays in ``/tmp`` between warm invocations and is reused when it is at or past the
published one. If another projector holds the lock this one stands down; an SQS wake-up it
could not act on is reported failed (by messageId), so SQS brings it back later and no
wake-up is ever lost.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from projections.projector import ProjectorConfig, parse_trigger, run_projector
from receipt_chroma.lease import LockBusy
from receipt_events.observability import emit_metrics, log
from receipt_events.store.cached import CachedStore

FUNCTION = "projector"
_store = CachedStore()  # kept across warm invocations


def _failed(wakeup_ids: list[str]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in wakeup_ids]}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.monotonic()
    wakeup = parse_trigger(event)
    config = ProjectorConfig.from_env(os.environ)
    request = getattr(context, "aws_request_id", None)
    try:
        store = _store.get(config.store)
        result = run_projector(config, store, wakeup, seconds_left=_seconds_left(context))
        head = store.head()
    except LockBusy as busy:
        log(
            "INFO",
            "another projector is running: standing down",
            request_id=request,
            trigger=wakeup.trigger,
            holder=str(busy),
        )
        emit_metrics(FUNCTION, {"StoodDown": 1})
        return _failed(wakeup.message_ids) if wakeup.trigger == "sqs" else {"status": "busy"}
    except Exception as error:
        _store.drop()
        log(
            "ERROR",
            "projector run failed",
            request_id=request,
            trigger=wakeup.trigger,
            error=f"{type(error).__name__}: {error}",
        )
        emit_metrics(FUNCTION, {"Failures": 1})
        if wakeup.trigger == "sqs":
            return _failed(wakeup.message_ids)
        raise
    seconds = time.monotonic() - started
    lag = max(head - result.position, 0)
    log(
        "INFO",
        "projector run done",
        request_id=request,
        trigger=wakeup.trigger,
        published=result.published,
        publishes=result.publishes,
        position=result.position,
        applied=result.applied,
        key=result.key,
        token=result.token,
        lag=lag,
        reused_cache=result.reused_cache,
    )
    emit_metrics(
        FUNCTION,
        {
            "Applied": result.applied,
            "Publishes": result.publishes,
            "Lag": lag,
            "ReusedCache": int(result.reused_cache),
            "Duration": round(seconds * 1000, 1),
        },
        units={"Duration": "Milliseconds"},
    )
    if wakeup.trigger == "sqs":
        return {"batchItemFailures": []}
    return {"status": "ok", **msgspec.to_builtins(result), "lag": lag}


def _seconds_left(context: Any) -> float | None:
    """The invocation's remaining time, from the Lambda context (None outside Lambda)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else None
