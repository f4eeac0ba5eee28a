"""Dropping the event store a handler module keeps across warm invocations.

A real container never sees its environment change between invocations; tests do (another
schema, another store), so they start each handler module cold.
"""

from __future__ import annotations

from typing import Any


def drop_warm_store(module: Any) -> None:
    """Forget the store a handler module keeps across warm invocations."""
    drop = getattr(getattr(module, "_store", None), "drop", None)
    if callable(drop):
        drop()
    elif hasattr(module, "_drop_store"):
        module._drop_store()
