"""`ws-ping` (route `ping`): note the connection and its user are alive (a write every few minutes at most),
answer with a pong frame."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.encoding import format_timestamp
from realtime.core.observability import logger, metrics, traced


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    heartbeats = services.ws_ping()
    request = event["requestContext"]
    connection_id = request["connectionId"]
    logger.set_correlation_id(connection_id)
    now = request.get("requestTimeEpoch", time.time() * 1000) / 1000  # API Gateway's time of the ping (epoch ms)
    try:
        if not heartbeats.beat(connection_id, now):
            logger.info("Ping from a connection with no record")
    except Exception:
        # The pong matters more to the client than lastSeen; maintenance copes with a stale value.
        logger.exception("Could not record the ping")
    metrics.add_metric(name="Pings", unit=MetricUnit.Count, value=1)
    pong = {"type": "pong", "time": format_timestamp(datetime.now(UTC))}
    return {"statusCode": 200, "body": json.dumps(pong, separators=(",", ":"))}
