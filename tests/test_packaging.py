"""Deployable packaging: the stream processor zip, the projector container, the template."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.template_conditions import Deployment, load_template

ROOT = Path(__file__).resolve().parent.parent
MAX_ZIP_BYTES = 15_000_000
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")  # the Lambda runtime has them


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
    for heavy in ("chromadb", "numpy", "onnxruntime", "receipt_chroma", "projections"):
        assert heavy not in tops, heavy
    for provided in RUNTIME_PROVIDED:
        assert provided not in tops, provided
        assert not [top for top in tops if top.startswith(f"{provided}-")], provided
    assert "lambdas/projector.py" not in names
    assert not [name for name in names if "__pycache__" in name]
    assert lambda_zip.stat().st_size < MAX_ZIP_BYTES


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_lambda_zip", ROOT / "deploy" / "build_lambda_zip.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_zip_build_drops_what_the_runtime_provides(tmp_path: Path) -> None:
    """Today's requirements do not pull boto3 in; should one ever, the build deletes it (and
    botocore, s3transfer) from the install before zipping, and keeps psycopg."""
    build = _build_module()
    assert tuple(build.RUNTIME_PROVIDED) == RUNTIME_PROVIDED
    installed = (
        "boto3",
        "boto3-1.35.0.dist-info",
        "botocore",
        "botocore-1.35.0.dist-info",
        "s3transfer",
        "s3transfer-0.10.0.dist-info",
        "psycopg",
        "psycopg-3.2.3.dist-info",
        "msgspec",
    )
    for name in installed:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    dropped = build.drop_runtime_provided(tmp_path)
    assert sorted(dropped) == sorted(n for n in installed if n.startswith(RUNTIME_PROVIDED))
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "msgspec",
        "psycopg",
        "psycopg-3.2.3.dist-info",
    ]


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


def _template() -> dict[str, Any]:
    return load_template(ROOT / "deploy" / "template.yaml")


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


FUNCTIONS = ("StreamProcessorFunction", "ProjectorFunction")
STORE_TABLE = "EventStoreTable"
NETWORK_CHECK = "PostgresEventStoreNeedsSubnetIdsAndSecurityGroupIds"
POSTGRES_URL = "postgresql://receipts:secret@db.internal:5432/events"
REQUIRED = {
    "ReceiptTableStreamArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/receipts/stream/x",
    "DeltaBucketName": "receipt-deltas",
    "ProjectorImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/projector:1",
}


def _deployed(**parameters: str) -> Deployment:
    return Deployment(_template(), {**REQUIRED, **parameters})


def _store_grants(function: dict[str, Any]) -> tuple[set[str], list[object]]:
    """The actions a function's policies grant on the event store table, and the resources
    those statements name. SAM policy templates must not touch the table at all."""
    actions: set[str] = set()
    resources: list[object] = []
    for policy in function["Properties"].get("Policies", []):
        if "Statement" not in policy:
            assert STORE_TABLE not in json.dumps(policy), policy
            continue
        for statement in policy["Statement"]:
            if STORE_TABLE in json.dumps(statement.get("Resource")):
                assert statement["Effect"] == "Allow"
                actions |= set(statement["Action"])
                resources.append(statement["Resource"])
    return actions, resources


def test_the_dynamodb_store_gets_its_table_and_no_vpc() -> None:
    deployed = _deployed(EventStoreUrl="dynamodb://receipt-events-log")
    assert deployed.conditions == {"UsesDynamoDBStore": True, "PostgresStoreLacksNetwork": False}
    resources = deployed.resources
    table = resources[STORE_TABLE]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["TableName"] == "receipt-events-log"
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert properties["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "N"},
    ]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert not {"GlobalSecondaryIndexes", "LocalSecondaryIndexes"} & set(properties)
    for name in FUNCTIONS:
        function = resources[name]["Properties"]
        assert "VpcConfig" not in function, name
        variables = function["Environment"]["Variables"]
        assert variables["RECEIPT_EVENTS_STORE"] == "dynamodb://receipt-events-log"
        assert "RECEIPT_EVENTS_DEPLOY_CHECK" not in variables
    assert NETWORK_CHECK not in resources
    assert deployed.outputs["EventStoreTableName"]["Value"] == {"Ref": STORE_TABLE}
    assert deployed.dangling_references() == []


def test_the_dynamodb_store_grants_each_function_only_what_it_does() -> None:
    resources = _deployed(EventStoreUrl="dynamodb://receipt-events-log").resources
    table_arn = {"Fn::GetAtt": [STORE_TABLE, "Arn"]}
    appends, appended_on = _store_grants(resources["StreamProcessorFunction"])
    assert appends == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",  # a redelivered event's stored content hash
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert appended_on == [table_arn]
    reads, read_on = _store_grants(resources["ProjectorFunction"])
    assert reads == {"dynamodb:GetItem", "dynamodb:Query"}
    assert read_on == [table_arn]


@pytest.mark.parametrize(
    "url",
    [POSTGRES_URL, "postgres://receipts@db.internal/events", "postgresql://u:dynamodb://@h/db"],
)
def test_the_postgres_store_keeps_the_vpc_and_gets_no_table(url: str) -> None:
    deployed = _deployed(
        EventStoreUrl=url, SubnetIds="subnet-0a,subnet-0b", SecurityGroupIds="sg-0c"
    )
    assert deployed.conditions == {"UsesDynamoDBStore": False, "PostgresStoreLacksNetwork": False}
    resources = deployed.resources
    assert STORE_TABLE not in resources
    assert NETWORK_CHECK not in resources
    assert "EventStoreTableName" not in deployed.outputs
    for name in FUNCTIONS:
        function = resources[name]
        assert function["Properties"]["VpcConfig"] == {
            "SubnetIds": ["subnet-0a", "subnet-0b"],
            "SecurityGroupIds": ["sg-0c"],
        }
        assert _store_grants(function) == (set(), [])
        assert (
            "RECEIPT_EVENTS_DEPLOY_CHECK" not in function["Properties"]["Environment"]["Variables"]
        )
    assert deployed.dangling_references() == []


@pytest.mark.parametrize("network", [{}, {"SubnetIds": "subnet-0a"}, {"SecurityGroupIds": "sg-0c"}])
def test_a_postgres_store_without_its_network_fails_the_deploy(network: dict[str, str]) -> None:
    """Not a Rule (rules cannot split the URL): a wait condition nothing signals, named for the
    problem, which the functions wait on."""
    deployed = _deployed(EventStoreUrl=POSTGRES_URL, **network)
    assert deployed.condition("PostgresStoreLacksNetwork")
    resources = deployed.resources
    check = resources[NETWORK_CHECK]
    assert check["Type"] == "AWS::CloudFormation::WaitCondition"
    handle = check["Properties"]["Handle"]["Ref"]
    assert resources[handle]["Type"] == "AWS::CloudFormation::WaitConditionHandle"
    for name in FUNCTIONS:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables["RECEIPT_EVENTS_DEPLOY_CHECK"] == {"Ref": NETWORK_CHECK}
    assert deployed.dangling_references() == []


@pytest.mark.parametrize(
    "url", ["dynamodb://", "dynamodb://ab", "dynamodb://log?region=eu-west-1", "memory://", ""]
)
def test_the_store_url_is_a_bare_table_or_a_postgres_database(url: str) -> None:
    """The table name is cut out of the URL with Fn::Split: nothing may follow it."""
    with pytest.raises(ValueError, match="EventStoreUrl"):
        _deployed(EventStoreUrl=url)
