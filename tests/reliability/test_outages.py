"""Real outages in the middle of the work: PostgreSQL cut mid-append, DynamoDB Local killed
mid-append, S3 failing mid-publish.

**PostgreSQL cut mid-append.** The stream Lambda handler (``lambdas.stream_processor``, in this
process, as a warm container) reaches PostgreSQL through a TCP proxy that watches the
client's bytes for the event store's append statement and, on the k-th one, cuts:

* ``insert``: before the INSERT reaches the server (nothing of it happens);
* ``after_insert``: when the server answers the INSERT (rows written, transaction open: the
  server rolls it back when the connection drops);
* ``commit``: when the server answers the COMMIT (the batch *is* stored; the client never
  hears so, the ambiguous case);

and stays down (new connections refused), so the store's own retries fail too: the batch
must be reported failed from its lowest SequenceNumber. The ESM then redelivers from there
with the database back. ``commit_blip`` cuts only that one connection after the COMMIT: the
store's retry must succeed without reporting anything. In every mode each event ends up
stored exactly once, in stream order (compared with a clean ingest in another store).

**DynamoDB Local killed mid-append.** The same handler on a ``dynamodb://`` store, on a
DynamoDB Local of its own (its data in a directory, not in memory, so what was committed
survives), which is SIGKILLed at the k-th append:

* ``before_commit``: as the store is about to send the ``TransactWriteItems`` (its
  ``append.before_commit`` fault point): nothing of the batch is stored;
* ``after_commit``: as the answer to the k-th ``TransactWriteItems`` arrives (committed, the
  server dies before the handler's next request): the batch is stored, the invocation fails.

The batch must be reported failed from its lowest SequenceNumber (again while the server is
still down: the store cannot even be opened), then DynamoDB Local is restarted on the same
port and data, and the redelivery must leave each event stored exactly once, in stream order.

**S3 failing mid-publish.** A compactor (the CLI, as a subprocess) publishes through an HTTP
proxy in front of the moto server that answers real 5xx errors: every snapshot-file PUT from
the k-th on (``files``), the manifest PUT (``manifest``), the pointer PUT (``pointer``), or
the pointer PUT applied by moto and answered 500 anyway (``pointer_ambiguous``). The publish
must fail (or, ambiguous, end at its own complete snapshot), no partial snapshot may become
visible (the pointer names a complete snapshot, every listed manifest verifies, pull works),
and once S3 is healthy a retry publishes a complete snapshot equal to a clean rebuild.
"""

from __future__ import annotations

import http.client
import random
import signal
import socket
import subprocess
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import lambdas.stream_processor
import receipt_events.store.dynamodb as dynamodb_store
from receipt_events import faults
from receipt_events.ingest import ingest
from receipt_events.records import records_from_lambda_event
from receipt_events.store import EventStore, open_store
from receipt_events.store.dynamodb_table import create_store_table
from receipt_events.store.url import DynamoDBTarget
from synthetic.history import HistoryConfig, generate_history
from tests.aws.harness import (
    AwsEnv,
    ServerProcess,
    ServiceUnavailable,
    start_dynamodb_local,
    unavailable,
)
from tests.support.ci import in_ci
from tests.support.end_state_checks import final_checks, pulled_digest, unverifiable_snapshots
from tests.support.log_contents import events_of, read_events
from tests.support.pipeline_site import CLI, Site, compact_once
from tests.support.postgres import POSTGRES_HOST, POSTGRES_PORT
from tests.support.reliability_figures import record_case
from tests.support.reliability_profile import PROFILE, SEEDS
from tests.support.seeded_runs import SeedData, run_in_process, seed_built, step_argv
from tests.support.tcp_proxy import ProxiedConnection, TcpProxy
from tests.support.warm_store import drop_warm_store

STREAM_BATCH = 20  # records per Lambda invocation
APPEND_STATEMENT = b"DO NOTHING RETURNING originator_id, notification_id"  # insert_new's SQL


