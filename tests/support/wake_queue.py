"""The SQS queue between the two functions, read as Lambda's SQS event source mapping reads it:
receive → Lambda event → delete what the function did not report failed."""

from __future__ import annotations

import json
from typing import Any


class WakeQueue:
    """A standard SQS queue on moto, read as Lambda's SQS event source mapping reads it."""

    def __init__(self, sqs: Any, name: str, *, region: str) -> None:
        self.sqs = sqs
        self.region = region
        self.url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
        self.arn: str = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def send_wakeup(self, head: int) -> str:
        message_id: str = self.sqs.send_message(
            QueueUrl=self.url, MessageBody=json.dumps({"head": head})
        )["MessageId"]
        return message_id

    def receive_event(
        self, max_messages: int = 10, *, visibility: int | None = None
    ) -> dict[str, Any]:
        """Receive up to ``max_messages`` and shape them as the SQS Lambda event."""
        extra = {"VisibilityTimeout": visibility} if visibility is not None else {}
        messages = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max_messages,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
            **extra,
        ).get("Messages", [])
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": m.get("MessageAttributes", {}),
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
        }

    def receive_all(
        self, batch: int = 10, *, visibility: int | None = None
    ) -> list[dict[str, Any]]:
        """Events of every visible message, ``batch`` at a time."""
        events = []
        while (event := self.receive_event(batch, visibility=visibility))["Records"]:
            events.append(event)
        return events

    def settle(self, event: dict[str, Any], response: Any) -> list[str]:
        """Delete the messages the function handled (all but its batchItemFailures), as the
        ESM does; returns the ids left in the queue. A raised error leaves them all."""
        if isinstance(response, Exception) or not isinstance(response, dict):
            return [r["messageId"] for r in event["Records"]]
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures") or []}
        for record in event["Records"]:
            if record["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=record["receiptHandle"])
        return [r["messageId"] for r in event["Records"] if r["messageId"] in failed]

    def visible(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])
