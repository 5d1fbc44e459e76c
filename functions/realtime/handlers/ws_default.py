"""`ws-default` ($default): answer anything unrecognized with an error frame; never raise."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime.core.observability import logger, metrics, traced

SUPPORTED_ACTIONS = ("ping",)
MAX_ECHOED_ACTION_LENGTH = 64


def _error_frame(message: str) -> dict[str, Any]:
    frame = {"type": "error", "error": {"code": "unknown_action", "message": message}}
    return {"statusCode": 200, "body": json.dumps(frame, separators=(",", ":"))}


def _describe(body: object) -> str:
    supported = ", ".join(SUPPORTED_ACTIONS)
    not_json = f'frames must be JSON like {{"action": "ping"}}; supported actions: {supported}'
    if not isinstance(body, str | bytes):
        return not_json
    try:
        message = json.loads(body)
    except ValueError:
        return not_json
    action = message.get("action") if isinstance(message, dict) else None
    if not isinstance(action, str):
        return f'frames need an "action" field; supported actions: {supported}'
    return f"unknown action {action[:MAX_ECHOED_ACTION_LENGTH]!r}; supported actions: {supported}"


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        message = _describe(event.get("body"))
        logger.info("Unknown frame", extra={"reply": message})
        metrics.add_metric(name="UnknownActions", unit=MetricUnit.Count, value=1)
    except Exception:  # a client must never be able to crash this route
        logger.exception("Could not describe the frame")
        message = 'unsupported frame; send {"action": "ping"}'
    return _error_frame(message)
