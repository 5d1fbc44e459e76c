"""The floor of the benchmarks: what the emulator alone needs for SQS -> Lambda -> PostToConnection.

`floor_function` deploys, next to a stack on the emulator, an echo function with
nothing of the module in it: no storage, no validation, no topics. Each queue
message is `{"connectionId": ..., "frame": ...}` and the function posts the frame
to that connection. It gets the same runtime, memory and `@connections` endpoint
as process-events, and its own queue with the same event source mapping settings
(batch size, concurrency), so the bench can send one event through the pipeline
and one through the floor, to the same WebSocket, and compare the two.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from scripts.local.emulator import emulator_client

ECHO_HANDLER = """\
import json
import os

import boto3

connections = boto3.client("apigatewaymanagementapi", endpoint_url=os.environ["CONNECTIONS_ENDPOINT"])


def handler(event, context):
    for record in event["Records"]:
        message = json.loads(record["body"])
        connections.post_to_connection(ConnectionId=message["connectionId"], Data=message["frame"].encode())
"""

# What the floor copies from process-events, so that only the code differs.
COPIED_CONFIGURATION = ("Runtime", "Role", "MemorySize", "Timeout")
COPIED_MAPPING = ("BatchSize", "MaximumBatchingWindowInSeconds", "ScalingConfig")


@dataclass(frozen=True)
class Floor:
    queue_url: str
    function_name: str


def echo_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("echo.py", ECHO_HANDLER)
    return buffer.getvalue()


def floor_message(connection_id: str, frame: dict) -> str:
    return json.dumps({"connectionId": connection_id, "frame": json.dumps(frame)})


@contextlib.contextmanager
def floor_function(endpoints: dict) -> Iterator[Floor]:
    """The echo function, its queue and mapping on the stack's emulator; deleted on exit."""
    lambda_ = emulator_client(endpoints, "lambda")
    sqs = emulator_client(endpoints, "sqs")
    pipeline = endpoints["function_names"]["process-events"]
    configuration = lambda_.get_function_configuration(FunctionName=pipeline)
    # The events queue's mapping (process-events also reads the module's presence-events queue).
    mappings = lambda_.list_event_source_mappings(FunctionName=pipeline)["EventSourceMappings"]
    [mapping] = [m for m in mappings if m["EventSourceArn"] == endpoints["events_queue_arn"]]

    name = f"bench-floor-{uuid.uuid4().hex[:6]}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping_id = None
    try:
        lambda_.create_function(
            FunctionName=name,
            Handler="echo.handler",
            Code={"ZipFile": echo_zip()},
            Environment={
                "Variables": {"CONNECTIONS_ENDPOINT": configuration["Environment"]["Variables"]["CONNECTIONS_ENDPOINT"]}
            },
            **{key: configuration[key] for key in COPIED_CONFIGURATION},
        )
        lambda_.get_waiter("function_active_v2").wait(FunctionName=name)
        mapping_id = lambda_.create_event_source_mapping(
            EventSourceArn=queue_arn,
            FunctionName=name,
            **{key: mapping[key] for key in COPIED_MAPPING if key in mapping},
        )["UUID"]
        yield Floor(queue_url, name)
    finally:
        if mapping_id:
            lambda_.delete_event_source_mapping(UUID=mapping_id)
        with contextlib.suppress(lambda_.exceptions.ResourceNotFoundException):
            lambda_.delete_function(FunctionName=name)
        sqs.delete_queue(QueueUrl=queue_url)
