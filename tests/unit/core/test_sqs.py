import boto3
from realtime.core.sqs import MAX_REASON_LENGTH, DeadLetterQueue

from ..support import REGION


def test_sends_the_original_body_with_reason_attributes(aws_mock):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]

    DeadLetterQueue(sqs, url).send(
        "not json", error_code="invalid_json", error_reason="x" * 5000, source_message_id="m-1"
    )

    (message,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert message["Body"] == "not json"
    assert attributes["errorCode"] == "invalid_json"
    assert attributes["sourceMessageId"] == "m-1"
    assert len(attributes["errorReason"]) == MAX_REASON_LENGTH
