"""Exit statuses, and the error a command raises to stop with a one-line message.

0 done; 1 a check failed or the work could not complete (verify mismatch, publish lost, the
store unreachable); 2 bad usage or unreadable input. Every other error a library raises is
mapped to a message and a status in one place, at the top of the command line
(``receipt_cli/errors.py``).
"""

from __future__ import annotations

from typing import NoReturn

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


class UserError(Exception):
    """An error the user can fix; printed as one line, exits with ``status``."""

    def __init__(self, message: str, status: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.status = status


def fail(message: str, status: int = EXIT_BAD_INPUT) -> NoReturn:
    raise UserError(message, status)
