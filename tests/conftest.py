"""Fixtures shared by every suite: store URLs for each backend, and the PostgreSQL server.

* ``postgres_server`` (session): the base URL of the PostgreSQL test database, after checking
  it answers. If it does not, PostgreSQL tests are *skipped* with the reason, except under CI
  (``CI=true``), where they *fail*: CI must never pass by skipping them.
* ``postgres_url``: a fresh store URL on PostgreSQL, one schema per test, dropped afterwards
  (``new_postgres_schema`` names more schemas, for tests that need several stores).
* ``sqlite_url`` / ``memory_url``: a fresh store URL on the other backends.
* ``dynamodb_url``: a fresh store URL on DynamoDB Local (a table of its own).
* ``store_url``: parametrised over all four backends, so one suite runs on each.
* ``open_test_store`` / ``store``: stores opened on ``store_url``, closed after the test.

Any test that uses a PostgreSQL fixture gets the ``postgres`` marker, so ``-m "not postgres"``
deselects it.

The AWS test services (tests/aws/harness.py; moto and DynamoDB Local over HTTP, never in-process
patching):

* ``aws_env`` (session): starts a moto server (S3, SQS, everything else) and DynamoDB Local
  (DynamoDB, DynamoDB Streams) on free 127.0.0.1 ports, points ``AWS_ENDPOINT_URL_*`` at them
  with fake credentials, region eu-west-1 and no config files, and yields an ``AwsEnv``
  (``.moto_url``, ``.dynamodb_url``, ``.client(service)``). A test that uses it, directly or
  through the fixtures below, starts empty: moto is reset and every table deleted before it.
  If Java, DynamoDB Local (``make tools``) or moto is missing, the test is *skipped* with the
  reason, except under CI (``CI=true``), where it *fails*.
* ``dynamodb_client``: a low-level boto3 DynamoDB client (DynamoDB Local).
* ``s3_bucket``: the name of a fresh, empty S3 bucket (moto).
* ``lock_table``: the name of a fresh lock table (``receipt_chroma.lease.create_lease_table``).

Those tests get the ``aws`` marker, so ``-m "not aws"`` deselects them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from receipt_chroma.lease import create_lease_table
from receipt_events.store import EventStore, open_store
from receipt_events.store.dynamodb_table import create_store_table
from tests.aws.harness import (
    AwsEnv,
    ServiceUnavailable,
    aws_environment,
    start_services,
    unavailable,
)
from tests.support.ci import in_ci
from tests.support.postgres import (
    POSTGRES_DBNAME,
    POSTGRES_HOST,
    POSTGRES_PORT,
    POSTGRES_URL,
    POSTGRES_USER,
    drop_postgres_schema,
    postgres_connect,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres_server" in getattr(item, "fixturenames", ()):  # every PostgreSQL fixture
            item.add_marker(pytest.mark.postgres)
        if "aws_env" in getattr(item, "fixturenames", ()):  # every AWS fixture
            item.add_marker(pytest.mark.aws)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "aws: needs the AWS test services (moto server and DynamoDB Local; runs in CI)"
    )


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The base URL of the PostgreSQL test database; skip (fail under CI) if it is down."""
    try:
        with postgres_connect() as connection:
            connection.execute("SELECT 1")
    except Exception as error:
        reason = (
            f"PostgreSQL is not reachable at {POSTGRES_HOST}:{POSTGRES_PORT} "
            f"(database {POSTGRES_DBNAME!r}, user {POSTGRES_USER!r}): "
            f"{type(error).__name__}: {' '.join(str(error).split())}"
        )
        if in_ci():
            pytest.fail(f"{reason} [CI=true: PostgreSQL tests must run, not be skipped]")
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture
def new_postgres_schema(postgres_server: str) -> Iterator[Callable[[], str]]:
    """Make up schema names unique to this test (not created: a store creates its schema).

    Every schema named is dropped (CASCADE) after the test.
    """
    schemas: list[str] = []

    def new_schema() -> str:
        schemas.append(f"t_{uuid.uuid4().hex}")
        return schemas[-1]

    yield new_schema
    for schema in schemas:
        drop_postgres_schema(schema)


