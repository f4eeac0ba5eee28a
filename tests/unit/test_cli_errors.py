"""How a command's failures reach the user: one line on stderr and an exit status, no traceback."""

from __future__ import annotations

import pytest
import typer
from botocore.exceptions import ClientError, EndpointConnectionError

from receipt_events.cli.common import EXIT_CHECK_FAILED, fail, guarded


def _raise(error: BaseException) -> None:
    raise error


@pytest.mark.parametrize(
    "error",
    [
        ClientError(
            {"Error": {"Code": "InternalError", "Message": "We encountered an internal error"}},
            "PutObject",
        ),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1/bucket"),
    ],
)
def test_an_aws_failure_is_reported_as_such_not_as_our_bug(
    error: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as exited:
        guarded(lambda: _raise(error))
    assert exited.value.exit_code == EXIT_CHECK_FAILED
    err = capsys.readouterr().err
    assert "an AWS request failed" in err
    assert type(error).__name__ in err
    assert "internal error (" not in err
    assert "Traceback" not in err


def test_an_unexpected_error_asks_for_a_report(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited:
        guarded(lambda: _raise(RuntimeError("boom")))
    assert exited.value.exit_code == EXIT_CHECK_FAILED
    err = capsys.readouterr().err
    assert "internal error (RuntimeError): boom" in err
    assert "please report it" in err


def test_a_user_error_exits_with_its_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited:
        guarded(lambda: fail("no such file: x.jsonl", 2))
    assert exited.value.exit_code == 2
    assert "error: no such file: x.jsonl" in capsys.readouterr().err
