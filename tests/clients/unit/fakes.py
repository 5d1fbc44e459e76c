"""A fake WebSocket API and GET /events that follow the wire contract, in process.

The WebSocket side is what the client's ``ws_connect`` returns; the HTTP side
is an ``httpx.MockTransport``. Publishing stores first, then delivers, as the
pipeline does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import httpx
import websockets
from realtime_client import decode_cursor, encode_cursor

_CLOSED = object()


class FakeSocket:
    def __init__(self, server: FakeServer, token: str):
        self.server = server
        self.token = token
        self.sent: list[dict] = []
        self.queue: asyncio.Queue = asyncio.Queue()
        self.closed = False
        self.silent = False
        self.transport = self  # the client aborts a dead socket through .transport.abort()

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await self.queue.get()
        if item is _CLOSED:
            raise websockets.ConnectionClosedError(None, None)
        return item

    async def send(self, text: str) -> None:
        message = json.loads(text)
        self.sent.append(message)
        if message.get("action") == "ping" and not self.silent:
            self.queue.put_nowait(json.dumps({"type": "pong"}))

    async def close(self) -> None:
        self.kill()

    def abort(self) -> None:
        self.kill()

    def kill(self) -> None:
        """The server or the network ends the socket."""
        if not self.closed:
            self.closed = True
            self.server.sockets.discard(self)
            self.queue.put_nowait(_CLOSED)

    def expire_token(self, *, close: bool = True) -> None:
        """The server's last frame to a socket whose token expired, then (normally) its close."""
        self.queue.put_nowait(json.dumps({"type": "error", "error": {"code": "token_expired", "message": "expired"}}))
        self.server.sockets.discard(self)
        if close:
            self.kill()

    def go_silent(self) -> None:
        """Open, but nothing gets through any more (a NAT or proxy forgot us)."""
        self.silent = True
        self.server.sockets.discard(self)


class FakeServer:
    def __init__(self, topics=("user:alice", "group:ops", "all")):
        self.topics = list(topics)
        self.store: dict[str, list[dict]] = {topic: [] for topic in self.topics}
        self.sockets: set[FakeSocket] = set()
        self.all_sockets: list[FakeSocket] = []
        self.block_websocket = False
        self.hang_websocket = False
        self.silent_websocket = False  # opens, then nothing gets through (a proxy that swallows frames)
        self.drop_frames = 0
        self.requests: list[dict] = []
        # Answers GET /events gives instead of a page, one per request, in order:
        # (status, Retry-After or None): a throttle, an overloaded or throttled backend.
        self.refusals: list[tuple[int, str | None]] = []
        self.valid_tokens: set[str] | None = None
        self.published = 0
        self.presence: dict[str, dict] = {}  # user id -> GET /presence's state of a user the token may watch
        self.changed = asyncio.Event()
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    async def ws_connect(self, url: str) -> FakeSocket:
        if self.block_websocket:
            raise ConnectionRefusedError("blocked by a firewall")
        if self.hang_websocket:
            await asyncio.Event().wait()
        token = parse_qs(urlparse(url).query)["token"][0]
        if self.valid_tokens is not None and token not in self.valid_tokens:
            raise websockets.InvalidHandshake("server rejected WebSocket connection: HTTP 403")
        socket = FakeSocket(self, token)
        self.all_sockets.append(socket)
        if self.silent_websocket:
            socket.silent = True
        else:
            self.sockets.add(socket)
        return socket

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        params = dict(request.url.params)
        self.requests.append({"path": request.url.path, "params": params, "token": token, "at": time.monotonic()})
        if request.url.path == "/events" and self.refusals:
            status, retry_after = self.refusals.pop(0)
            headers = {} if retry_after is None else {"Retry-After": retry_after}
            return httpx.Response(status, headers=headers, json={"error": {"code": "throttled", "message": "not now"}})
        if self.valid_tokens is not None and token not in self.valid_tokens:
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "expired"}})
        if request.url.path == "/presence":
            users = [u for u in params.get("users", "").split(",") if u in self.presence]
            return httpx.Response(200, json={"users": {u: self.presence[u] for u in users}})
        positions = decode_cursor(params["cursor"]) if "cursor" in params else {}
        if positions is None or any(seq > len(self.store.get(topic, ())) for topic, seq in positions.items()):
            return httpx.Response(400, json={"error": {"code": "invalid_cursor", "message": "bad cursor"}})
        if params.get("since") == "now":
            positions = {topic: len(events) for topic, events in self.store.items()}
        limit = int(params.get("limit", 50))
        wait = float(params.get("wait", 0))
        page = self.read(positions, limit)
        if not page["events"] and wait > 0:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), wait)
            page = self.read(positions, limit)
        return httpx.Response(200, json=page)

    def read(self, positions: dict[str, int], limit: int) -> dict:
        after = {topic: positions.get(topic, 0) for topic in self.topics}
        pending = sorted(
            (e for topic in self.topics for e in self.store[topic] if e["seq"] > after[topic]),
            key=lambda e: e["publishedAt"],
        )
        events = pending[:limit]
        for event in events:
            after[event["topic"]] = event["seq"]
        return {"events": events, "cursor": encode_cursor(after), "hasMore": len(pending) > limit}

    def publish(self, topic: str, type: str = "test.event", data: dict | None = None) -> dict:
        seq = len(self.store[topic]) + 1
        self.published += 1
        now = datetime.now(UTC).isoformat()
        event = {
            "id": f"{topic}#{seq}",
            "type": type,
            "topic": topic,
            "seq": seq,
            "data": data or {},
            "occurredAt": now,
            "publishedAt": f"{now}{self.published:06d}",
        }
        self.store[topic].append(event)
        for socket in list(self.sockets):
            if self.drop_frames > 0:
                self.drop_frames -= 1
                continue
            socket.queue.put_nowait(json.dumps(event))
        self.changed.set()
        return event

    @property
    def open_sockets(self) -> list[FakeSocket]:
        return [s for s in self.all_sockets if not s.closed and s in self.sockets]

    def event_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"] == "/events"]
