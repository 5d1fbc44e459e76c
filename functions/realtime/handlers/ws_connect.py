"""`ws-connect` ($connect): verify the token, count the session, then record the connection with the token's topics.

Every limit is checked before anything is written: the token (length, signature, topics) by the verifier, the
user's sessions by the conditional write that counts the session. A refused connect writes no item.

Overload (the tables throttling, as in a reconnect storm) is answered 503 with a Retry-After spread over
RETRY_AFTER_SECONDS, so the clients that can read it (the Python client) come back spread out rather than
at once; the browser client cannot read a refused handshake and backs off with jitter on its own.
"""

from __future__ import annotations

import random
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.connections.store import TooManySessions
from realtime.core.auth import InvalidToken
from realtime.core.errors import is_transient
from realtime.core.observability import logger, metrics, traced

RETRY_AFTER_SECONDS = (5, 30)  # a refused connect's Retry-After: uniform in this range, so a storm spreads out


def try_later() -> dict[str, Any]:
    return {"statusCode": 503, "headers": {"Retry-After": str(random.randint(*RETRY_AFTER_SECONDS))}}


@traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    app = services.ws_connect()
    connection_id = event["requestContext"]["connectionId"]
    logger.set_correlation_id(connection_id)
    # Browsers cannot set headers on a WebSocket: the token comes as a query parameter.
    token = (event.get("queryStringParameters") or {}).get("token")
    try:
        principal = app.verifier.verify(token)
    except InvalidToken as error:
        logger.info("Connection refused", extra={"reason": error.reason, "detail": error.detail})
        metrics.add_metric(name="ConnectionsRefused", unit=MetricUnit.Count, value=1)
        return {"statusCode": 401}
    except Exception:
        logger.exception("Token check failed; connection refused")
        metrics.add_metric(name="ConnectionErrors", unit=MetricUnit.Count, value=1)
        return {"statusCode": 500}
    # Topics come from the verified claims only; nothing the client asks for is added.
    try:
        presence = app.sessions.open(connection_id, principal, app.connection_ttl_seconds, app.max_sessions_per_user)
    except TooManySessions as refusal:
        logger.info(
            "Connection refused",
            extra={"reason": "too_many_sessions", "user_id": principal.user_id, "sessions": len(refusal.sessions)},
        )
        metrics.add_metric(name="ConnectionsRefused", unit=MetricUnit.Count, value=1)
        return {"statusCode": 429}
    except Exception as error:
        # The session was given back and what was written of the connection removed (SessionTracker.open);
        # if even that failed, maintenance finds the leftovers (the gateway never knew this connection).
        if is_transient(error):
            logger.warning(
                "Connection refused: overloaded, try later",
                extra={"user_id": principal.user_id, "error": repr(error)},
            )
            metrics.add_metric(name="ConnectionsOverloaded", unit=MetricUnit.Count, value=1)
            return try_later()
        logger.exception("Connection could not be recorded; refused", extra={"user_id": principal.user_id})
        metrics.add_metric(name="ConnectionErrors", unit=MetricUnit.Count, value=1)
        return {"statusCode": 500}
    logger.info(
        "Connected",
        extra={
            "user_id": principal.user_id,
            "topics": list(principal.topics),
            "sessions": presence.sessions if presence else None,
        },
    )
    metrics.add_metric(name="ConnectionsOpened", unit=MetricUnit.Count, value=1)
    return {"statusCode": 200}
