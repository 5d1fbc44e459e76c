"""The demo server's guard rails and routes, without a stack (a stand-in for its AWS side)."""

from __future__ import annotations

import json
import re

import httpx
import jwt
import pytest

from scripts.local import demo_server
from scripts.local.demo_server import BackgroundServer, Demo, NotLocal, check_local
from scripts.local.mint_token import LOCAL_AUDIENCE, LOCAL_ISSUER

LOCAL = {
    "emulator_endpoint": "http://127.0.0.1:4566",
    "websocket_url": "ws://127.0.0.1:4566/_aws/execute-api/abc/live",
    "http_api_url": "http://127.0.0.1:4566/_aws/execute-api/def/$default",
    "events_queue_url": "http://127.0.0.1:4566/000000000000/rt-local-events",
}


SECRET = "a-dev-secret-that-is-long-enough-for-hs256"
JSON_BODY = {"Content-Type": "application/json"}


class FakePublisher:
    def __init__(self):
        self.sent = []

    def publish(self, type, data, *, audience=None, id=None):
        from realtime_publisher import Event

        Event(type, data, audience, id).to_message()  # the SDK's own validation
        self.sent.append((type, data, audience, id))
        return "msg-1"


def fake_demo() -> Demo:
    demo = object.__new__(Demo)  # no SSM, no SQS
    demo.endpoints = LOCAL
    demo.secret = SECRET
    demo.publisher = FakePublisher()
    return demo


@pytest.fixture
def server():
    with BackgroundServer(LOCAL, demo=fake_demo()) as running:
        yield running


def get(url: str) -> tuple[int, str, bytes]:
    response = httpx.get(url, timeout=5)
    return response.status_code, response.headers.get("content-type"), response.content


def post(url: str, body: bytes) -> tuple[int, dict]:
    response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=5)
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("emulator_endpoint", "https://sqs.eu-west-1.amazonaws.com"),
        ("websocket_url", "wss://abc.execute-api.eu-west-1.amazonaws.com/live"),
        ("http_api_url", "http://10.0.0.5:4566/x"),
        ("events_queue_url", None),
    ],
)
def test_refuses_anything_but_the_local_emulator(key, value):
    with pytest.raises(NotLocal, match="refusing to run"):
        check_local({**LOCAL, key: value})


def test_accepts_loopback_names():
    check_local(LOCAL)
    check_local({key: value.replace("127.0.0.1", "localhost") for key, value in LOCAL.items()})


def test_serves_the_page_the_client_and_the_config(server):
    status, kind, body = get(f"{server.url}/")
    assert status == 200
    assert kind.startswith("text/html")
    assert b"demo.js" in body
    status, kind, body = get(f"{server.url}/js/realtime.js")
    assert (status, kind) == (200, "text/javascript; charset=utf-8")
    assert body == (demo_server.JS_DIR / "realtime.js").read_bytes()  # the bundle `make build-js` writes
    assert re.search(rb"^export \{[^}]*\bconnect\b", body, re.MULTILINE)
    status, _, body = get(f"{server.url}/config.json")
    config = json.loads(body)
    assert config["wsUrl"] == LOCAL["websocket_url"]
    assert config["httpUrl"] == LOCAL["http_api_url"]
    assert [u["id"] for u in config["users"]] == ["alice", "bob", "carol", "dave"]


@pytest.mark.parametrize(
    "path",
    ["/js/../../pyproject.toml", "/..%2f..%2fpyproject.toml", "/nope.html", "/js/", "/js/../src/index.js"],
)
def test_serves_nothing_outside_its_folders(server, path):
    assert get(f"{server.url}{path}")[0] == 404


def test_refuses_to_start_without_the_bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_server, "JS_DIR", tmp_path)
    with pytest.raises(SystemExit, match=r"realtime\.js is missing: run `make build-js`"):
        BackgroundServer(LOCAL, demo=fake_demo())


