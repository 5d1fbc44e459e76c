"""`events-api` (HTTP API): `GET /events`, the caller's events after a cursor, oldest first;
`GET /presence`, the presence of users the caller may watch.

Two routes of one HTTP API, matched on the request's method and path. A router (Powertools'
APIGatewayHttpResolver, which this used before) cost about 50 ms of every cold start for what a
dictionary does here (docs/internals.md, "Cold starts"); the answers are the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
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
JSON = "application/json"


class Request(msgspec.Struct, frozen=True):
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str] | None
    context: LambdaContext | None


class Response(msgspec.Struct, frozen=True):
    status: int
    body: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    def to_http_api(self) -> dict[str, Any]:
        """The HTTP API's Lambda proxy answer (payload 2.0)."""
        return {
            "statusCode": self.status,
            "body": self.body,
            "isBase64Encoded": False,
            "headers": {**self.headers, "Content-Type": JSON},
            "cookies": [],
        }


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps({"error": {"code": code, "message": message}}), headers or {})


def _authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidToken("missing_token")
    return services.events_api().verifier.verify(token.strip())


def _seconds_left(request: Request) -> float | None:
    if request.context is None:
        return None
    return request.context.get_remaining_time_in_millis() / 1000 - RESPONSE_MARGIN_SECONDS


def get_events(request: Request) -> Response:
    principal = _authenticate(request)
    feed_request = FeedRequest.from_query(request.query)
    page = services.events_api().feed.read(principal.topics, feed_request, max_seconds=_seconds_left(request))
    metrics.add_metric(name="EventsServed", unit=MetricUnit.Count, value=len(page.events))
    return Response(200, page.to_json())


def get_presence(request: Request) -> Response:
    reader = services.events_api().presence
    if reader is None:
        return NOT_FOUND  # presence is turned off in this deployment
    principal = _authenticate(request)
    # Users the caller may not watch are left out, as if unknown (see realtime.presence.api).
    users = requested_users(request.query, reader.max_users)
    answer = reader.read(principal, users)
    metrics.add_metric(name="PresenceServed", unit=MetricUnit.Count, value=len(answer["users"]))
    return Response(200, json.dumps(answer))


ROUTES: dict[tuple[str, str], Callable[[Request], Response]] = {
    ("GET", "/events"): get_events,
    ("GET", "/presence"): get_presence,
}
NOT_FOUND = _error_response(404, "not_found", "no such route")


def _unauthorized(error: InvalidToken) -> Response:
    logger.info("Request refused", extra={"reason": error.reason, "detail": error.detail})
    metrics.add_metric(name="TokensRejected", unit=MetricUnit.Count, value=1)
    code = {"missing_token": "missing_token", "expired": "token_expired"}.get(error.reason, "invalid_token")
    message = "a valid bearer token is required (Authorization: Bearer <token>)"
    return _error_response(401, code, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _bad_request(error: BadRequest) -> Response:
    # One line, no stack trace: the caller's mistake, answered with what to fix.
    logger.info("Request refused", extra={"reason": error.code, "detail": error.message[:200]})
    metrics.add_metric(name="BadRequests", unit=MetricUnit.Count, value=1)
    return _error_response(400, error.code, error.message)


def answer(event: Mapping[str, Any], context: LambdaContext | None) -> Response:
    """The route's answer; a refusal or a failure as its error response."""
    http = (event.get("requestContext") or {}).get("http") or {}
    route = ROUTES.get((http.get("method", ""), event.get("rawPath") or http.get("path", "")))
    if route is None:
        return NOT_FOUND
    # Lower-case names, as HTTP API payload 2.0 sends them; a test or another integration may not.
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    request = Request(headers, event.get("queryStringParameters"), context)
    try:
        return route(request)
    except InvalidToken as error:
        return _unauthorized(error)
    except BadRequest as error:
        return _bad_request(error)
    except Exception:
        logger.exception("Request failed")
        metrics.add_metric(name="RequestErrors", unit=MetricUnit.Count, value=1)
        return _error_response(500, "internal_error", "the request could not be served; try again")


@traced
@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer(event, context).to_http_api()
