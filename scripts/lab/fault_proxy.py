"""Loopback proxies that inject faults between the parts of the local stack, for `make chaos` and `make soak`.

- `HttpFaultProxy` forwards HTTP requests to an upstream (the emulator) and
  answers a chosen share of them itself, the way the real service answers
  when it misbehaves: `@connections` posts with 429, 500 or no answer at all
  (`ConnectionsFaults`), DynamoDB requests with ProvisionedThroughputExceeded
  (`DynamoDBThrottling`) or a transaction cancelled for a conflict
  (`TransactionConflicts`), in DynamoDB's JSON error format. The functions are
  pointed at it through their configuration (CONNECTIONS_ENDPOINT,
  AWS_ENDPOINT_URL_DYNAMODB): nothing in the production code knows about it.
- `TcpDropProxy` carries a client's TCP connections to the emulator and can
  drop the network for a while: open connections are reset and new ones
  refused until it is back.
- `ProxyThread` runs the TCP proxy on an asyncio loop of its own, so a test's
  own loop (its clients) and its blocking boto3 calls never stall it; the
  HTTP proxy serves from threads of its own.

Which requests fail is deterministic (`FaultPlan`): a request's key (the
connection id and frame; the DynamoDB operation and body) is hashed with a
seed; a `share` of the keys fail their first `failures_each` attempts and
the next one is forwarded. An SDK retry resends the same body, so it counts
as the next attempt of the same key, and every fault is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
import threading
from collections import Counter
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

import httpx

HOST = "127.0.0.1"
CONNECTIONS_PATH = "/@connections/"
DYNAMODB_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
# Hop-by-hop and framing headers: each side of the proxy has its own.
_NOT_FORWARDED = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding"})
T = TypeVar("T")


@dataclass(frozen=True)
class FaultPlan:
    """A `share` of request keys fail their first `failures_each` attempts, each with one of `kinds`."""

    share: float = 0.0
    failures_each: int = 1
    kinds: tuple[str, ...] = ("throttle",)
    seed: int = 0

    def kind_for(self, key: str) -> str | None:
        """The failure this key's first attempts get, or None if it is forwarded from the start."""
        digest = hashlib.blake2b(f"{self.seed}:{key}".encode(), digest_size=16).digest()
        if int.from_bytes(digest[:8]) / 2**64 >= self.share:
            return None
        return self.kinds[int.from_bytes(digest[8:]) % len(self.kinds)]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


HANG = Answer(0)  # no answer: the request is held until the caller gives up (or `hang_seconds` pass)


def _json_error(status: int, error_type: str, body: dict[str, Any]) -> Answer:
    return Answer(
        status, json.dumps(body).encode(), (("content-type", "application/json"), ("x-amzn-errortype", error_type))
    )


class Faults(Protocol):
    plan: FaultPlan

    def key(self, request: Request) -> str | None:
        """The request's fault key, or None if this kind of fault never applies to it."""

    def answer(self, kind: str, request: Request) -> Answer: ...


class ConnectionsFaults:
    """`@connections` posts (PostToConnection): `throttle` 429, `error` 500, `timeout` no answer."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    def key(self, request: Request) -> str | None:
        if request.method != "POST" or CONNECTIONS_PATH not in request.path:
            return None
        connection_id = unquote(request.path.rsplit(CONNECTIONS_PATH, 1)[1])
        return f"{connection_id}\n{hashlib.sha256(request.body).hexdigest()}"

    def answer(self, kind: str, request: Request) -> Answer:
        if kind == "timeout":
            return HANG
        if kind == "throttle":
            return _json_error(429, "LimitExceededException", {"message": "Too many requests"})
        return _json_error(500, "InternalServerErrorException", {"message": "Internal server error"})


def dynamodb_operation(request: Request) -> str:
    return request.headers.get("x-amz-target", "").rpartition(".")[2]


class DynamoDBThrottling:
    """DynamoDB requests (of `operations`, or all) answered ProvisionedThroughputExceededException."""

    def __init__(self, plan: FaultPlan, operations: Sequence[str] | None = None) -> None:
        self.plan = plan
        self.operations = frozenset(operations) if operations else None

    def key(self, request: Request) -> str | None:
        operation = dynamodb_operation(request)
        if not operation or (self.operations is not None and operation not in self.operations):
            return None
        return f"{operation}\n{hashlib.sha256(request.body).hexdigest()}"

    def answer(self, kind: str, request: Request) -> Answer:
        error_type = "ProvisionedThroughputExceededException"
        message = "The level of configured provisioned throughput for the table was exceeded."
        return _json_error(400, error_type, {"__type": DYNAMODB_ERROR_PREFIX + error_type, "message": message})


class TransactionConflicts:
    """TransactWriteItems cancelled with TransactionConflict on its first item, as DynamoDB answers a race."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    def key(self, request: Request) -> str | None:
        if dynamodb_operation(request) != "TransactWriteItems":
            return None
        return f"TransactWriteItems\n{hashlib.sha256(request.body).hexdigest()}"

    def answer(self, kind: str, request: Request) -> Answer:
        items = len(json.loads(request.body).get("TransactItems", [])) or 1
        reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
        reasons += [{"Code": "None"}] * (items - 1)
        codes = ", ".join(reason["Code"] for reason in reasons)
        error_type = "TransactionCanceledException"
        body = {
            "__type": DYNAMODB_ERROR_PREFIX + error_type,
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            "CancellationReasons": reasons,
        }
        return _json_error(400, error_type, body)


