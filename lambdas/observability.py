"""Structured JSON logs and CloudWatch metrics (embedded metric format) for the Lambdas.

One JSON object per line on stdout: CloudWatch Logs keeps it whole, Logs Insights can query
its fields, and a line carrying an ``_aws`` block is turned into metrics by CloudWatch with no
API call. Written here rather than taken from a framework so the stream Lambda stays small
and quick to start; times in logs are wall-clock by nature and never feed the log or digests.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import msgspec

NAMESPACE = "ReceiptEvents"
_encoder = msgspec.json.Encoder()


def log(level: str, message: str, *, stream: TextIO | None = None, **fields: Any) -> None:
    """Write one structured log line."""
    entry = {"level": level, "message": message, "timestamp": round(time.time(), 3), **fields}
    _write(entry, stream)


def emit_metrics(
    function: str,
    metrics: Mapping[str, float | int],
    *,
    units: Mapping[str, str] | None = None,
    namespace: str = NAMESPACE,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Write one EMF line: each metric under dimension ``Function``; returns the document."""
    units = units or {}
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["Function"]],
                    "Metrics": [
                        {"Name": name, "Unit": units.get(name, "Count")} for name in metrics
                    ],
                }
            ],
        },
        "Function": function,
        **metrics,
    }
    _write(document, stream)
    return document


def _write(document: Mapping[str, Any], stream: TextIO | None) -> None:
    target = stream or sys.stdout
    target.write(_encoder.encode(document).decode() + "\n")
    target.flush()
