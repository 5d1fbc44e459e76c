"""A loopback stand-in for API Gateway's `@connections` management API, for tests and benchmarks.

    python -m scripts.lab.gateway_sim [--port 0] [--latency-ms 20] [--jitter-ms 0] [--rate-limit 0]
                                  [--failure-share 0] [--failures-per-connection 1] [--seed 0]

It answers what boto3's `apigatewaymanagementapi` client sends to
`<base>/@connections/{id}` (any base path: point CONNECTIONS_ENDPOINT at the URL
it prints), with the status codes and `x-amzn-ErrorType` headers botocore turns
into its exceptions (the service model in botocore/data/apigatewaymanagementapi):

- POST (PostToConnection): 200 after the latency (plus uniform jitter); 410
  GoneException for an id that is not registered; 429 LimitExceededException
  above the rate limit (a token bucket holding one second of posts); 429 or 500
  for the failures it was told to inject.
- GET (GetConnection): 200 with the connection's times; DELETE (DeleteConnection):
  204 and the id is forgotten. Both 410 for an unknown id.

Injected failures are deterministic: `failure_share` of the ids, chosen by a hash
of (seed, id), answer their first `failures_per_connection` posts with 429 or
500 (also by the hash) and accept the next one. A test therefore knows what
"only the failed posts were retried" means: every connection sees exactly its
failed posts plus one accepted post.

The control API, on the same port, JSON in and out:

    GET    /_sim/stats              totals (posts, accepted, throttled, server_errors, gone,
                                    peak_in_flight, first_post_at, last_accepted_at) and the behaviour
    GET    /_sim/connections        per registered id: {"posts", "accepted", "failed"}
    GET    /_sim/connections/{id}   one id's counts and its accepted frames (as text)
    POST   /_sim/connections        {"ids": [...]} registers ids in bulk
    DELETE /_sim/connections        {"ids": [...]} unregisters them; without ids, all
    PUT    /_sim/behaviour          {"latency_ms": 5, ...} changes any of the behaviour's fields
    POST   /_sim/reset              zeroes every count and forgets the frames; ids stay registered

GatewaySimulator offers the same operations in-process; SimulatorClient speaks
the control API; `simulator_process()` runs the simulator in a child process
(a core of its own, as the real gateway is to a Lambda function) and stops it.
The command line version stops on SIGINT, SIGTERM or when its stdin closes, so
it never outlives whoever started it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httptools
import httpx

from scripts.local.emulator import ROOT

HOST = "127.0.0.1"
CONNECTIONS_PATH = "/@connections/"
CONTROL_PREFIX = "/_sim/"
# How each answer looks to botocore: status, x-amzn-ErrorType, message.
GONE = (410, "GoneException", "The connection with the provided id no longer exists.")
THROTTLED = (429, "LimitExceededException", "Too many requests")
SERVER_ERROR = (500, "InternalServerErrorException", "Internal server error")
NOT_FOUND = (404, "NotFoundException", "No such route")


@dataclass
class Behaviour:
    latency_ms: float = 20.0
    jitter_ms: float = 0.0  # each answer waits latency + uniform(0, jitter)
    rate_limit: float = 0.0  # posts per second answered before 429s start; 0: no limit
    failure_share: float = 0.0  # share of ids whose first posts fail
    failures_per_connection: int = 1  # how many of a failing id's first posts fail
    seed: int = 0

    def failure_for(self, connection_id: str) -> tuple[int, str, str] | None:
        """The failure this id's first posts get (429 or 500), or None if its posts succeed."""
        digest = int.from_bytes(hashlib.blake2b(f"{self.seed}:{connection_id}".encode(), digest_size=8).digest())
        if digest / 2**64 >= self.failure_share:
            return None
        return THROTTLED if digest % 2 else SERVER_ERROR


@dataclass(slots=True)
class Connection:
    registered_at: float
    posts: int = 0
    accepted: int = 0
    failed: int = 0  # injected failures and rate-limit refusals
    frames: list[bytes] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"posts": self.posts, "accepted": self.accepted, "failed": self.failed}


@dataclass
class Totals:
    posts: int = 0
    accepted: int = 0
    throttled: int = 0
    server_errors: int = 0
    gone: int = 0
    peak_in_flight: int = 0
    first_post_at: float | None = None  # epoch seconds
    last_accepted_at: float | None = None


