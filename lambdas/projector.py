"""Lambda: wake up (SQS, schedule, or a direct ``{"to": P}``) → compaction → publish.

Routing, failure reporting and metrics only; the work is ``projections.projector``. The
snapshot directory stays in ``/tmp`` between warm invocations and is reused when it is at or
past the published one. If another projector holds the lease this one stands down; an SQS
wake-up it could not act on is reported failed (by messageId), so SQS brings it back later
and no wake-up is ever lost.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from lambdas.invocation import Invocation, batch_item_failures
from lambdas.triggers import parse_wakeup
from lambdas.warm_store import WarmStore
from projections.projector import ProjectorConfig, run_projector
from receipt_chroma.lease import LeaseBusy

FUNCTION = "projector"
_store = WarmStore()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    invocation = Invocation(FUNCTION, context)
    wakeup = parse_wakeup(event)
    config = ProjectorConfig.from_env(os.environ)
    try:
        store = _store.get(config.store)
        result = run_projector(config, store, to=wakeup.to, seconds_left=invocation.seconds_left())
        head = store.head()
    except LeaseBusy as busy:
        invocation.report(
            "INFO",
            "another projector is running: standing down",
            {"StoodDown": 1},
            timed=False,
            trigger=wakeup.trigger,
            holder=str(busy),
        )
        if wakeup.trigger == "sqs":
            return batch_item_failures(wakeup.message_ids)
        return {"status": "busy"}
    except Exception as error:
        _store.drop()
        invocation.report(
            "ERROR",
            "projector run failed",
            {"Failures": 1},
            timed=False,
            trigger=wakeup.trigger,
            error=f"{type(error).__name__}: {error}",
        )
        if wakeup.trigger == "sqs":
            return batch_item_failures(wakeup.message_ids)
        raise
    lag = max(head - result.position, 0)
    invocation.report(
        "INFO",
        "projector run done",
        {
            "Applied": result.applied,
            "Publishes": result.publishes,
            "Lag": lag,
            "ReusedCache": int(result.reused_cache),
        },
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
    if wakeup.trigger == "sqs":
        return batch_item_failures([])
    return {"status": "ok", **msgspec.to_builtins(result), "lag": lag}
