"""AWS clients, created on first use and kept for the life of the container.

Importing this module creates nothing, so handlers can be imported without
credentials (tests set up their mocks afterwards).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.httpsession import get_cert_path

from realtime.core.lifecycle import per_container

# The @connections calls' timeouts, as the boto3 client had them.
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 5
# Said rather than left to the SDK's default, which botocore 1.44 changed from legacy to standard: the
# functions' own retries (a batch's failed records, delivery's later tries) are built on legacy's many quick
# tries, DynamoDB's ten among them, and docs/reliability.md measures them so.
SDK_CONFIG = Config(retries={"mode": "legacy"})


@per_container
def dynamodb() -> Any:
    return boto3.resource("dynamodb", config=SDK_CONFIG)


@per_container
def sqs() -> Any:
    return boto3.client("sqs", config=SDK_CONFIG)


@per_container
def sqs_on_first_send() -> Any:
    """The SQS client, built when first used: for functions whose usual invocation sends nothing to SQS
    (process-events sends only poison messages, retries and fan-out pages), so their cold start does not
    build a client (about 10 ms of CPU after the first one, `make bench`'s cold-start table) it may never use."""
    return CreatedOnFirstUse(sqs)


class CreatedOnFirstUse:
    """Stands in for what `create()` returns, calling it on the first attribute read (then delegating)."""

    def __init__(self, create: Callable[[], Any]) -> None:
        self._create = create
        self._target: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._target is None:
            self._target = self._create()
        return getattr(self._target, name)


@per_container
def ssm() -> Any:
    return boto3.client("ssm", config=SDK_CONFIG)


@per_container
def secretsmanager() -> Any:
    return boto3.client("secretsmanager", config=SDK_CONFIG)


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
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            # Standard mode retries throttling and 5xx a few times before we see them.
            # Off, one try: total_max_attempts counts it (max_attempts would add one retry).
            retries={"mode": "standard", "total_max_attempts": 4 if retries else 1},
        ),
    )


@per_container
def connections_gateway(endpoint_url: str, concurrency: int = 10) -> SignedConnectionsClient:
    """The `@connections` client delivery posts with: one try per call, `concurrency` connections kept open."""
    session = _default_session()
    return SignedConnectionsClient(
        endpoint_url,
        concurrency,
        credentials=session.get_credentials,
        region=session.region_name or _region_of(endpoint_url),
    )


def _default_session() -> boto3.Session:
    """The session boto3.client() uses: the same credentials and region as every other client."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


def _region_of(endpoint_url: str) -> str:
    """`https://{api}.execute-api.{region}.amazonaws.com/{stage}` -> region; us-east-1 for other hosts."""
    labels = (urlsplit(endpoint_url).hostname or "").split(".")
    if "execute-api" in labels[:-1]:
        return labels[labels.index("execute-api") + 1]
    return "us-east-1"


class SignedConnectionsClient:
    """PostToConnection and DeleteConnection, signed with SigV4 and sent on a pool of kept-alive connections.

    Stands in for boto3's `apigatewaymanagementapi` client in the two calls delivery
    makes (same names, arguments and exceptions), without the client's per-call
    machinery: parameter validation, event hooks, serialization, endpoint resolution
    and response parsing cost about 2 ms of CPU per post, which a fan-out pays
    thousands of times. What is left per call: quoting the id, signing, the HTTP
    exchange. Never retries; a refusal raises ClientError (the error code from
    x-amzn-ErrorType and the HTTP status, as botocore reports them), a network
    failure HTTPClientError.
    """

    def __init__(
        self, endpoint_url: str, concurrency: int, *, credentials: Callable[[], Credentials | None], region: str
    ) -> None:
        """`credentials()` gives the session's credentials (resolved on the first call, then reused)."""
        endpoint = urlsplit(endpoint_url.rstrip("/"))
        self._origin = f"{endpoint.scheme}://{endpoint.netloc}"
        # Sent and signed as given, so the signer need not work it out from the URL on every call.
        default_port = 443 if endpoint.scheme == "https" else 80
        self._host = endpoint.hostname if endpoint.port in (None, default_port) else endpoint.netloc
        self._connections_path = f"{endpoint.path}/@connections/"
        self._resolve_credentials = credentials
        self._credentials: Credentials | None = None
        self._region = region
        self._signer: tuple[ReadOnlyCredentials, SigV4Auth] | None = None
        options: dict[str, Any] = {
            "maxsize": concurrency,
            "timeout": urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
            "retries": False,
        }
        if endpoint.scheme == "https":
            options |= {"cert_reqs": "CERT_REQUIRED", "ca_certs": get_cert_path(True)}
        self._pool = urllib3.connection_from_url(self._origin, **options)

    def post_to_connection(self, *, ConnectionId: str, Data: bytes) -> dict[str, Any]:
        return self._send("POST", ConnectionId, Data, "PostToConnection")

    def delete_connection(self, *, ConnectionId: str) -> dict[str, Any]:
        return self._send("DELETE", ConnectionId, b"", "DeleteConnection")

    def _send(self, method: str, connection_id: str, body: bytes, operation: str) -> dict[str, Any]:
        # Quoted as botocore quotes a URI label: everything but -._~ (ids end in "=").
        path = self._connections_path + quote(connection_id, safe="-._~")
        request = AWSRequest(method, self._origin + path, data=body, headers={"Host": self._host})
        self._current_signer().add_auth(request)
        try:
            response = self._pool.urlopen(
                method, path, body=body, headers=dict(request.headers.items()), retries=False, redirect=False
            )
        except urllib3.exceptions.HTTPError as error:  # refused, reset, timed out
            raise HTTPClientError(error=error) from error
        if response.status < 300:
            return {}
        raise ClientError(_error_response(response), operation)

    def _current_signer(self) -> SigV4Auth:
        """A signer for the current credentials: a new one when they change (refreshed, rotated)."""
        if self._credentials is None:
            self._credentials = self._resolve_credentials()
            if self._credentials is None:
                raise NoCredentialsError
        frozen = self._credentials.get_frozen_credentials()
        signer = self._signer
        if signer is None or signer[0] != frozen:
            signer = self._signer = (frozen, SigV4Auth(frozen, "execute-api", self._region))
        return signer[1]


def _error_response(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    """What botocore's parser makes of an error answer: the code and message, and the HTTP status."""
    code = (response.headers.get("x-amzn-ErrorType") or "").split(":")[0]
    message = ""
    with contextlib.suppress(ValueError, AttributeError):  # not JSON, not an object
        body = json.loads(response.data or b"{}")
        code = code or body.get("code") or body.get("__type", "")
        message = body.get("message") or body.get("Message", "")
    return {
        "Error": {"Code": code or str(response.status), "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": response.status},
    }