@pytest.fixture
def postgres_schema(new_postgres_schema: Callable[[], str]) -> str:
    """A schema name unique to this test, dropped after it."""
    return new_postgres_schema()


@pytest.fixture
def postgres_url(postgres_server: str, postgres_schema: str) -> str:
    """A fresh store URL on PostgreSQL: its own schema, dropped (CASCADE) after the test."""
    return f"{postgres_server}?schema={postgres_schema}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh store URL on SQLite: a file in the test's tmp_path (``sqlite:////abs/path``)."""
    return "sqlite:///" + str((tmp_path / "store" / "events.db").resolve())


@pytest.fixture
def memory_url() -> str:
    """A fresh *named* in-memory store, so reopening the URL in this process finds it again."""
    return f"memory://test-{uuid.uuid4().hex}"


@pytest.fixture
def dynamodb_url(aws_clean: AwsEnv) -> str:
    """A fresh store URL on DynamoDB Local: its own table, made by ``store create-table``'s
    function (every table is deleted before the next AWS test)."""
    name = f"events-{uuid.uuid4().hex[:16]}"
    create_store_table(aws_clean.client("dynamodb"), name)
    return f"dynamodb://{name}"


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("dynamodb", marks=pytest.mark.aws),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh store URL on each backend in turn."""
    backend: str = request.param
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest.fixture
def open_test_store(store_url: str) -> Iterator[Callable[[], EventStore]]:
    """Open ``store_url`` (again and again, as a restart would); every store is closed after."""
    opened: list[EventStore] = []

    def open_again() -> EventStore:
        store = open_store(store_url)
        opened.append(store)
        return store

    yield open_again
    for store in reversed(opened):
        store.close()


@pytest.fixture
def store(open_test_store: Callable[[], EventStore]) -> EventStore:
    """An empty store on ``store_url``."""
    return open_test_store()


# --------------------------------------------------------------------------- AWS test services


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsEnv]:
    """moto and DynamoDB Local up, the environment pointing at them; skip (fail under CI)."""
    log_dir = tmp_path_factory.mktemp("aws-services")
    try:
        moto, dynamodb = start_services(log_dir)
    except ServiceUnavailable as error:
        unavailable(f"AWS test services: {error}", ci=in_ci())
    try:
        with aws_environment(moto.url, dynamodb.url) as environment:
            yield AwsEnv(
                moto_url=moto.url,
                dynamodb_url=dynamodb.url,
                dynamodb_loopback_only=dynamodb.loopback_only,
                environment=environment,
                moto_pid=moto.process.pid,
                dynamodb_pid=dynamodb.process.pid,
            )
    finally:
        moto.stop()
        dynamodb.stop()


@pytest.fixture
def aws_clean(aws_env: AwsEnv) -> AwsEnv:
    """``aws_env``, emptied for this test (moto reset, every DynamoDB table deleted)."""
    aws_env.reset()
    return aws_env


@pytest.fixture(autouse=True)
def _aws_clean_if_used(request: pytest.FixtureRequest) -> None:
    """Empty the AWS services before every test that uses them, before its other fixtures."""
    if "aws_env" in request.fixturenames:
        request.getfixturevalue("aws_clean")


@pytest.fixture
def dynamodb_client(aws_clean: AwsEnv) -> Any:
    """A low-level boto3 ``dynamodb`` client on DynamoDB Local."""
    return aws_clean.client("dynamodb")


@pytest.fixture
def s3_bucket(aws_clean: AwsEnv) -> str:
    """The name of a fresh, empty S3 bucket on the moto server (region eu-west-1)."""
    name = f"test-{uuid.uuid4().hex[:24]}"
    aws_clean.client("s3").create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": aws_clean.region}
    )
    return name


@pytest.fixture
def lock_table(dynamodb_client: Any) -> str:
    """The name of a fresh lock table on DynamoDB Local, made by ``create_lease_table``."""
    name = f"locks-{uuid.uuid4().hex[:16]}"
    create_lease_table(dynamodb_client, name)
    return name