@dataclass
class FaultCounts:
    requests: int = 0
    forwarded: int = 0
    injected: Counter = field(default_factory=Counter)  # kind -> answers the proxy gave itself


class FaultDecider:
    """Which answer a request gets: the first of `faults` whose plan picks its key, while its attempts last."""

    def __init__(self, faults: Sequence[Faults] = ()) -> None:
        self.faults = list(faults)
        self.counts = FaultCounts()
        self._attempts: Counter = Counter()

    def decide(self, request: Request) -> Answer | None:
        """The proxy's own answer, or None to forward the request."""
        self.counts.requests += 1
        for index, faults in enumerate(self.faults):
            key = faults.key(request)
            if key is None:
                continue
            kind = faults.plan.kind_for(key)
            if kind is None:
                continue
            self._attempts[index, key] += 1
            if self._attempts[index, key] <= faults.plan.failures_each:
                self.counts.injected[kind] += 1
                return faults.answer(kind, request)
        self.counts.forwarded += 1
        return None


class HttpFaultProxy:
    """HTTP/1.1 on 127.0.0.1 (a thread per connection): each request is decided, then answered or forwarded.

    `running()` serves it until the block ends; a held request (`timeout`) is let go then, or after
    `hang_seconds`, without an answer.
    """

    def __init__(self, upstream: str, faults: Sequence[Faults] = (), *, hang_seconds: float = 30.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.decider = FaultDecider(faults)
        self.hang_seconds = hang_seconds
        self.url = ""
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=self.upstream, timeout=60)

    @property
    def counts(self) -> FaultCounts:
        return self.decider.counts

    def set_faults(self, faults: Sequence[Faults]) -> None:
        """New faults from here on, with fresh counts."""
        with self._lock:
            self.decider = FaultDecider(faults)

    def heal(self) -> None:
        """Forward everything from here on; the counts so far are kept."""
        with self._lock:
            self.decider.faults = []

    @contextlib.contextmanager
    def running(self) -> Iterator[HttpFaultProxy]:
        server = _ProxyServer((HOST, 0), _ProxyHandler)
        server.proxy = self
        self.url = f"http://{HOST}:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="http-fault-proxy", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stopping.set()
            server.shutdown()
            server.server_close()
            self._http.close()

    def handle(self, request: Request) -> Answer:
        with self._lock:
            answer = self.decider.decide(request)
        if answer is HANG:
            self._stopping.wait(self.hang_seconds)
            return HANG
        if answer is not None:
            return answer
        headers = {name: value for name, value in request.headers.items() if name not in _NOT_FORWARDED}
        try:
            response = self._http.request(request.method, request.path, headers=headers, content=request.body)
        except httpx.HTTPError as error:
            return Answer(502, f"upstream unreachable: {error!r}".encode())
        kept = tuple((name, value) for name, value in response.headers.items() if name.lower() not in _NOT_FORWARDED)
        return Answer(response.status_code, response.content, kept)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # held requests end with the proxy, not before it
    proxy: HttpFaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a caller gone (a function stopped, a worker replaced)
            super().handle_error(request, client_address)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs use it
    server: _ProxyServer

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.proxy.handle(Request(self.command, self.path, headers, body))
        if answer is HANG:
            self.close_connection = True  # nothing was ever answered
            return
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the proxy's counts say what happened."""


class TcpDropProxy:
    """Carries TCP connections to `upstream_port`; `drop(seconds)` resets them and refuses new ones meanwhile."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self.refused = 0
        self.resets = 0
        self._down_until = 0.0
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> TcpDropProxy:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()

    def is_down(self) -> bool:
        return asyncio.get_running_loop().time() < self._down_until

    async def drop(self, seconds: float) -> None:
        """The network goes away for `seconds`: every open connection is reset, new ones are refused."""
        self._down_until = asyncio.get_running_loop().time() + seconds
        for writer in list(self._open):
            self.resets += 1
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_down():
            self.refused += 1
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(HOST, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._open |= {writer, upstream_writer}
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            self._open -= {writer, upstream_writer}
            for side in (writer, upstream_writer):
                side.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    # One side ended: end the other, so the pair does not linger half-open.
    writer.transport.abort()


class ProxyThread:
    """An asyncio loop in a daemon thread for the proxies; `call` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fault-proxies", daemon=True)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @contextlib.contextmanager
    def running(self) -> Iterator[ProxyThread]:
        self._thread.start()
        try:
            yield self
        finally:
            self.call(_cancel_others())  # held (hanging) requests, open pipes
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


async def _cancel_others() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