class TokenBucket:
    """`rate` requests per second, with a burst of one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class Answer:
    status: int
    body: Any = None
    error_type: str | None = None


class GatewaySimulator:
    """The simulator's state and behaviour; `serve` puts it on a loopback port (one asyncio loop)."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.connections: dict[str, Connection] = {}
        self.totals = Totals()
        self.behaviour = behaviour or Behaviour()
        self._apply_behaviour()
        self._in_flight = 0

    # --- in-process API (the control API calls these) ---------------------------------

    def configure(self, **changes: Any) -> None:
        self.behaviour = dataclasses.replace(self.behaviour, **changes)
        self._apply_behaviour()

    def _apply_behaviour(self) -> None:
        self._bucket = TokenBucket(self.behaviour.rate_limit) if self.behaviour.rate_limit > 0 else None
        self._jitter = random.Random(self.behaviour.seed)

    def register(self, connection_ids: Iterable[str]) -> int:
        now = time.time()
        for connection_id in connection_ids:
            self.connections.setdefault(connection_id, Connection(registered_at=now))
        return len(self.connections)

    def unregister(self, connection_ids: Iterable[str] | None = None) -> int:
        if connection_ids is None:
            self.connections.clear()
        for connection_id in connection_ids or ():
            self.connections.pop(connection_id, None)
        return len(self.connections)

    def reset(self) -> None:
        self.totals = Totals()
        for connection in self.connections.values():
            connection.posts = connection.accepted = connection.failed = 0
            connection.frames.clear()

    def stats(self) -> dict[str, Any]:
        return dataclasses.asdict(self.totals) | {
            "registered": len(self.connections),
            "behaviour": dataclasses.asdict(self.behaviour),
        }

    def counts(self) -> dict[str, dict[str, int]]:
        return {connection_id: c.counts() for connection_id, c in self.connections.items()}

    # --- the @connections API ------------------------------------------------------------

    async def post(self, connection_id: str, frame: bytes) -> Answer:
        """Decided on arrival (rate limit, unknown id, injected failure), answered after the latency."""
        totals = self.totals
        totals.posts += 1
        if totals.first_post_at is None:
            totals.first_post_at = time.time()
        answer = self._decide(connection_id, frame)
        self._in_flight += 1
        totals.peak_in_flight = max(totals.peak_in_flight, self._in_flight)
        try:
            await self._wait()
        finally:
            self._in_flight -= 1
        if answer.status == 200:
            totals.last_accepted_at = time.time()
        return answer

    def _decide(self, connection_id: str, frame: bytes) -> Answer:
        totals = self.totals
        connection = self.connections.get(connection_id)
        if connection is None:
            totals.gone += 1
            return _error(GONE)
        connection.posts += 1
        failure = None
        if self._bucket is not None and not self._bucket.take():
            failure = THROTTLED
        elif connection.posts <= self.behaviour.failures_per_connection:
            failure = self.behaviour.failure_for(connection_id)
        if failure is not None:
            connection.failed += 1
            if failure is THROTTLED:
                totals.throttled += 1
            else:
                totals.server_errors += 1
            return _error(failure)
        connection.accepted += 1
        connection.frames.append(frame)
        totals.accepted += 1
        return Answer(200)

    def get(self, connection_id: str) -> Answer:
        connection = self.connections.get(connection_id)
        if connection is None:
            return _error(GONE)
        at = datetime.fromtimestamp(connection.registered_at, UTC).isoformat()
        identity = {"sourceIp": HOST, "userAgent": "gateway-sim"}
        return Answer(200, {"connectedAt": at, "lastActiveAt": at, "identity": identity})

    def delete(self, connection_id: str) -> Answer:
        if self.connections.pop(connection_id, None) is None:
            return _error(GONE)
        return Answer(204)

    async def _wait(self) -> None:
        behaviour = self.behaviour
        delay = behaviour.latency_ms + (self._jitter.uniform(0, behaviour.jitter_ms) if behaviour.jitter_ms else 0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)

    # --- HTTP ------------------------------------------------------------------------------

    async def serve(self, port: int = 0) -> asyncio.Server:
        """Listen on 127.0.0.1:port (0: a free one); the caller closes the returned server."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _HttpProtocol(self), HOST, port, backlog=2048)

    async def route(self, method: str, target: str, body: bytes) -> Answer:
        path = urlsplit(target).path
        if CONNECTIONS_PATH in path:
            connection_id = unquote(path.rsplit(CONNECTIONS_PATH, 1)[1])
            if method == "POST":
                return await self.post(connection_id, body)
            if method == "GET":
                return self.get(connection_id)
            if method == "DELETE":
                return self.delete(connection_id)
        elif path.startswith(CONTROL_PREFIX):
            try:
                return self._control(method, path.removeprefix(CONTROL_PREFIX), json.loads(body) if body else {})
            except (ValueError, TypeError, KeyError) as error:  # not JSON, an unknown field, no "ids"
                return Answer(400, {"message": f"bad control request: {error!r}"}, "BadRequestException")
        return _error(NOT_FOUND)

    def _control(self, method: str, path: str, request: dict[str, Any]) -> Answer:
        match method, path.split("/", 1):
            case "GET", ["stats"]:
                return Answer(200, self.stats())
            case "GET", ["connections"]:
                return Answer(200, self.counts())
            case "GET", ["connections", connection_id]:
                connection = self.connections.get(unquote(connection_id))
                if connection is None:
                    return _error(NOT_FOUND)
                frames = [frame.decode() for frame in connection.frames]
                return Answer(200, connection.counts() | {"frames": frames})
            case "POST", ["connections"]:
                return Answer(200, {"registered": self.register(request["ids"])})
            case "DELETE", ["connections"]:
                return Answer(200, {"registered": self.unregister(request.get("ids"))})
            case "PUT", ["behaviour"]:
                self.configure(**request)
                return Answer(200, dataclasses.asdict(self.behaviour))
            case "POST", ["reset"]:
                self.reset()
                return Answer(200, self.stats())
        return _error(NOT_FOUND)


def _error(kind: tuple[int, str, str]) -> Answer:
    status, error_type, message = kind
    return Answer(status, {"message": message}, error_type)


class _HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive (httptools parses; answers go out in request order)."""

    def __init__(self, simulator: GatewaySimulator) -> None:
        self._simulator = simulator
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._previous: asyncio.Future | None = None
        self._url = b""
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._body = b"", bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        request = (self._parser.get_method().decode(), self._url.decode(), bytes(self._body))
        self._previous = asyncio.ensure_future(self._answer(request, self._parser.should_keep_alive(), self._previous))

    async def _answer(self, request: tuple[str, str, bytes], keep_alive: bool, previous: asyncio.Future | None) -> None:
        answer = await self._simulator.route(*request)
        if previous is not None:
            await previous
        if self._transport.is_closing():
            return
        self._transport.write(_encode(answer))
        if not keep_alive:
            self._transport.close()


