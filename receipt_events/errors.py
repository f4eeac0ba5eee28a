"""Errors every layer shares.

:class:`MissingResource` is a thing the user must create before a command can work (a lease
table, a bucket, a store table): retrying will not help, so it says what is missing and the
command or step that creates it. The command line reports it as a usage error (exit 2).
"""

from __future__ import annotations


class MissingResource(Exception):
    """``resource`` does not exist; ``fix`` says how to create it."""

    def __init__(self, resource: str, fix: str) -> None:
        super().__init__(f"{resource} does not exist: {fix}")
        self.resource = resource
        self.fix = fix
