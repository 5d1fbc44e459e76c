"""`ws-disconnect` ($disconnect): forget the connection and its subscriptions, end its session."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.observability import logger, metrics, traced


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    sessions = services.ws_disconnect()
    connection_id = event["requestContext"]["connectionId"]
    logger.set_correlation_id(connection_id)
    # Ends the user's session too; after the last one, the offline check waits for the grace period.
    removed = sessions.close(connection_id)
    logger.info("Disconnected", extra={"removed": removed})
    metrics.add_metric(name="ConnectionsClosed", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200}