def _encode(answer: Answer) -> bytes:
    payload = b"" if answer.body is None else json.dumps(answer.body).encode()
    headers = [
        f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}",
        "content-type: application/json",
        f"content-length: {len(payload)}",
    ]
    if answer.error_type:
        headers.append(f"x-amzn-errortype: {answer.error_type}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


# --- control from another process -----------------------------------------------------------


class SimulatorClient:
    """The control API of a running simulator; `url` is also the management endpoint to point functions at."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=f"{url}{CONTROL_PREFIX}", timeout=60)

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def counts(self) -> dict[str, dict[str, int]]:
        return self._call("GET", "connections")

    def connection(self, connection_id: str) -> dict[str, Any]:
        return self._call("GET", f"connections/{quote(connection_id, safe='')}")

    def register(self, connection_ids: Iterable[str]) -> int:
        return self._call("POST", "connections", {"ids": list(connection_ids)})["registered"]

    def unregister(self, connection_ids: Iterable[str] | None = None) -> int:
        body = None if connection_ids is None else {"ids": list(connection_ids)}
        return self._call("DELETE", "connections", body)["registered"]

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._call("PUT", "behaviour", changes)

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "reset")

    def wait_until_settled(
        self, accepted: int, *, quiet: float = 3.0, idle: float = 60.0, timeout: float = 600.0
    ) -> dict[str, Any]:
        """Stats once `accepted` posts were accepted and no post came for `quiet` seconds.

        Gives up (returning the stats so far) when no post came for `idle` seconds,
        counting from the call, or after `timeout` seconds.
        """
        started = time.monotonic()
        posts, changed = -1, started
        while True:
            stats, now = self.stats(), time.monotonic()
            if stats["posts"] != posts:
                posts, changed = stats["posts"], now
            if stats["accepted"] >= accepted and now - changed >= quiet:
                return stats
            if now - changed >= idle or now - started >= timeout:
                return stats
            time.sleep(0.2)

    def close(self) -> None:
        self._http.close()


@contextlib.contextmanager
def simulator_process(**behaviour: Any) -> Iterator[SimulatorClient]:
    """A simulator in a child process on a free loopback port, stopped on exit."""
    options = [f"--{name.replace('_', '-')}={value}" for name, value in behaviour.items()]
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.lab.gateway_sim", "--port=0", *options],
        cwd=ROOT,
        stdin=subprocess.PIPE,  # closing it stops the simulator, even if this process dies
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = process.stdout.readline()
        if not ready:
            raise RuntimeError(f"the gateway simulator exited with {process.wait()} before listening")
        client = SimulatorClient(json.loads(ready)["url"])
        try:
            yield client
        finally:
            client.close()
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- command line ---------------------------------------------------------------------------


async def _run(port: int, behaviour: Behaviour) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def wait_for_stdin_eof() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
    server = await GatewaySimulator(behaviour).serve(port)
    print(json.dumps({"url": f"http://{HOST}:{server.sockets[0].getsockname()[1]}"}), flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    defaults = Behaviour()
    for name, value in dataclasses.asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args())
    port = args.pop("port")
    asyncio.run(_run(port, Behaviour(**args)))


if __name__ == "__main__":
    main()
