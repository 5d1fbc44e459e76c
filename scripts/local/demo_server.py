"""The demo page for the LOCAL stack (development only; it refuses anything else).

    PYTHONPATH=clients/python python -m scripts.local.demo_server
        [--endpoints .local/endpoints.json] [--port 8765] [--pid-file F]

Serves, on 127.0.0.1 only:

- ``/``            the static demo page (clients/demo) and ``/js/realtime.js`` the browser client
                   (clients/js/dist/realtime.js, which ``make build-js`` bundles; `make up` does);
- ``/config.json`` the stack's WebSocket and HTTP URLs and the seeded users;
- ``/token``       ``?user=alice[&groups=ops,dev]``: a JWT signed with the local stack's dev
                   secret (read from the emulator's SSM) - the dev-only stand-in for your login;
- ``/publish``     ``POST {"type", "data", "audience"}``: sends an event to the events queue
                   with the publisher SDK, as your API server would.

It refuses to start unless every endpoint in the endpoints file is on the
loopback interface, i.e. the emulator: it mints tokens and publishes events
for anyone who asks, which must never happen against a deployed stack. For
the same reason it serves only requests addressed to itself: a `Host` other
than 127.0.0.1 or localhost on its port (DNS rebinding) or an `Origin` other
than its own (a web page the developer visits) gets 403, and `/publish` takes
only `Content-Type: application/json` (415 otherwise), which a page on another
origin cannot send without a CORS preflight this server never grants.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import mimetypes
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from realtime_publisher import Publisher

from scripts.local.emulator import LOCAL_ENDPOINTS, ROOT, emulator_client, read_endpoints
from scripts.local.mint_token import local_secret, mint_token

DEMO_DIR = ROOT / "clients" / "demo"
# The browser client as esbuild bundles it from clients/js/src (git-ignored: built, never committed).
JS_DIR = ROOT / "clients" / "js" / "dist"
JS_BUNDLE_NAME = "realtime.js"
DEFAULT_PORT = 8765
TOKEN_TTL_SECONDS = 15 * 60  # short, so a long demo session shows the client refreshing it

# A few seeded users; every one may watch the others' presence.
USERS: dict[str, list[str]] = {
    "alice": ["ops", "dev"],
    "bob": ["ops"],
    "carol": ["dev"],
    "dave": [],
}
NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
LOCAL_HOSTS = ("127.0.0.1", "localhost")


class NotLocal(SystemExit):
    pass


def missing_bundle() -> str | None:
    """Why the demo page cannot load the browser client, or None when it can."""
    bundle = JS_DIR / JS_BUNDLE_NAME
    if bundle.is_file():
        return None
    return f"{bundle} is missing: run `make build-js` (make up builds it)"


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_local(endpoints: dict) -> None:
    """Refuse unless the stack is the emulator on this machine."""
    for key in ("emulator_endpoint", "websocket_url", "http_api_url", "events_queue_url"):
        value = endpoints.get(key)
        if not isinstance(value, str) or not _is_loopback(value):
            raise NotLocal(
                f"refusing to run: {key}={value!r} is not on the loopback interface. The demo server mints "
                "tokens and publishes events for anyone, so it only runs against the local emulator (make up)."
            )


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


class Demo:
    """What the handlers need: the endpoints, the dev secret, a publisher."""

    def __init__(self, endpoints: dict):
        check_local(endpoints)
        self.endpoints = endpoints
        self.secret = local_secret(endpoints)
        sqs = emulator_client(endpoints, "sqs")
        self.publisher = Publisher(endpoints["events_queue_url"], sqs_client=sqs)

    def config(self) -> dict:
        return {
            "wsUrl": self.endpoints["websocket_url"],
            "httpUrl": self.endpoints["http_api_url"],
            "users": [{"id": user, "groups": groups} for user, groups in USERS.items()],
            "dev": True,
        }

    def token(self, user: str, groups: list[str] | None) -> dict:
        if not NAME.match(user):
            raise ValueError("user must be 1-64 of A-Z a-z 0-9 _ . @ + -")
        groups = USERS.get(user, []) if groups is None else groups
        if not all(NAME.match(group) for group in groups):
            raise ValueError("groups must be names of 1-64 of A-Z a-z 0-9 _ . @ + -")
        watch = [f"presence:{other}" for other in USERS if other != user]
        token = mint_token(self.secret, user, groups, watch, TOKEN_TTL_SECONDS)
        return {"token": token, "user": user, "groups": groups, "topics": watch, "expiresIn": TOKEN_TTL_SECONDS}

    def publish(self, body: dict) -> dict:
        message_id = self.publisher.publish(
            body.get("type", "demo.note"),
            body.get("data", {}),
            audience=body.get("audience"),
            id=body.get("id"),
        )
        return {"messageId": message_id}


class Handler(BaseHTTPRequestHandler):
    demo: Demo  # set on the subclass made by make_server
    server_version = "realtime-demo/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per error only
        if args and str(args[1 if len(args) > 1 else 0]).startswith(("4", "5")):
            sys.stderr.write(f"demo_server: {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": {"code": code, "message": message}})

    def _addressed_to_us(self) -> bool:
        """Answers 403 unless Host (and Origin, when sent) name this server on the loopback interface."""
        port = self.server.server_address[1]
        hosts = {f"{host}:{port}" for host in LOCAL_HOSTS}
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        if host not in hosts:
            self._error(403, "foreign_host", f"this development server only answers Host 127.0.0.1:{port}")
            return False
        if origin is not None and origin not in {f"http://{h}" for h in hosts}:
            self._error(403, "foreign_origin", "this development server only answers its own pages")
            return False
        return True

    def do_GET(self) -> None:
        if not self._addressed_to_us():
            return None
        url = urlparse(self.path)
        if url.path == "/config.json":
            return self._json(200, self.demo.config())
        if url.path == "/token":
            query = parse_qs(url.query)
            user = (query.get("user") or [""])[0]
            groups = _split(query["groups"][0]) if "groups" in query else None
            try:
                return self._json(200, self.demo.token(user, groups))
            except ValueError as error:
                return self._error(400, "bad_request", str(error))
        if url.path.startswith("/js/"):
            if url.path == f"/js/{JS_BUNDLE_NAME}" and (reason := missing_bundle()):
                return self._error(503, "client_not_built", reason)
            return self._static(JS_DIR, url.path.removeprefix("/js/"))
        return self._static(DEMO_DIR, url.path.lstrip("/") or "index.html")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._addressed_to_us():
            return None
        if urlparse(self.path).path != "/publish":
            return self._error(404, "not_found", "no such route")
        if self.headers.get_content_type() != "application/json":
            return self._error(415, "not_json", "send the event as JSON (Content-Type: application/json)")
        length = int(self.headers.get("Content-Length") or 0)
        if length > 64 * 1024:
            return self._error(413, "too_large", "body over 64 KiB")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            return self._json(200, self.demo.publish(body))
        except ValueError as error:  # InvalidEvent is a ValueError too
            return self._error(400, "bad_request", str(error))

    def _static(self, base: Path, relative: str) -> None:
        path = (base / relative).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            return self._error(404, "not_found", "no such file")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix in (".js", ".mjs"):
            content_type = "text/javascript"
        self._send(200, path.read_bytes(), f"{content_type}; charset=utf-8" if "text" in content_type else content_type)


def make_server(endpoints: dict, port: int = DEFAULT_PORT, demo: Demo | None = None) -> ThreadingHTTPServer:
    if reason := missing_bundle():  # the page would load, then fail on its import of the client
        raise SystemExit(f"demo server: {reason}")
    demo = demo or Demo(endpoints)
    handler = type("BoundHandler", (Handler,), {"demo": demo})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)  # loopback only, never all interfaces
    server.daemon_threads = True
    return server


class BackgroundServer:
    """The demo server on a thread (for tests): ``url`` once started, ``stop()`` when done."""

    def __init__(self, endpoints: dict, port: int = 0, demo: Demo | None = None):
        self.server = make_server(endpoints, port, demo)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="demo-server", daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, default=LOCAL_ENDPOINTS)
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", DEFAULT_PORT)), help="0: any")
    parser.add_argument("--pid-file", type=Path, help="write the process id here (removed on exit)")
    args = parser.parse_args()
    server = make_server(read_endpoints(args.endpoints), args.port)
    if args.pid_file:
        args.pid_file.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"Demo page: http://127.0.0.1:{server.server_address[1]}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if args.pid_file:
            args.pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
