"""Fixtures local to the lock tests: a settable clock and the two lock backends.

``backend`` runs a test on DynamoDB Local (``DynamoDBLeases`` on a fresh ``lock_table``) and on
local files (``FileLeases`` in ``tmp_path``). A backend makes lock handles (each with its own
client, as separate processes would have) and reads or tampers with a lock's stored record
directly, without going through the code under test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from receipt_chroma.lease import DynamoDBLeases, FileLeases, Leases

START = 1_700_000_000.25  # a realistic epoch with a fraction, so rounding would show


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    name: str
    locks: Callable[[Callable[[], float]], Leases]
    raw: Callable[[str], dict[str, Any] | None]
    steal: Callable[[str], str]

    def state(self, name: str) -> dict[str, Any] | None:
        """The stored record as {owner (None once released), token, expires_at}, read raw."""
        raw = self.raw(name)
        if raw is None:
            return None
        if self.name == "dynamodb":
            for attribute in ("token", "expires_at"):
                assert set(raw[attribute]) == {"N"}, f"{attribute} is not a number: {raw}"
            return {
                "owner": raw["owner"]["S"] if "owner" in raw else None,
                "token": int(raw["token"]["N"]),
                "expires_at": float(raw["expires_at"]["N"]),
            }
        assert isinstance(raw["token"], int), raw
        assert isinstance(raw["expires_at"], int | float), raw
        return {
            "owner": raw.get("owner"),
            "token": raw["token"],
            "expires_at": float(raw["expires_at"]),
        }


THIEF = "thief:0:stolen"
FAR_FUTURE = 4_000_000_000.0


def dynamodb_backend(request: pytest.FixtureRequest) -> Backend:
    aws = request.getfixturevalue("aws_clean")
    table: str = request.getfixturevalue("lock_table")
    admin = aws.client("dynamodb")

    def raw(name: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = admin.get_item(
            TableName=table, Key={"lock_id": {"S": name}}, ConsistentRead=True
        ).get("Item")
        return item

    def steal(name: str) -> str:
        admin.update_item(
            TableName=table,
            Key={"lock_id": {"S": name}},
            UpdateExpression="SET #o = :thief, expires_at = :far ADD #t :one",
            ExpressionAttributeNames={"#o": "owner", "#t": "token"},
            ExpressionAttributeValues={
                ":thief": {"S": THIEF},
                ":far": {"N": str(FAR_FUTURE)},
                ":one": {"N": "1"},
            },
        )
        return THIEF

    return Backend(
        "dynamodb",
        lambda clock: DynamoDBLeases(table, client=aws.client("dynamodb"), clock=clock),
        raw,
        steal,
    )


def file_backend(root: Path) -> Backend:
    admin = FileLeases(root)

    def raw(name: str) -> dict[str, Any] | None:
        path = admin.state_path(name)
        if not path.exists():
            return None
        state: dict[str, Any] = json.loads(path.read_text())
        return state

    def steal(name: str) -> str:
        with admin._guard(name):
            state = admin._read(name) or {"lock_id": name, "token": 0}
            admin._write(
                name,
                {**state, "owner": THIEF, "expires_at": FAR_FUTURE, "token": state["token"] + 1},
            )
        return THIEF

    return Backend("file", lambda clock: FileLeases(root, clock=clock), raw, steal)


@pytest.fixture(params=[pytest.param("dynamodb", marks=pytest.mark.aws), "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "dynamodb":
        return dynamodb_backend(request)
    return file_backend(tmp_path / "store")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
