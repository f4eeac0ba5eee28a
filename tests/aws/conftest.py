"""Fixtures local to the lease tests: a settable clock and the two lease backends.

``backend`` runs a test on DynamoDB Local (``DynamoDBLeases`` on a fresh ``lock_table``) and on
local files (``FileLeases`` in ``tmp_path``); see :mod:`tests.support.lease_backends`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from tests.support.lease_backends import Backend, dynamodb_backend, file_backend


@pytest.fixture(params=[pytest.param("dynamodb", marks=pytest.mark.aws), "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "dynamodb":
        return dynamodb_backend(
            request.getfixturevalue("aws_clean"), request.getfixturevalue("lock_table")
        )
    return file_backend(tmp_path / "store")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
