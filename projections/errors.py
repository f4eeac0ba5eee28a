"""What the projection raises when it cannot go on, in a module that imports no Chroma.

The command line maps these to messages and exit statuses without loading Chroma for
commands that never touch it; the modules that raise them import them from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from projections.runner import CatchUpResult
    from receipt_chroma.deltas import DeltaError


class DeltaProblem(Exception):
    """A delta that stops the projection before the event that references it."""

    def __init__(self, position: int, run_id: str, collection: str, error: DeltaError) -> None:
        super().__init__(
            f"log position {position}: compaction run {run_id}, collection {collection}: {error}"
        )
        self.position = position
        self.run_id = run_id
        self.collection = collection
        self.error = error


class ProjectionStopped(Exception):
    """A delta stopped the projection; everything before its event was applied."""

    def __init__(self, problem: DeltaProblem, result: CatchUpResult) -> None:
        super().__init__(str(problem))
        self.problem = problem
        self.result = result


class ProjectionConflict(Exception):
    """The snapshot and the log (or the request) do not fit together."""


class NotASnapshot(Exception):
    """A directory that is not a snapshot directory."""


class StateError(Exception):
    """A state file this code cannot resume from (another version, another log)."""


class CompactionGaveUp(Exception):
    """Every attempt lost the pointer swap to another publisher."""


class QueryError(Exception):
    """A query that cannot be answered: no model recorded for the collection, or one that
    cannot run here."""
