"""AWS clients, created on first use and kept for the life of the container.

Importing this module creates nothing, so handlers can be imported without
credentials (tests set up their mocks afterwards).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from realtime.core.lifecycle import per_container


@per_container
def dynamodb() -> Any:
    return boto3.resource("dynamodb")


@per_container
def sqs() -> Any:
    return boto3.client("sqs")


@per_container
def ssm() -> Any:
    return boto3.client("ssm")


@per_container
def secretsmanager() -> Any:
    return boto3.client("secretsmanager")


@per_container
def connections_management(endpoint_url: str, concurrency: int = 10, *, retries: bool = True) -> Any:
    """The `@connections` client of the WebSocket API, sized for `concurrency` parallel posts.

    Delivery turns `retries` off: it retries failed posts itself, later and one
    connection at a time, and slows down on the throttling it must see.
    """
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        config=Config(
            max_pool_connections=concurrency,
            connect_timeout=3,
            read_timeout=5,
            # Standard mode retries throttling and 5xx a few times before we see them.
            # Off, one try: total_max_attempts counts it (max_attempts would add one retry).
            retries={"mode": "standard", "total_max_attempts": 4 if retries else 1},
        ),
    )
