"""Delivery's `@connections` client (realtime.core.aws.SignedConnectionsClient) against a stub gateway on loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from realtime.connections.posting import TOKEN_EXPIRED_FRAME, Outcome, Poster, close_expired
from realtime.core import aws

from ..support import REGION

STAGE = "/live"
CREDENTIALS = Credentials("AKIDSTUB", "stub-secret", "stub-session-token")


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def connection_id(self) -> str:
        return unquote(self.path.rsplit("/@connections/", 1)[1])


@dataclass
class StubGateway:
    """Records every request; answers 200 (204 to DELETE) unless `answers[id]` says (status, x-amzn-ErrorType)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: dict[str, tuple[int, str | None]] = field(default_factory=dict)


@pytest.fixture
def gateway() -> Iterator[StubGateway]:
    stub = StubGateway()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Received(self.command, self.path, dict(self.headers.items()), body)
            stub.received.append(request)
            done = 204 if self.command == "DELETE" else 200
            status, error_type = stub.answers.get(request.connection_id, (done, None))
            payload = json.dumps({"message": error_type}).encode() if error_type else b""
            self.send_response(status)
            if error_type:
                self.send_header("x-amzn-ErrorType", error_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_POST = do_DELETE = _answer

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_port}{STAGE}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()


def signed_client(url: str, credentials: Any = CREDENTIALS) -> aws.SignedConnectionsClient:
    return aws.SignedConnectionsClient(url, 4, credentials=lambda: credentials, region=REGION)


def signature_checks_out(request: Received, credentials: Credentials) -> bool:
    """Recompute the SigV4 signature of what arrived (method, path, host, date, token, body)."""
    headers = {name: request.headers[name] for name in ("Host", "X-Amz-Date", "X-Amz-Security-Token")}
    rebuilt = AWSRequest(request.method, f"http://{headers['Host']}{request.path}", data=request.body, headers=headers)
    rebuilt.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(credentials.get_frozen_credentials(), "execute-api", REGION)
    expected = signer.signature(signer.string_to_sign(rebuilt, signer.canonical_request(rebuilt)), rebuilt)
    return request.headers["Authorization"].endswith(f"Signature={expected}")


def test_each_post_is_signed_for_execute_api_and_carries_its_frame(gateway):
    report = Poster(signed_client(gateway.url), concurrency=4, on_gone=lambda _id: None).post(
        [("one", b'{"n":1}'), ("two", b'{"n":2}')]
    )

    assert report.sent == 2
    assert sorted((r.method, r.connection_id, r.body) for r in gateway.received) == [
        ("POST", "one", b'{"n":1}'),
        ("POST", "two", b'{"n":2}'),
    ]
    for request in gateway.received:
        authorization = request.headers["Authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDSTUB/")
        assert f"/{REGION}/execute-api/aws4_request" in authorization
        assert request.headers["X-Amz-Security-Token"] == "stub-session-token"
        assert signature_checks_out(request, CREDENTIALS)


@pytest.mark.parametrize("connection_id", ["L0SM9cOFvHcCIhw=", "a/b+c d?e#f%", "caf\u00e9"])
def test_connection_ids_are_quoted_as_boto3_quotes_them(gateway, connection_id):
    signed_client(gateway.url).post_to_connection(ConnectionId=connection_id, Data=b"x")
    boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gateway.url,
        region_name=REGION,
        aws_access_key_id="AKIDSTUB",
        aws_secret_access_key="stub-secret",
    ).post_to_connection(ConnectionId=connection_id, Data=b"x")

    ours, boto3s = gateway.received
    assert ours.path == boto3s.path
    assert ours.path.startswith(f"{STAGE}/@connections/")
    assert ours.connection_id == connection_id


def test_new_credentials_are_used_as_soon_as_they_change(gateway):
    class Rotating:
        current = Credentials("AKIDFIRST", "first-secret", "first-token")

        def get_frozen_credentials(self):
            return self.current.get_frozen_credentials()

    rotating = Rotating()
    client = signed_client(gateway.url, rotating)
    client.post_to_connection(ConnectionId="c", Data=b"1")
    rotating.current = Credentials("AKIDSECOND", "second-secret", "second-token")
    client.post_to_connection(ConnectionId="c", Data=b"2")

    first, second = gateway.received
    assert "Credential=AKIDFIRST/" in first.headers["Authorization"]
    assert "Credential=AKIDSECOND/" in second.headers["Authorization"]
    assert signature_checks_out(second, rotating.current)


@pytest.mark.parametrize(
    ("status", "error_type", "outcome"),
    [
        (410, "GoneException", Outcome.GONE),
        (410, None, Outcome.GONE),
        (429, "LimitExceededException", Outcome.THROTTLED),
        (429, None, Outcome.THROTTLED),
        (500, "InternalServerErrorException", Outcome.TRANSIENT),
        (503, None, Outcome.TRANSIENT),
        (403, "ForbiddenException", Outcome.FAILED),
        (413, "PayloadTooLargeException", Outcome.FAILED),
    ],
)
def test_each_answer_is_classified_as_with_boto3(gateway, status, error_type, outcome):
    gateway.answers["target"] = (status, error_type)
    removed = []

    report = Poster(signed_client(gateway.url), concurrency=2, on_gone=removed.append).post(
        [("live", b"a"), ("target", b"a")]
    )

    assert report.sent == 1
    assert report.gone == (outcome is Outcome.GONE)
    assert removed == (["target"] if outcome is Outcome.GONE else [])
    assert report.failed == (outcome is Outcome.FAILED)
    assert report.throttled == (outcome is Outcome.THROTTLED)
    assert report.retry == ([1] if outcome in (Outcome.THROTTLED, Outcome.TRANSIENT) else [])


def test_a_gateway_that_cannot_be_reached_is_transient():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}{STAGE}"

    report = Poster(signed_client(url), concurrency=2, on_gone=lambda _id: None).post([("c", b"a")])

    assert (report.sent, report.failed, report.retry) == (0, 0, [0])


def test_an_expired_connection_gets_the_frame_then_is_deleted(gateway):
    assert close_expired(signed_client(gateway.url), "expired=") is Outcome.SENT

    assert [(r.method, r.connection_id, r.body) for r in gateway.received] == [
        ("POST", "expired=", TOKEN_EXPIRED_FRAME),
        ("DELETE", "expired=", b""),
    ]
    assert signature_checks_out(gateway.received[1], CREDENTIALS)


def test_the_factory_signs_with_the_default_session_and_the_endpoint_s_region(monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    boto3.setup_default_session()  # no region: taken from the endpoint's host
    try:
        client = aws.connections_gateway("https://abc123.execute-api.eu-west-3.amazonaws.com/live", 8)
        signer = client._current_signer()
    finally:
        boto3.DEFAULT_SESSION = None

    assert signer._region_name == "eu-west-3"
    assert signer.credentials.access_key == "testing"  # the environment's, as every boto3 client