def _seeds_for(modes: list[str]) -> list[Any]:
    """Every mode with every seed (deep), or each mode with one seed, in turn (fast)."""
    cases = []
    for index, mode in enumerate(modes):
        seeds = SEEDS if PROFILE.every_variant else [SEEDS[index % len(SEEDS)]]
        cases += [pytest.param(mode, seed, id=f"{mode}#{seed}") for seed in seeds]
    return cases


# --------------------------------------------------------------------------- PostgreSQL


class _Connection(ProxiedConnection):
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        super().__init__(client, upstream)
        self.await_commit = False
        self.cut_on_reply = False


class CuttingProxy(TcpProxy):
    """127.0.0.1:<port> → PostgreSQL, cutting the ``nth`` append mid-flight (see the module
    docstring for the modes). After the cut it refuses new connections until :meth:`reopen`,
    except in ``commit_blip`` mode, which cuts only the connection in flight."""

    def __init__(self, target: tuple[str, int], mode: str, nth: int) -> None:
        super().__init__(target)
        self.mode = mode
        self.nth = nth
        self.appends_seen = 0
        self.cuts = 0

    def _connection(self, client: socket.socket, upstream: socket.socket) -> _Connection:
        return _Connection(client, upstream)

    def _relay(self, connection: ProxiedConnection, data: bytes, to_server: bool) -> bool:
        assert isinstance(connection, _Connection)
        if not to_server:
            return not connection.cut_on_reply
        with self._lock:
            if self.cuts == 0 and APPEND_STATEMENT in data:
                self.appends_seen += 1
                if self.appends_seen == self.nth:
                    if self.mode == "insert":
                        return False
                    if self.mode == "after_insert":
                        connection.cut_on_reply = True
                    else:  # commit, commit_blip
                        connection.await_commit = True
            elif connection.await_commit and b"COMMIT" in data:
                connection.await_commit = False
                connection.cut_on_reply = True
        return True

    def _cut(self, connection: ProxiedConnection) -> None:
        with self._lock:
            self.cuts += 1
        if self.mode == "commit_blip":
            self._drop(connection)
        else:
            self.shut()


@pytest.fixture
def warm_handler() -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """The stream handler as one warm container: its kept store is dropped around the test."""
    module = lambdas.stream_processor
    drop_warm_store(module)
    context = types.SimpleNamespace(aws_request_id="reliability-outage")
    yield lambda event: module.handler(event, context)
    drop_warm_store(module)


def _sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


