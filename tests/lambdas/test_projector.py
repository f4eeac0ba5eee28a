"""The projector Lambda: two invocations at once (one publishes, the other stands down and
gets its wake-ups back from SQS), and a warm container reusing its /tmp copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from projections.restore import restore
from projections.runner import rebuild
from receipt_chroma.deltas import DeltaSources
from receipt_chroma.snapshots import open_snapshot_store
from tests.aws.harness import AwsEnv
from tests.support.lambda_pipeline import Pipeline
from tests.support.log_lines import emf_lines, json_lines

REPO = Path(__file__).resolve().parents[2]
INVOCATION_TIMEOUT = 240.0


def _split(pipeline: Pipeline, fraction: float = 0.6) -> int:
    return int(len(pipeline.history.records) * fraction)


def _runs(text: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(text) if line.get("message") == "projector run done"]


def _assert_final_snapshot_is_the_rebuild(pipeline: Pipeline, tmp_path: Path) -> None:
    """The published snapshot is at the head, and its content is a rebuild of the log."""
    store = pipeline.store()
    head = store.head()
    snapshots = open_snapshot_store(pipeline.snapshots_url)
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    assert pointer.position == head
    pulled = restore(snapshots, tmp_path / "pulled")
    rebuilt = rebuild(store, tmp_path / "rebuilt", DeltaSources(pipeline.deltas_url), to=head)
    assert (pulled.position, pulled.digest) == (head, rebuilt.digest)
    assert pointer.digest == rebuilt.digest


class Container:
    """A projector invocation in its own process (its own environment, module state, /tmp)."""

    def __init__(self, name: str, event: dict[str, Any], cache: Path, workdir: Path) -> None:
        self.name = name
        self.event = event
        self.cache = cache
        self.event_file = workdir / f"{name}-event.json"
        self.result_file = workdir / f"{name}-result.json"
        self.event_file.write_text(json.dumps(event))
        self.result: dict[str, Any] = {}
        self.stdout = self.stderr = ""

    def invoke(self, barrier: threading.Barrier) -> None:
        """Start, wait until imported, wait for the other, go, and collect the result."""
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.lambdas.invoke",
                "projector",
                str(self.event_file),
                str(self.result_file),
            ],
            cwd=REPO,
            env={**os.environ, "RECEIPT_EVENTS_CACHE": str(self.cache)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            assert process.stdin is not None
            early = []
            while (line := process.stderr.readline()) and line.strip() != "READY":
                early.append(line)
            assert line, f"{self.name} exited before it was ready:\n{''.join(early)}"
            barrier.wait(timeout=INVOCATION_TIMEOUT)
            process.stdin.write("go\n")
            process.stdin.flush()
            self.stdout, rest = process.communicate(timeout=INVOCATION_TIMEOUT)
            self.stderr = "".join(early) + rest
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, self.stderr
        self.result = json.loads(self.result_file.read_text())

    @property
    def message_ids(self) -> list[str]:
        return [record["messageId"] for record in self.event["Records"]]


def test_two_projectors_at_once_one_publishes_the_other_stands_down(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    split = _split(pipeline, 0.75)  # most of the log: the winner holds the lock for a while
    pipeline.write(0, split)
    assert all(d.response == {"batchItemFailures": []} for d in pipeline.deliver())
    head = pipeline.store().head()
    # the wake-ups so far, split between two invocations; invisible for 2 s once received
    first = pipeline.queue.receive_event(2, visibility=2)
    second = pipeline.queue.receive_event(10, visibility=2)
    assert first["Records"], "no wake-up to share"
    assert second["Records"], "fewer than two wake-ups to share"
    containers = [
        Container("a", first, tmp_path / "a-tmp" / "snapshot", tmp_path),
        Container("b", second, tmp_path / "b-tmp" / "snapshot", tmp_path),
    ]
    barrier = threading.Barrier(len(containers))
    errors: list[BaseException] = []

    def run(container: Container) -> None:
        try:
            container.invoke(barrier)
        except BaseException as error:  # reported below, with the other's outcome
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(c,)) for c in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(INVOCATION_TIMEOUT * 2)
    assert not errors, errors

    responses = {c.name: c.result.get("response", c.result) for c in containers}
    winners = [c for c in containers if responses[c.name] == {"batchItemFailures": []}]
    assert len(winners) == 1, (responses, [c.stdout for c in containers])  # overlapped?
    [winner] = winners
    [loser] = [c for c in containers if c is not winner]
    assert responses[loser.name] == {
        "batchItemFailures": [{"itemIdentifier": m} for m in loser.message_ids]
    }
    [done] = _runs(winner.stdout)
    assert done["published"] is True
    assert done["position"] == head
    loser_lines = json_lines(loser.stdout)
    assert [line["message"] for line in loser_lines if "message" in line] == [
        "another projector is running: standing down"
    ]
    assert [m["StoodDown"] for m in emf_lines(loser_lines)] == [1]
    assert not loser.cache.exists()  # it stood down before touching its /tmp
    for container in containers:  # what the SQS event source mapping does with the answers
        pipeline.queue.settle(container.event, responses[container.name])
    pointer, _ = open_snapshot_store(pipeline.snapshots_url).pointer()
    assert pointer is not None
    assert pointer.position == head

    # more writes arrive; then SQS hands the stood-down wake-ups back (visibility timeout)
    pipeline.write(split)
    assert all(d.response == {"batchItemFailures": []} for d in pipeline.deliver())
    assert pipeline.store().head() > head
    redelivered: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not set(loser.message_ids) <= {
        r["messageId"] for event in redelivered for r in event["Records"]
    }:
        assert time.monotonic() < deadline, "the stood-down wake-ups never came back"
        event = pipeline.queue.receive_event(10)
        if event["Records"]:
            redelivered.append(event)
        else:
            time.sleep(0.2)
    # the redelivery lands on the container that stood down (its own, still empty, /tmp)
    pipeline.env(RECEIPT_EVENTS_CACHE=str(loser.cache))
    for event in redelivered:
        assert pipeline.project(event) == {"batchItemFailures": []}

    _assert_final_snapshot_is_the_rebuild(pipeline, tmp_path)


@pytest.fixture
def s3_calls(aws_env: AwsEnv) -> Iterator[list[tuple[str, str]]]:
    """Every S3 operation this process's default boto3 session makes: (operation, key).

    The project's code makes its S3 clients with ``boto3.client("s3")``, from the default
    session, so a hook on that session sees each request before it goes on the wire.
    """
    boto3.setup_default_session()
    calls: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, str(params.get("Key", ""))))

    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-parameter-build.s3", record)
    yield calls
    boto3.DEFAULT_SESSION = None


READS = {"GetObject", "HeadObject"}
WRITES = {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy"}


def test_warm_projector_reuses_its_tmp_copy(
    pipeline: Pipeline,
    s3_calls: list[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    split = _split(pipeline)
    pipeline.write(0, split)
    pipeline.deliver()
    head = pipeline.store().head()
    snapshots = open_snapshot_store(pipeline.snapshots_url)
    capsys.readouterr()

    assert pipeline.project(pipeline.queue.receive_event()) == {"batchItemFailures": []}
    [cold] = _runs(capsys.readouterr().out)
    assert (cold["published"], cold["reused_cache"], cold["position"]) == (True, False, head)
    pointer, version = snapshots.pointer()
    assert pointer is not None

    # a wake-up with nothing new: nothing published, nothing downloaded
    pipeline.queue.send_wakeup(head)
    s3_calls.clear()
    assert pipeline.project(pipeline.queue.receive_event()) == {"batchItemFailures": []}
    [idle] = _runs(capsys.readouterr().out)
    assert idle["published"] is False
    assert idle["publishes"] == 0
    assert idle["applied"] == 0
    assert idle["reused_cache"] is True
    assert snapshots.pointer() == (pointer, version)
    assert ("GetObject", "snapshots/latest.json") in s3_calls  # the hook sees the requests
    snapshot_reads = [c for c in s3_calls if c[0] in READS and c[1] != "snapshots/latest.json"]
    assert snapshot_reads == []
    assert [c for c in s3_calls if c[0] in WRITES] == []

    # new events: published again, from the warm copy (no snapshot file downloaded)
    pipeline.write(split)
    pipeline.deliver()
    new_head = pipeline.store().head()
    assert new_head > head
    s3_calls.clear()
    for event in pipeline.queue.receive_all():
        assert pipeline.project(event) == {"batchItemFailures": []}
    warm = _runs(capsys.readouterr().out)
    assert warm[0]["published"] is True
    assert warm[0]["position"] == new_head
    assert all(run["reused_cache"] for run in warm)
    # (a publish copies unchanged files from the parent inside S3: HeadObject + CopyObject)
    downloads = [c for c in s3_calls if c[0] == "GetObject" and "/files/" in c[1]]
    assert downloads == []
    assert any(c[0] in WRITES and c[1].startswith("snapshots/") for c in s3_calls)
    _assert_final_snapshot_is_the_rebuild(pipeline, tmp_path)

    # the same wake-up in a cold container does download the snapshot (what the hook would see)
    pipeline.env(RECEIPT_EVENTS_CACHE=str(tmp_path / "cold-tmp" / "snapshot"))
    pipeline.queue.send_wakeup(new_head)
    s3_calls.clear()
    assert pipeline.project(pipeline.queue.receive_event()) == {"batchItemFailures": []}
    [cold_again] = _runs(capsys.readouterr().out)
    assert (cold_again["published"], cold_again["reused_cache"]) == (False, False)
    assert [c for c in s3_calls if c[0] == "GetObject" and "/files/" in c[1]]
