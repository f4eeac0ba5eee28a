"""Named fault points for the reliability suite: no-ops unless ``RECEIPT_EVENTS_FAULT`` is set.

``RECEIPT_EVENTS_FAULT=<point>`` or ``<point>@<n>`` makes the process kill itself with SIGKILL
the n-th time (default: the first) it passes that point: a real crash at an exact step, with
no cleanup, no ``finally``, no flush. The points are the steps where a crash could leave the
log, a snapshot or the pointer half done:

    append.before_commit            rows inserted, transaction not committed
    projection.after_chroma_write   a Chroma write made, state and checkpoint not committed
    projection.after_state_commit   state and checkpoint committed (batch done)
    publish.mid_upload              some snapshot files uploaded, not all
    publish.before_pointer          everything uploaded, pointer not moved
    publish.after_pointer           pointer moved, lease not yet released
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "append.before_commit",
    "projection.after_chroma_write",
    "projection.after_state_commit",
    "publish.mid_upload",
    "publish.before_pointer",
    "publish.after_pointer",
)

_target, _, _nth = (os.environ.get("RECEIPT_EVENTS_FAULT") or "").partition("@")
_at = int(_nth) if _nth.isdigit() else 1
_passes = 0


def point(name: str) -> None:
    """Pass a fault point (kills the process here if it is the configured one)."""
    global _passes
    if name != _target:
        return
    _passes += 1
    if _passes == _at:
        os.kill(os.getpid(), signal.SIGKILL)