def test_says_how_to_build_the_bundle_when_it_goes_missing(server, tmp_path, monkeypatch):
    monkeypatch.setattr(demo_server, "JS_DIR", tmp_path)  # e.g. `make clean` while the server runs

    response = httpx.get(f"{server.url}/js/realtime.js", timeout=5)

    assert (response.status_code, response.json()["error"]["code"]) == (503, "client_not_built")
    assert "run `make build-js`" in response.json()["error"]["message"]


def decoded(body: bytes) -> dict:
    """The claims of the token in a /token answer, checked as the local stack checks them."""
    return jwt.decode(
        json.loads(body)["token"], SECRET, algorithms=["HS256"], issuer=LOCAL_ISSUER, audience=LOCAL_AUDIENCE
    )


def test_mints_dev_tokens_for_seeded_and_other_users(server):
    status, _, body = get(f"{server.url}/token?user=alice")
    assert status == 200
    claims = decoded(body)
    assert claims["sub"] == "alice"
    assert claims["groups"] == ["ops", "dev"]
    assert set(claims["topics"]) == {"presence:bob", "presence:carol", "presence:dave"}
    status, _, body = get(f"{server.url}/token?user=zed&groups=team-1,team-2")
    assert decoded(body)["groups"] == ["team-1", "team-2"]
    assert get(f"{server.url}/token?user=bad%20name")[0] == 400
    assert get(f"{server.url}/token")[0] == 400


def test_publishes_valid_events_and_explains_invalid_ones(server):
    status, body = post(f"{server.url}/publish", b'{"type":"demo.note","data":{"m":1},"audience":["user:bob"]}')
    assert (status, body) == (200, {"messageId": "msg-1"})
    status, body = post(f"{server.url}/publish", b'{"type":"Bad Type","data":{}}')
    assert status == 400
    assert "type" in body["error"]["message"]
    assert post(f"{server.url}/publish", b"not json")[0] == 400
    assert post(f"{server.url}/publish", b"[1]")[0] == 400


def port_of(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "192.168.1.5:{port}"])
def test_refuses_requests_for_another_host(server, host):
    """DNS rebinding: a name the attacker controls, pointed at 127.0.0.1, arrives with its own Host."""
    headers = {"Host": host.format(port=port_of(server))}

    token = httpx.get(f"{server.url}/token?user=alice", headers=headers, timeout=5)
    publish = httpx.post(
        f"{server.url}/publish", content=b'{"type":"a","data":{}}', headers=headers | JSON_BODY, timeout=5
    )

    assert (token.status_code, token.json()["error"]["code"]) == (403, "foreign_host")
    assert publish.status_code == 403
    assert server.server.RequestHandlerClass.demo.publisher.sent == []


def test_refuses_pages_of_other_origins(server):
    headers = {"Origin": "https://evil.example"}

    token = httpx.get(f"{server.url}/token?user=alice", headers=headers, timeout=5)
    publish = httpx.post(
        f"{server.url}/publish", content=b'{"type":"a","data":{}}', headers=headers | JSON_BODY, timeout=5
    )

    assert (token.status_code, token.json()["error"]["code"]) == (403, "foreign_origin")
    assert (publish.status_code, publish.json()["error"]["code"]) == (403, "foreign_origin")
    assert server.server.RequestHandlerClass.demo.publisher.sent == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_serves_its_own_pages_by_either_loopback_name(server, host):
    origin = f"http://{host}:{port_of(server)}"
    headers = {"Host": f"{host}:{port_of(server)}", "Origin": origin}

    response = httpx.post(
        f"{server.url}/publish", content=b'{"type":"a","data":{}}', headers=headers | JSON_BODY, timeout=5
    )

    assert response.status_code == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_publish_takes_json_only(server, content_type):
    """A form or text/plain POST needs no CORS preflight: a page elsewhere could send one."""
    headers = {} if content_type is None else {"Content-Type": content_type}

    response = httpx.post(f"{server.url}/publish", content=b'{"type":"a","data":{}}', headers=headers, timeout=5)

    assert (response.status_code, response.json()["error"]["code"]) == (415, "not_json")
    assert server.server.RequestHandlerClass.demo.publisher.sent == []
