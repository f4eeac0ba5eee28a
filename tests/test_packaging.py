"""Deployable packaging: the stream processor zip, the projector container, the template."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
MAX_ZIP_BYTES = 15_000_000


@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "stream-processor.zip"
    subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "build_lambda_zip.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_the_zip_holds_the_stream_processor_and_nothing_heavy(lambda_zip: Path) -> None:
    names = zipfile.ZipFile(lambda_zip).namelist()
    tops = {name.split("/")[0] for name in names}
    assert "lambdas/stream_processor.py" in names
    assert "receipt_events/ingest.py" in names
    assert "receipt_events/store/postgres.py" in names
    assert {"msgspec", "eventsourcing", "psycopg", "psycopg_binary"} <= tops
    for heavy in ("chromadb", "numpy", "onnxruntime", "receipt_chroma", "projections", "boto3"):
        assert heavy not in tops, heavy
    assert "lambdas/projector.py" not in names
    assert not [name for name in names if "__pycache__" in name]
    assert lambda_zip.stat().st_size < MAX_ZIP_BYTES


def test_the_zip_holds_no_command_line_and_no_generator(lambda_zip: Path) -> None:
    """The CLI (typer, rich, every layer's commands) and the test-data generators are tools,
    not what the function runs."""
    names = zipfile.ZipFile(lambda_zip).namelist()
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"receipt_cli", "synthetic", "typer", "rich", "click"}
    assert not [name for name in names if "/cli/" in name or name.endswith("/cli.py")]
    assert not [name for name in names if "synthetic" in name or "delta_writer" in name]
    # what is left of ours: the log library and the stream processor's plumbing
    ours = {name.split("/")[0] for name in names if name.endswith(".py")} & {
        "receipt_events",
        "lambdas",
    }
    assert ours == {"receipt_events", "lambdas"}
    assert sorted(n for n in names if n.startswith("lambdas/")) == [
        "lambdas/__init__.py",
        "lambdas/invocation.py",
        "lambdas/observability.py",
        "lambdas/stream_processor.py",
        "lambdas/wakeup.py",
        "lambdas/warm_store.py",
    ]


def test_the_zip_alone_runs_the_handler(lambda_zip: Path, tmp_path: Path) -> None:
    """Unpacked, with no site-packages at all (-I -S), the handler imports and ingests."""
    unpacked = tmp_path / "task"
    zipfile.ZipFile(lambda_zip).extractall(unpacked)
    record = {
        "eventID": "e-1",
        "eventName": "REMOVE",
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "Keys": {"PK": {"S": "IMAGE#abc"}, "SK": {"S": "RECEIPT#00001"}},
            "SequenceNumber": "100000000000000000001",
        },
    }
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(unpacked)!r})\n"
        "from lambdas.stream_processor import handler\n"
        f"print(json.dumps(handler({json.dumps({'Records': [record]})}, None)))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('chromadb', 'numpy', 'receipt_chroma', 'projections', 'typer', 'rich'))))\n"
    )
    env = {"PATH": os.environ["PATH"], "RECEIPT_EVENTS_STORE": "memory://"}
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[-2]) == {"batchItemFailures": []}
    assert json.loads(lines[-1]) == []
    logged = [json.loads(line) for line in lines[:-2]]
    assert any(
        entry.get("message") == "batch ingested" and entry["appended"] == 1 for entry in logged
    )


def test_the_projector_container_runs_the_real_handler_with_chroma() -> None:
    dockerfile = (ROOT / "deploy" / "projector" / "Dockerfile").read_text()
    assert re.search(r'^CMD \["lambdas\.projector\.handler"\]$', dockerfile, re.MULTILINE)
    install = re.search(r"pip install .*\[(?P<extras>[^\]]+)\]", dockerfile)
    assert install is not None
    assert "chroma" in install.group("extras").split(",")
    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:3\.11$", dockerfile, re.MULTILINE)
    from lambdas import projector

    assert callable(projector.handler)
    for package in ("receipt_events", "receipt_chroma", "projections", "lambdas"):
        assert f"COPY {package} " in dockerfile


def _template() -> dict[str, object]:
    class Loader(yaml.SafeLoader):
        pass

    def tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
        if isinstance(node, yaml.ScalarNode):
            return {suffix: loader.construct_scalar(node)}
        return {suffix: loader.construct_sequence(node)}  # type: ignore[arg-type]

    Loader.add_multi_constructor("!", tag)
    return yaml.load((ROOT / "deploy" / "template.yaml").read_text(), Loader=Loader)  # type: ignore[no-any-return]


def test_the_template_validates_with_cfn_lint() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(ROOT / "deploy" / "template.yaml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_template_wires_the_stream_and_the_projector() -> None:
    resources = _template()["Resources"]
    assert isinstance(resources, dict)
    stream = resources["StreamProcessorFunction"]["Properties"]
    assert stream["Handler"] == "lambdas.stream_processor.handler"
    mapping = stream["Events"]["ReceiptTableStream"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert "OnFailure" in mapping["DestinationConfig"]
    projector = resources["ProjectorFunction"]["Properties"]
    assert projector["PackageType"] == "Image"
    kinds = {event["Type"] for event in projector["Events"].values()}
    assert kinds == {"SQS", "Schedule"}
    assert projector["Events"]["Wakeups"]["Properties"]["FunctionResponseTypes"] == [
        "ReportBatchItemFailures"
    ]
    variables = projector["Environment"]["Variables"]
    assert {
        "RECEIPT_EVENTS_SNAPSHOTS",
        "RECEIPT_EVENTS_LEASE_TABLE",
        "RECEIPT_EVENTS_DELTAS",
    } <= set(variables)
    lock = resources["LockTable"]["Properties"]
    assert "TimeToLiveSpecification" not in lock  # the fencing token must never restart
    assert lock["KeySchema"] == [{"AttributeName": "lock_id", "KeyType": "HASH"}]
