"""`ws-ping` (route `ping`): note the connection and its user are alive, answer with a pong frame."""

from __future__ import annotations

import json
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
    sessions = services.ws_ping()
    connection_id = event["requestContext"]["connectionId"]
    logger.set_correlation_id(connection_id)
    try:
        if not sessions.ping(connection_id):
            logger.info("Ping from a connection with no record")
    except Exception:
        # The pong matters more to the client than lastSeen; maintenance copes with a stale value.
        logger.exception("Could not record the ping")
    metrics.add_metric(name="Pings", unit=MetricUnit.Count, value=1)
    pong = {"type": "pong", "time": format_timestamp(datetime.now(UTC))}
    return {"statusCode": 200, "body": json.dumps(pong, separators=(",", ":"))}