@pytest.mark.parametrize(
    ("mode", "seed"), _seeds_for(["insert", "after_insert", "commit", "commit_blip"])
)
def test_postgres_cut_mid_append_is_retried_from_the_lowest_sequence_and_stored_once(
    mode: str,
    seed: int,
    postgres_url: str,
    warm_handler: Callable[[dict[str, Any]], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    history = generate_history(
        HistoryConfig(seed=seed, receipts=4, lines_per_receipt=(2, 4), redelivery_rate=0.0)
    )
    records = history.records
    assert [int(_sequence(r)) for r in records] == sorted(int(_sequence(r)) for r in records)
    nth = random.Random(f"pg-cut:{mode}#{seed}").randint(1, 3)
    proxy = CuttingProxy((POSTGRES_HOST, POSTGRES_PORT), mode, nth)
    port = proxy.open()
    direct = f"{POSTGRES_HOST}:{POSTGRES_PORT}"
    assert direct in postgres_url
    through = postgres_url.replace(direct, f"127.0.0.1:{port}") + "&connect_timeout=0.5"
    monkeypatch.setenv("RECEIPT_EVENTS_STORE", through)
    monkeypatch.delenv("RECEIPT_EVENTS_WAKE_QUEUE", raising=False)
    monkeypatch.delenv("RECEIPT_EVENTS_FAULT", raising=False)

    with open_store(f"memory://outage-clean-{mode}-{seed}") as clean:
        ingest(clean, records_from_lambda_event({"Records": records}))
        clean_events = events_of(clean.iter_events())

    row: dict[str, Any] = {"mode": mode, "seed": seed, "cut_at_append": nth, "outcome": "error"}
    problems: list[str] = []
    try:
        with open_store(postgres_url) as direct:  # the test's own view, not through the proxy
            failures = _deliver(records, warm_handler, proxy, direct, clean_events, problems)
        capsys.readouterr()
        row["reported_failures"] = failures
        row["cuts"] = proxy.cuts
        if proxy.cuts != 1:
            problems.append(f"the proxy cut {proxy.cuts} times, not once: the test proved nothing")
        expected_failures = 0 if mode == "commit_blip" else 1
        if failures != expected_failures:
            problems.append(f"{failures} batches were reported failed, not {expected_failures}")
        events = read_events(postgres_url)
        ids = [originator for originator, _ in events]
        row["events"] = len(events)
        row["lost_updates"] = len({i for i, _ in clean_events} - set(ids))
        row["doubled"] = len(ids) - len(set(ids))
        if events != clean_events:
            row["divergences"] = 1
            problems.append(
                f"the log differs from a clean ingest: {len(events)} events vs "
                f"{len(clean_events)}, {row['lost_updates']} missing, {row['doubled']} doubled"
            )
        row["outcome"] = "; ".join(problems) or "stored once"
    except BaseException as error:
        row["outcome"] = f"error: {type(error).__name__}: {error}"
        row["crashes"] = 1
        raise
    finally:
        proxy.shut()
        record_case(f"outage/postgres-cut/{mode}", **row)
    assert not problems, "\n".join(problems)


def _deliver(
    records: list[dict[str, Any]],
    handler: Callable[[dict[str, Any]], dict[str, Any]],
    proxy: CuttingProxy,
    direct: EventStore,
    clean_events: list[tuple[str, bytes]],
    problems: list[str],
) -> int:
    """Deliver the stream in batches as the ESM does, retrying from a reported failure."""
    start, failures = 0, 0
    while start < len(records):
        batch = records[start : start + STREAM_BATCH]
        head = direct.head()
        response = handler({"Records": batch})
        reported = response["batchItemFailures"]
        if not reported:
            start += len(batch)
            continue
        failures += 1
        [failure] = reported
        lowest = min((_sequence(record) for record in batch), key=int)
        if failure["itemIdentifier"] != lowest:
            problems.append(
                f"the failed batch was reported from {failure['itemIdentifier']}, "
                f"not from its lowest SequenceNumber {lowest}"
            )
        after = events_of(direct.iter_events())
        if after != clean_events[: len(after)]:
            problems.append("after the cut the log is not a prefix of the clean log")
        if proxy.mode in ("insert", "after_insert") and direct.head() != head:
            problems.append(f"{proxy.mode}: the cut batch left events in the log")
        if failures > 3:
            problems.append("the batch keeps failing after the database came back")
            return failures
        proxy.reopen()  # the database is back; the ESM retries from the reported record
        start = next(
            index
            for index in range(start, len(records))
            if _sequence(records[index]) == failure["itemIdentifier"]
        )
    return failures


# --------------------------------------------------------------------------- DynamoDB


class OwnDynamoDB:
    """A DynamoDB Local of its own (the session's shared one is untouched), keeping its data in
    a directory so that what was committed before a SIGKILL is there after a restart, which
    listens on the same port (where the handler's clients still point)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.starts = 0
        self.kills = 0
        self.restart_seconds: list[float] = []
        self.server = self._start(0)
        self.url = self.server.url
        self.port = int(self.url.rsplit(":", 1)[1])

    def _start(self, port: int) -> ServerProcess:
        self.starts += 1
        return start_dynamodb_local(
            self.root / f"logs-{self.starts}", db_path=self.root / "data", port=port
        )

    @property
    def up(self) -> bool:
        return self.server.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, nothing finished that was not finished."""
        self.server.process.send_signal(signal.SIGKILL)
        self.server.process.wait(timeout=30)
        self.kills += 1

    def restart(self) -> None:
        started = time.monotonic()
        self.server.stop()  # reaps it and closes its stdin
        self.server = self._start(self.port)
        assert self.server.url == self.url
        self.restart_seconds.append(round(time.monotonic() - started, 2))

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def own_dynamodb(aws_env: AwsEnv, tmp_path: Path) -> Iterator[OwnDynamoDB]:
    """A DynamoDB Local of this test's own; aws_env gives the fake credentials and region."""
    try:
        dynamodb = OwnDynamoDB(tmp_path / "dynamodb-local")
    except ServiceUnavailable as error:
        unavailable(f"a DynamoDB Local of its own: {error}", ci=in_ci())
    yield dynamodb
    dynamodb.stop()


SETTLE_SECONDS = 0.1  # DynamoDB Local's lag between answering a write and having it on disk


class AppendKiller:
    """Kills the DynamoDB Local at the ``nth`` append (``TransactWriteItems``): before it is
    sent (``before_commit``), or once its answer says it committed (``after_commit``).

    Right before the kill the log's head is read back (``head_at_kill``): what the restarted
    server must hold. DynamoDB Local answers a write a few milliseconds before its data file
    has it (a SIGKILL at the very answer can lose an acknowledged transaction, which DynamoDB
    does not do), so the kill waits for that read and a moment more."""

    def __init__(self, dynamodb: OwnDynamoDB, url: str, mode: str, nth: int) -> None:
        self.dynamodb = dynamodb
        self.url = url
        self.mode = mode
        self.nth = nth
        self.appends = 0
        self.head_at_kill: int | None = None

    def _append(self) -> None:
        self.appends += 1
        if self.appends == self.nth and self.head_at_kill is None:
            self.head_at_kill = _log_head(self.url)
            time.sleep(SETTLE_SECONDS)
            self.dynamodb.kill()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        if self.mode == "before_commit":
            passed = faults.point

            def point(name: str) -> None:
                if name == "append.before_commit":
                    self._append()
                passed(name)

            monkeypatch.setattr(faults, "point", point)
            return
        assert self.mode == "after_commit"
        make_client = dynamodb_store.dynamodb_client

        def after_call(**kwargs: Any) -> None:
            if kwargs["http_response"].status_code == 200:  # committed, not cancelled
                self._append()

        def client(target: DynamoDBTarget) -> Any:
            made = make_client(target)
            made.meta.events.register("after-call.dynamodb.TransactWriteItems", after_call)
            return made

        monkeypatch.setattr(dynamodb_store, "dynamodb_client", client)


def _log_head(url: str) -> int:
    with open_store(url) as store:
        return store.head()


@pytest.mark.parametrize(("mode", "seed"), _seeds_for(["before_commit", "after_commit"]))
def test_dynamodb_local_killed_mid_append_is_retried_from_the_lowest_sequence_and_stored_once(
    mode: str,
    seed: int,
    own_dynamodb: OwnDynamoDB,
    aws_env: AwsEnv,
    warm_handler: Callable[[dict[str, Any]], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    history = generate_history(
        HistoryConfig(seed=seed, receipts=4, lines_per_receipt=(2, 4), redelivery_rate=0.0)
    )
    records = history.records
    assert [int(_sequence(r)) for r in records] == sorted(int(_sequence(r)) for r in records)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", own_dynamodb.url)
    table = f"events-{uuid.uuid4().hex[:16]}"
    create_store_table(aws_env.client("dynamodb"), table)
    url = f"dynamodb://{table}"
    # few, quick retries: the handler gives up on a dead server in well under a second
    monkeypatch.setenv(
        "RECEIPT_EVENTS_STORE", f"{url}?max_attempts=2&connect_timeout=0.5&read_timeout=2"
    )
    monkeypatch.delenv("RECEIPT_EVENTS_WAKE_QUEUE", raising=False)
    monkeypatch.delenv("RECEIPT_EVENTS_FAULT", raising=False)
    # before_commit: at least one batch committed before the kill, for the restart to keep
    low = 2 if mode == "before_commit" else 1
    nth = random.Random(f"dynamodb-kill:{mode}#{seed}").randint(low, 4)
    with open_store(f"memory://outage-clean-dynamodb-{mode}-{seed}") as clean:
        ingest(clean, records_from_lambda_event({"Records": records}))
        clean_events = events_of(clean.iter_events())
    killer = AppendKiller(own_dynamodb, url, mode, nth)
    killer.install(monkeypatch)

    row: dict[str, Any] = {"mode": mode, "seed": seed, "kill_at_append": nth, "outcome": "error"}
    problems: list[str] = []
    try:
        failures = _deliver_through_kill(
            records, warm_handler, own_dynamodb, killer, url, clean_events, problems
        )
        capsys.readouterr()
        row["reported_failures"] = failures
        row["kills"] = own_dynamodb.kills
        row["head_at_kill"] = killer.head_at_kill
        row["restart_seconds"] = own_dynamodb.restart_seconds
        if killer.head_at_kill is None:
            problems.append(f"only {killer.appends} appends: the kill never came")
        if failures != 1:
            problems.append(f"{failures} batches were reported failed, not 1")
        events = read_events(url)
        ids = [originator for originator, _ in events]
        row["events"] = len(events)
        row["lost_updates"] = len({i for i, _ in clean_events} - set(ids))
        row["doubled"] = len(ids) - len(set(ids))
        if events != clean_events:
            row["divergences"] = 1
            problems.append(
                f"the log differs from a clean ingest: {len(events)} events vs "
                f"{len(clean_events)}, {row['lost_updates']} missing, {row['doubled']} doubled"
            )
        row["outcome"] = "; ".join(problems) or "stored once"
    except BaseException as error:
        row["outcome"] = f"error: {type(error).__name__}: {error}"
        row["crashes"] = 1
        raise
    finally:
        record_case(f"outage/dynamodb-kill/{mode}", **row)
    assert not problems, "\n".join(problems)


def _deliver_through_kill(
    records: list[dict[str, Any]],
    handler: Callable[[dict[str, Any]], dict[str, Any]],
    dynamodb: OwnDynamoDB,
    killer: AppendKiller,
    url: str,
    clean_events: list[tuple[str, bytes]],
    problems: list[str],
) -> int:
    """Deliver the stream in batches as the ESM does; once a batch is reported failed, deliver
    it again with DynamoDB Local still down, then restart it and retry from the report."""
    start, failures = 0, 0
    while start < len(records):
        batch = records[start : start + STREAM_BATCH]
        head = _log_head(url)
        response = handler({"Records": batch})
        reported = response["batchItemFailures"]
        if not reported:
            if not dynamodb.up:
                problems.append("a batch was reported stored with DynamoDB Local dead")
            start += len(batch)
            continue
        failures += 1
        [failure] = reported
        lowest = min((_sequence(record) for record in batch), key=int)
        if failure["itemIdentifier"] != lowest:
            problems.append(
                f"the failed batch was reported from {failure['itemIdentifier']}, "
                f"not from its lowest SequenceNumber {lowest}"
            )
        if dynamodb.up:
            problems.append(f"a batch was reported failed with DynamoDB Local up: {reported}")
        else:  # the ESM retries at once: the store cannot even be opened
            again = handler({"Records": batch})["batchItemFailures"]
            if again != reported:
                problems.append(f"with DynamoDB Local still down the retry reported {again}")
        if failures > 2:
            problems.append("the batch keeps failing after DynamoDB Local came back")
            return failures
        dynamodb.restart()  # on the same data: what was committed is there again
        after = read_events(url)
        if after != clean_events[: len(after)]:
            problems.append("after the kill the log is not a prefix of the clean log")
        killed = killer.head_at_kill
        if len(after) != killed:  # positions are gapless: the head is the number of events
            problems.append(f"the log held {killed} events at the kill, {len(after)} after it")
        if killer.mode == "before_commit" and killed != head:
            problems.append(f"before_commit: the log went from {head} to {killed} events")
        if killer.mode == "after_commit" and (killed or 0) <= head:
            problems.append(f"after_commit: the killed batch was not committed ({head} events)")
        start = next(
            index
            for index in range(start, len(records))
            if _sequence(records[index]) == failure["itemIdentifier"]
        )
    return failures


# --------------------------------------------------------------------------- S3


class FailingS3:
    """An HTTP proxy in front of the moto server that answers 5xx to chosen S3 requests."""

    def __init__(self, target_url: str, mode: str, nth: int) -> None:
        self.target = urlsplit(target_url)
        self.mode = mode
        self.nth = nth
        self.healthy = False
        self.file_puts = 0
        self.failed: list[str] = []  # "METHOD path status" of each request failed
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _verdict(self, method: str, path: str) -> tuple[int | None, bool]:
        """(status to answer instead of moto's, whether moto still gets the request)."""
        if self.healthy or method != "PUT":
            return None, True
        target = {"manifest": "/manifest.json"}.get(self.mode, "/latest.json")
        with self._lock:
            if "/files/" in path:
                self.file_puts += 1
                if self.mode == "files" and self.file_puts >= self.nth:
                    return 503, False
                return None, True
            if self.mode in ("manifest", "pointer") and path.endswith(target):
                return 500, False
            pointer_failed = any("latest.json" in failed for failed in self.failed)
            if self.mode == "pointer_ambiguous" and path.endswith(target) and not pointer_failed:
                return 500, True  # moto applies it, the client hears an error
        return None, True

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = _read_body(request)
        status, forward = self._verdict(request.command, request.path)
        response: tuple[int, list[tuple[str, str]], bytes] | None = None
        if forward:
            response = self._forward(request, body)
        if status is not None:
            with self._lock:
                self.failed.append(f"{request.command} {request.path} {status}")
            code = "SlowDown" if status == 503 else "InternalError"
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>injected by the reliability suite</Message></Error>"
            ).encode()
            response = (status, [("Content-Type", "application/xml")], payload)
        assert response is not None
        status_code, headers, payload = response
        request.send_response(status_code)
        for name, value in headers:
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                request.send_header(name, value)
        if request.command == "HEAD":
            length = {k.lower(): v for k, v in headers}.get("content-length", "0")
            request.send_header("Content-Length", length)
            request.end_headers()
            return
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _forward(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=60)
        try:
            connection.putrequest(
                request.command, request.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in request.headers.items():
                connection.putheader(name, value)
            connection.endheaders(body if body else None)
            answer = connection.getresponse()
            payload = answer.read()
            return answer.status, answer.getheaders(), payload
        finally:
            connection.close()


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body as sent (a chunked body verbatim, chunk framing and trailers kept)."""
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        raw = b""
        while True:
            size_line = request.rfile.readline()
            raw += size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    line = request.rfile.readline()
                    raw += line
                    if line in (b"\r\n", b"\n", b""):
                        return raw
            raw += request.rfile.read(size + 2)
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""


@pytest.fixture(scope="session")
def outage_seeds(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], SeedData]:
    return lambda seed: seed_built(seed, tmp_path_factory)


@pytest.mark.parametrize(
    ("mode", "seed"), _seeds_for(["files", "manifest", "pointer", "pointer_ambiguous"])
)
def test_s3_errors_mid_publish_show_no_partial_snapshot_and_a_retry_publishes(
    mode: str,
    seed: int,
    tmp_path: Path,
    s3_bucket: str,
    lock_table: str,
    aws_env: Any,
    outage_seeds: Callable[[int], SeedData],
) -> None:
    data = outage_seeds(seed)
    site = Site(
        tmp_path,
        "sqlite:///" + str(tmp_path / "events.db"),
        f"s3://{s3_bucket}/snapshots",
        data.deltas,
        lock_table,
    )
    row: dict[str, Any] = {"mode": mode, "seed": seed, "outcome": "error", "divergence": False}
    problems: list[str] = []
    proxy = FailingS3(aws_env.moto_url, mode, 1)
    try:
        for step in ("ingest1", "compact", "ingest2"):
            run_in_process(step, site, data)
        snapshots = site.snapshot_store()
        pointer_before, _ = snapshots.pointer()
        assert pointer_before is not None
        # which file PUT starts the outage (a publish sends ten files, or copies them)
        proxy.nth = random.Random(f"s3:{mode}#{seed}").randint(1, 4)
        row["fail_from_file_put"] = proxy.nth if mode == "files" else None

        failed = _compact_through(site, data, proxy)
        row["failed_requests"] = len(proxy.failed)
        row["publish_exit"] = failed.returncode
        row["publish_said"] = (failed.stderr.strip() or failed.stdout.strip())[:300]
        if not proxy.failed:
            problems.append("the proxy failed no request: the test proved nothing")
        if mode == "pointer_ambiguous":
            # the pointer did move (moto applied it): the publish may say so or not, but the
            # pointer must name the new, complete snapshot
            pointer, _ = snapshots.pointer()
            if pointer is None or pointer.position <= pointer_before.position:
                problems.append(f"the applied pointer write is not visible: {pointer}")
        else:
            if failed.returncode == 0:
                problems.append(f"the publish succeeded through {mode} errors: {failed.stdout}")
            elif "Traceback" in failed.stderr:
                problems.append(f"the failed publish printed a traceback: {failed.stderr}")
            pointer, _ = snapshots.pointer()
            if pointer != pointer_before:
                problems.append(f"the pointer moved to {pointer} in a failed publish")
        problems += _visible_state_is_complete(site, tmp_path / "after-failure")
        lock = site.lock_record()
        if lock is not None and lock.owner is not None:
            problems.append(f"the failed publisher left the lock held by {lock.owner}")

        # S3 is healthy again: the rest of the stream arrives, a retry publishes everything
        proxy.healthy = True
        run_in_process("ingest3", site, data)
        retried = compact_once(site)
        if not retried.published:
            problems.append(f"the retry published nothing: {retried}")
        problems += final_checks(data, site, row)
        row["outcome"] = "; ".join(problems) or "no partial snapshot; retry published"
    except BaseException as error:
        row["outcome"] = f"error: {type(error).__name__}: {error}"
        row["crashes"] = 1
        raise
    finally:
        proxy.close()
        row["divergences"] = int(bool(row.pop("divergence")))
        record_case(f"outage/s3-errors/{mode}", **row)
    assert not problems, "\n".join(problems)


def _compact_through(
    site: Site, data: SeedData, proxy: FailingS3
) -> subprocess.CompletedProcess[str]:
    """A compactor subprocess whose S3 requests go through the failing proxy."""
    env = site.env(None)
    env["AWS_ENDPOINT_URL_S3"] = proxy.url
    if not proxy.healthy:  # each failing request is retried once, not four times: quicker
        env.update(AWS_RETRY_MODE="standard", AWS_MAX_ATTEMPTS="2")
    argv = [str(CLI), *(str(arg) for arg in step_argv("compact", site, data))]
    started = time.monotonic()
    result = subprocess.run(
        argv,
        env=env,
        cwd=site.root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    site.runs.append(f"compact via failing S3 ({time.monotonic() - started:.1f} s)")
    return result


def _visible_state_is_complete(site: Site, scratch: Path) -> list[str]:
    """What a reader can see is whole: every listed snapshot verifies, latest pulls."""
    problems = unverifiable_snapshots(site, scratch)
    pointer, _ = site.snapshot_store().pointer()
    if pointer is not None:
        try:
            position, digest = pulled_digest(site, scratch / "pulled")
        except Exception as error:
            problems.append(f"pulling latest failed: {type(error).__name__}: {error}")
        else:
            if (position, digest) != (pointer.position, pointer.digest):
                problems.append(f"latest pulled as {digest} at {position}, pointer says {pointer}")
    return problems
