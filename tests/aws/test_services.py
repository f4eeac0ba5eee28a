"""The AWS test services themselves: where clients go, isolation, loopback, failure modes, and
moto's S3 conditional writes (made atomic by tests/moto_serial_server.py)."""

from __future__ import annotations

import ipaddress
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.aws import harness
from tests.aws.harness import AwsEnv, ServiceUnavailable


def test_clients_reach_the_test_servers_with_fake_credentials(aws_env: AwsEnv) -> None:
    import boto3

    assert os.environ["AWS_CONFIG_FILE"] == os.devnull
    assert os.environ["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        assert variable not in os.environ
    session = boto3.session.Session()
    assert session.region_name == "eu-west-1"
    credentials = session.get_credentials()
    assert credentials is not None
    assert (credentials.access_key, credentials.method) == ("testing", "env")
    expected = {
        "s3": aws_env.moto_url,
        "sqs": aws_env.moto_url,
        "sts": aws_env.moto_url,  # anything else: moto, never AWS
        "dynamodb": aws_env.dynamodb_url,
        "dynamodbstreams": aws_env.dynamodb_url,
    }
    for service, url in expected.items():
        assert boto3.client(service).meta.endpoint_url == url, service
    assert aws_env.moto_url != aws_env.dynamodb_url


def test_dynamodb_and_streams_are_dynamodb_local(dynamodb_client: Any, aws_env: AwsEnv) -> None:
    dynamodb_client.create_table(
        TableName="streamed",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    dynamodb_client.put_item(TableName="streamed", Item={"PK": {"S": "a"}})
    arn = dynamodb_client.describe_table(TableName="streamed")["Table"]["LatestStreamArn"]
    assert ":ddblocal:" in arn  # DynamoDB Local's region in ARNs; moto would say eu-west-1
    streams = aws_env.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [r["eventName"] for r in records] == ["INSERT"]


def test_s3_and_sqs_are_moto(s3_bucket: str, aws_env: AwsEnv) -> None:
    s3 = aws_env.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"v"
    sqs = aws_env.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    assert url.startswith(aws_env.moto_url)
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    [message] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert message["Body"] == "hello"


# The pair below runs in file order: the first leaves state behind, the second must not see it.
def test_isolation_first_leaves_a_table_a_bucket_and_a_queue(
    dynamodb_client: Any, aws_env: AwsEnv
) -> None:
    dynamodb_client.create_table(
        TableName="left-behind",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws_env.client("s3").create_bucket(
        Bucket="left-behind", CreateBucketConfiguration={"LocationConstraint": aws_env.region}
    )
    aws_env.client("sqs").create_queue(QueueName="left-behind")


def test_isolation_second_starts_empty(aws_env: AwsEnv) -> None:
    assert aws_env.client("dynamodb").list_tables()["TableNames"] == []
    assert aws_env.client("s3").list_buckets()["Buckets"] == []
    assert aws_env.client("sqs").list_queues().get("QueueUrls", []) == []


def test_reset_empties_both_servers(aws_env: AwsEnv, s3_bucket: str, lock_table: str) -> None:
    dynamodb = aws_env.client("dynamodb")
    assert dynamodb.list_tables()["TableNames"] == [lock_table]
    assert [b["Name"] for b in aws_env.client("s3").list_buckets()["Buckets"]] == [s3_bucket]
    aws_env.reset()
    assert dynamodb.list_tables()["TableNames"] == []
    assert aws_env.client("s3").list_buckets()["Buckets"] == []


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def test_both_servers_listen_on_loopback_only(aws_env: AwsEnv) -> None:
    if not aws_env.dynamodb_loopback_only:
        pytest.skip("DynamoDB Local runs from the plain jar here (no javac): all interfaces")
    servers = [(aws_env.moto_pid, aws_env.moto_url), (aws_env.dynamodb_pid, aws_env.dynamodb_url)]
    for pid, url in servers:
        port = int(url.rsplit(":", 1)[1])
        addresses = harness.listening_addresses(pid, port)
        assert addresses, f"nothing listens on port {port}"
        assert all(_is_loopback(a) for a in addresses), (url, addresses)


def test_decode_proc_net_addresses() -> None:
    assert harness._decode_address("0100007F") == "127.0.0.1"
    assert harness._decode_address("00000000") == "0.0.0.0"
    assert harness._decode_address("0000000000000000FFFF00000100007F") == "::ffff:127.0.0.1"
    assert harness._decode_address("00000000000000000000000000000000") == "::"
    assert not _is_loopback("0.0.0.0")
    assert not _is_loopback("::")
    assert _is_loopback("::ffff:127.0.0.1")


# --------------------------------------------------------------------------- failure modes


def test_a_missing_service_skips_but_fails_under_ci() -> None:
    with pytest.raises(pytest.skip.Exception, match="no java"):
        harness.unavailable("no java", ci=False)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        harness.unavailable("no java", ci=True)


def test_missing_java_is_reported_clearly(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match=r"Java is not installed.*openjdk"):
        harness.start_dynamodb_local(tmp_path, java="no-such-java-here")


def test_missing_dynamodb_local_package_is_reported_clearly(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="make tools"):
        harness.start_dynamodb_local(tmp_path, tools=tmp_path / "empty")


def test_a_server_that_dies_at_start_is_reported_with_its_output(tmp_path: Path) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: no module named boom' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(ServiceUnavailable, match=r"(?s)exited with status 3.*named boom"):
        harness.start_moto(tmp_path, python=str(broken))


# --------------------------------------------------------------------------- moto S3 If-Match


def test_race_moto_s3_if_match_exactly_one_of_two_writers_wins(
    s3_bucket: str, aws_env: AwsEnv
) -> None:
    """200 rounds: two writers read the ETag, then both put_object(IfMatch=etag) at once."""
    clients = [aws_env.client("s3") for _ in range(2)]
    clients[0].put_object(Bucket=s3_bucket, Key="latest", Body=b"v0")
    barrier = threading.Barrier(2)
    outcomes: list[list[Any]] = [[None, None] for _ in range(200)]

    def writer(index: int) -> None:
        s3 = clients[index]
        for round_ in range(200):
            barrier.wait()
            etag = s3.head_object(Bucket=s3_bucket, Key="latest")["ETag"]
            barrier.wait()  # both hold the same ETag
            body = f"round {round_} writer {index} {uuid.uuid4().hex}".encode()
            try:
                s3.put_object(Bucket=s3_bucket, Key="latest", Body=body, IfMatch=etag)
                outcomes[round_][index] = body
            except ClientError as error:
                outcomes[round_][index] = error.response["ResponseMetadata"]["HTTPStatusCode"]
            barrier.wait()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    last_body = None
    for round_, (first, second) in enumerate(outcomes):
        winners = [o for o in (first, second) if isinstance(o, bytes)]
        losers = [o for o in (first, second) if not isinstance(o, bytes)]
        assert len(winners) == 1, f"round {round_}: {first!r}, {second!r}"
        assert losers == [412], f"round {round_}: {first!r}, {second!r}"
        last_body = winners[0]
    assert clients[0].get_object(Bucket=s3_bucket, Key="latest")["Body"].read() == last_body
