"""`events-api` (HTTP API): `GET /events`, the caller's events after a cursor, oldest first;
`GET /presence`, the presence of users the caller may watch."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from realtime import services
from realtime.core.auth import InvalidToken, Principal
from realtime.core.errors import BadRequest
from realtime.core.observability import logger, metrics, traced
from realtime.events.feed import FeedRequest
from realtime.presence.api import requested_users

# Stop polling early enough to answer before the function times out.
RESPONSE_MARGIN_SECONDS = 1.5

app = APIGatewayHttpResolver()


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": {"code": code, "message": message}}),
        headers=headers,
    )


def _authenticate() -> Principal:
    header = app.current_event.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidToken("missing_token")
    return services.events_api().verifier.verify(token.strip())


def _seconds_left() -> float | None:
    context = app.lambda_context
    if context is None:
        return None
    return context.get_remaining_time_in_millis() / 1000 - RESPONSE_MARGIN_SECONDS


@app.get("/events")
def get_events() -> Response:
    principal = _authenticate()
    request = FeedRequest.from_query(app.current_event.query_string_parameters)
    page = services.events_api().feed.read(principal.topics, request, max_seconds=_seconds_left())
    metrics.add_metric(name="EventsServed", unit=MetricUnit.Count, value=len(page.events))
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=page.to_json())


@app.get("/presence")
def get_presence() -> Response:
    reader = services.events_api().presence
    if reader is None:
        raise NotFoundError  # presence is turned off in this deployment
    principal = _authenticate()
    # Users the caller may not watch are left out, as if unknown (see realtime.presence.api).
    users = requested_users(app.current_event.query_string_parameters, reader.max_users)
    answer = reader.read(principal, users)
    metrics.add_metric(name="PresenceServed", unit=MetricUnit.Count, value=len(answer["users"]))
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(answer))


@app.exception_handler(InvalidToken)
def _unauthorized(error: InvalidToken) -> Response:
    logger.info("Request refused", extra={"reason": error.reason, "detail": error.detail})
    metrics.add_metric(name="TokensRejected", unit=MetricUnit.Count, value=1)
    code = {"missing_token": "missing_token", "expired": "token_expired"}.get(error.reason, "invalid_token")
    message = "a valid bearer token is required (Authorization: Bearer <token>)"
    return _error_response(401, code, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@app.exception_handler(BadRequest)
def _bad_request(error: BadRequest) -> Response:
    # One line, no stack trace: the caller's mistake, answered with what to fix.
    logger.info("Request refused", extra={"reason": error.code, "detail": error.message[:200]})
    metrics.add_metric(name="BadRequests", unit=MetricUnit.Count, value=1)
    return _error_response(400, error.code, error.message)


@app.not_found
def _not_found(_error: NotFoundError) -> Response:
    return _error_response(404, "not_found", "no such route")


@app.exception_handler(Exception)
def _unexpected(_error: Exception) -> Response:
    logger.exception("Request failed")
    metrics.add_metric(name="RequestErrors", unit=MetricUnit.Count, value=1)
    return _error_response(500, "internal_error", "the request could not be served; try again")


@traced
@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
