"""How a command's failures reach the user: one line on stderr and an exit status, no traceback.

``receipt_cli.errors.report`` is the one mapping every command's errors go through (the app's
root group calls it); the last test shows the app applying it to an error a command raises.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from typer.testing import CliRunner

from receipt_chroma.lease import LeaseTableMissing
from receipt_chroma.snapshots import BucketMissing
from receipt_cli.app import app
from receipt_cli.errors import report
from receipt_events.cli.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, UserError


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
    assert report(error) == EXIT_CHECK_FAILED
    err = capsys.readouterr().err
    assert "an AWS request failed" in err
    assert type(error).__name__ in err
    assert "internal error (" not in err
    assert "Traceback" not in err


def test_an_unexpected_error_asks_for_a_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert report(RuntimeError("boom")) == EXIT_CHECK_FAILED
    err = capsys.readouterr().err
    assert "internal error (RuntimeError): boom" in err
    assert "please report it" in err


def test_a_user_error_exits_with_its_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert report(UserError("no such file: x.jsonl", 2)) == 2
    assert "error: no such file: x.jsonl" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (LeaseTableMissing("leases"), "receipt-events lease create-table --lease-table leases"),
        (BucketMissing("snapshots"), "aws s3 mb s3://snapshots"),
    ],
)
def test_a_missing_resource_is_a_usage_error_that_names_the_fix(
    error: Exception, fix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report(error) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert fix in err
    assert "run the command again" not in err  # not a transient failure


def test_the_app_maps_what_a_command_raises(tmp_path: object) -> None:
    """A store URL the command cannot use: the error comes out of the command's body and
    meets the app's mapping (exit 2, one line), not a traceback."""
    result = CliRunner().invoke(app, ["log", "--store", "mysql://nowhere/db"])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) >= 1
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
