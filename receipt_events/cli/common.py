"""What every command shares: the ``--store``/``--json`` options, output, and error handling.

Errors a user can cause become one clear line on stderr and an exit status (2 for bad usage
or unreadable input, 1 when a check fails or the work cannot complete), never a traceback.
Set ``RECEIPT_EVENTS_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import msgspec
import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console

from receipt_events.records import UnreadableInput
from receipt_events.store import (
    STORE_ENV,
    EventStore,
    StoreURLError,
    open_store,
    redact,
    resolve_store_url,
)

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=STORE_ENV,
        help="Event store URL: sqlite:///PATH, postgresql://USER@HOST:PORT/DB or memory://. "
        "Default: sqlite:///./.receipt-events/events.db",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (for scripts).")
]

console = Console(soft_wrap=True)
error_console = Console(stderr=True, soft_wrap=True)


class UserError(Exception):
    """An error the user can fix; printed as one line, exits with ``status``."""

    def __init__(self, message: str, status: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.status = status


def fail(message: str, status: int = EXIT_BAD_INPUT) -> NoReturn:
    raise UserError(message, status)


def emit_json(document: Any) -> None:
    """Write one JSON document (or one line of a stream of them) to stdout."""
    sys.stdout.buffer.write(msgspec.json.encode(document) + b"\n")
    sys.stdout.flush()


@contextmanager
def opened_store(url: str | None) -> Iterator[EventStore]:
    """Open the store for a command, turning URL and connection problems into user errors."""
    try:
        store = open_store(url)
    except StoreURLError as error:
        fail(str(error))
    except PersistenceError as error:
        fail(
            f"cannot open the event store {redact(resolve_store_url(url))}: {error}",
            EXIT_CHECK_FAILED,
        )
    try:
        yield store
    finally:
        store.close()


def guarded(command: Callable[[], None]) -> None:
    """Run a command body, mapping known errors to messages and exit statuses."""
    try:
        command()
    except UserError as error:
        error_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(error.status) from None
    except UnreadableInput as error:
        error_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except PersistenceError as error:
        error_console.print(
            f"[bold red]error:[/] the event store failed: {error}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_CHECK_FAILED) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as error:
        if _is_aws_error(error):
            # S3 or DynamoDB failing (5xx, throttling, unreachable endpoint): not our bug, and
            # every step retries from its last commit, so say what failed and that it is safe
            error_console.print(
                f"[bold red]error:[/] an AWS request failed ({type(error).__name__}): {error}\n"
                "Nothing partial was made visible; run the command again once the service "
                "answers.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_CHECK_FAILED) from None
        if os.environ.get("RECEIPT_EVENTS_DEBUG"):
            traceback.print_exc()
        error_console.print(
            f"[bold red]internal error[/] ({type(error).__name__}): {error}\n"
            "Set RECEIPT_EVENTS_DEBUG=1 for the traceback, and please report it.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_CHECK_FAILED) from None


def _is_aws_error(error: BaseException) -> bool:
    """Whether an error comes from boto3/botocore (without importing them: the extra is
    optional)."""
    return type(error).__module__.split(".")[0] in ("botocore", "boto3")
