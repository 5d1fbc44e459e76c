"""asyncio client for realtime events: the browser client's behaviour, for services and tests.

    from realtime_client import RealtimeClient

    client = RealtimeClient(ws_url, http_url, get_token)      # get_token: () -> str (or awaitable)
    client.on("order.updated", lambda event, meta: print(event["data"], meta.transport))
    client.on_state(lambda state, info: print("state", state))
    await client.start()
    ...
    await client.close()

The WebSocket is preferred: opened with a fresh token, kept alive with
``{"action": "ping"}`` every minute (each ping and its pong are billed API
Gateway messages; a socket that goes silent is found within 70 s), reopened
with exponential backoff and jitter. Every
(re)connection and every seq jump is repaired from ``GET /events`` before
newer events are handed on, so handlers see every event once, in order per
topic. When the socket cannot open or keeps dropping, HTTP long polling takes
over and the socket is retried in the background; handlers do not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
import websockets
from websockets.asyncio.client import connect as ws_connect_default

from .tracker import (
    Backoff,
    Event,
    EventTracker,
    PresenceRoster,
    PresenceTracker,
    PresenceUpdate,
    Since,
    TrackerStats,
)

State = Literal["connecting", "open", "fallback", "closed"]
Transport = Literal["websocket", "http"]
TokenSource = Callable[[], str | Awaitable[str]]


@dataclass(frozen=True)
class Delivery:
    transport: Transport  # which transport carried the event
    received_at: float  # time.time() when it was handed on


@dataclass
class ClientStats:
    tracker: TrackerStats = field(default_factory=TrackerStats)  # delivered, duplicates, gaps detected and lost
    opens: int = 0
    drops: int = 0
    failed_opens: int = 0
    token_expiries: int = 0  # sockets the server closed because their token expired (reopened at once)
    fallbacks: int = 0
    syncs: int = 0
    last_sync_seconds: float | None = None  # duration of the last catch-up over HTTP
    last_sync_events: int = 0
    last_gap_repair_seconds: float | None = None  # seq jump seen -> the held frames handed on
    throttled: int = 0  # GET /events answers that said "not now" (429, 5xx): each backed off with full jitter
    states: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic, state, reason)


# The error frame the server sends just before it closes a socket whose token has expired (contract/wire.json).
TOKEN_EXPIRED = "token_expired"  # noqa: S105 (an error code, not a secret)

# What a refused handshake's status means (the $connect responses, docs/internals.md).
REFUSAL_CODES = {401: "invalid_token", 429: "too_many_sessions", 503: "try_later"}


class ConnectionRefused(RuntimeError):
    """The server refused the WebSocket handshake; ``status`` as it answered, ``code`` what that means.

    ``too_many_sessions`` (429): the user already has as many sessions as the
    deployment allows (max_sessions_per_user); close one. The client goes on
    over HTTP and keeps retrying the socket with backoff. ``try_later`` (503):
    the server is overloaded (a reconnect storm); ``retry_after`` is how long
    it asked the client to stay away, which the client waits at least.
    """

    def __init__(self, status: int, retry_after: float | None = None):
        self.status = status
        self.code = REFUSAL_CODES.get(status, "refused")
        self.retry_after = retry_after  # seconds Retry-After asked for; None when absent or unreadable
        super().__init__(f"WebSocket refused: {status} {self.code}")


# A Retry-After longer than this is taken as this: a wrong header must not park a client for hours.
RETRY_AFTER_MAX = 300.0
DELAY_SECONDS = re.compile(r"\d+")


def is_throttled(status: int) -> bool:
    """An answer that means "too many requests now": throttled (429), or an overloaded
    or throttled backend (5xx; a Lambda throttle reaches the client as a 500)."""
    return status == 429 or 500 <= status <= 599


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header in seconds from ``now`` (epoch seconds): delay-seconds or an
    HTTP date (RFC 9110); None when absent or unreadable, never below 0 nor above RETRY_AFTER_MAX."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if DELAY_SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # an HTTP date is GMT
            return None
        seconds = moment.timestamp() - now
    return min(RETRY_AFTER_MAX, max(0.0, seconds))


class HttpError(RuntimeError):
    def __init__(self, status: int, error: dict | None, *, retry_after: float | None = None):
        self.status = status
        self.code = (error or {}).get("code")
        self.retry_after = retry_after  # what Retry-After asked for, in seconds; None when absent or unreadable
        super().__init__(f"GET /events failed: {status} {self.code or ''} {(error or {}).get('message', '')}".strip())

    @property
    def throttled(self) -> bool:
        """429 or 5xx: the client waits Retry-After, then a full-jitter backoff, before reading again."""
        return is_throttled(self.status)


@dataclass
class _RetryBackoffs:
    """The backoffs of one reader: ``failed`` for errors, ``throttled`` (full jitter) for "not now" answers."""

    failed: Backoff
    throttled: Backoff

    def reset(self) -> None:
        self.failed.reset()
        self.throttled.reset()


def _http_error(response: httpx.Response) -> HttpError:
    """An answer other than 200 as the HttpError it means, with its Retry-After."""
    retry_after = retry_after_seconds(response.headers.get("Retry-After"), time.time())
    try:
        body = response.json()
    except ValueError:
        body = None
    details = body.get("error") if isinstance(body, dict) else None
    return HttpError(response.status_code, details if isinstance(details, dict) else None, retry_after=retry_after)


class LiveRoster(PresenceRoster):
    """A PresenceRoster a client feeds: its presence updates as they are handed on, GET /presence on refresh."""

    def __init__(self, users: Iterable[str], client: RealtimeClient) -> None:
        super().__init__(users)
        self._client = client
        self._stop = client.on_presence(lambda update, _meta: self.apply_update(update))

    async def refresh(self) -> LiveRoster:
        self.apply_snapshot(await self._client.get_presence(sorted(self.users)))
        return self

    def close(self) -> None:
        self._stop()


class RealtimeClient:
    def __init__(
        self,
        ws_url: str,
        http_url: str,
        get_token: TokenSource,
        *,
        since: Since = "now",  # "now": only events after starting; "retention": what the server holds first
        cursor: str | None = None,  # resume after a cursor saved from an earlier client's .cursor
        ping_interval: float = 60.0,  # ping and pong are billed; with pong_timeout a silent socket is found in 70 s
        pong_timeout: float = 10.0,  # no frame this long after a ping: the socket died silently
        open_timeout: float = 10.0,  # handshake and a first answer: a firewall may hang one, a proxy swallow the other
        fallback_after_failures: int = 2,  # consecutive failed opens before HTTP takes over
        fallback_delay: float = 5.0,  # ... or this long without a usable socket
        drop_window: float = 60.0,  # this many drops within the window count as "keeps dropping"
        max_drops_in_window: int = 3,
        stable_after: float = 30.0,  # a socket up this long resets the backoff
        gap_grace: float = 0.25,  # a seq jump waits this long for the late frame before reading the gap over HTTP
        long_poll_wait: int = 20,  # the server's maximum (API Gateway cuts requests at 29 s)
        page_limit: int = 200,
        backoff: dict[str, Any] | None = None,  # Backoff(**backoff): initial, maximum, factor (and jitter)
        dedupe_events: bool | None = None,  # one event on several of the client's topics handed on once
        dedupe_by_id: bool | None = None,  # deprecated: the former name of dedupe_events
        ws_connect: Callable[[str], Awaitable[Any]] | None = None,
        http: httpx.AsyncClient | None = None,
        name: str = "client",
    ) -> None:
        if since not in ("now", "retention"):
            raise ValueError("since must be 'now' or 'retention'")
        self.ws_url = ws_url
        self.http_url = http_url.rstrip("/")
        self.get_token = get_token
        self.since = since
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.open_timeout = open_timeout
        self.fallback_after_failures = fallback_after_failures
        self.fallback_delay = fallback_delay
        self.drop_window = drop_window
        self.max_drops_in_window = max_drops_in_window
        self.stable_after = stable_after
        self.gap_grace = gap_grace
        self.long_poll_wait = long_poll_wait
        self.page_limit = page_limit
        self.name = name
        self._backoff_options = backoff or {}
        self._ws_connect = ws_connect or self._default_ws_connect
        self._http = http
        self._own_http = http is None

        self.tracker = EventTracker(dedupe_events=dedupe_events, dedupe_by_id=dedupe_by_id, since=since)
        if cursor:
            self.tracker.restore(cursor)
        self.presence = PresenceTracker()
        self.backoff = Backoff(**self._backoff_options)
        self.stats = ClientStats(self.tracker.stats)
        self.state: State = "connecting"
        self.transport: Transport | None = None
        self.websocket: Any = None  # the open connection, or None

        self._handlers: dict[str, list[Callable]] = {}
        self._presence_handlers: list[Callable] = []
        self._state_handlers: list[Callable] = []
        self._error_handlers: list[Callable] = []
        self._state_changed = asyncio.Event()
        self._token: str | None = None
        self._ws_open = False
        self._failures = 0
        self._asked_to_wait = 0.0  # seconds the last refused handshake asked the client to stay away (Retry-After)
        self._drop_times: list[float] = []
        self._closed = False
        self._started = False
        self._wake = asyncio.Event()  # cut a reconnect delay short
        self._frame_seen = asyncio.Event()  # any frame since the last ping
        self._token_expired = False  # the open socket's token expired: it closes, a new one opens at once
        self._ws_task: asyncio.Task | None = None
        self._poll_task: asyncio.Task | None = None
        self._fallback_task: asyncio.Task | None = None
        self._gap_task: asyncio.Task | None = None
        self._gap_seen_at: float | None = None
        self._sync_task: asyncio.Task | None = None
        self._sync_again = False
        self._tasks: set[asyncio.Task] = set()

    # -- public API ---------------------------------------------------------------

    @property
    def cursor(self) -> str | None:
        """Where this client is: pass it as ``cursor`` to a later client to resume without loss."""
        return self.tracker.fetch_cursor()

    def on(self, event_type: str, handler: Callable[[Event, Delivery], Any]) -> Callable[[], None]:
        """Handle events of one type ('*' for every type); returns a function that unsubscribes."""
        self._handlers.setdefault(event_type, []).append(handler)
        return lambda: self._handlers.get(event_type, []).remove(handler)

    def on_presence(self, handler: Callable[[PresenceUpdate, Delivery], Any]) -> Callable[[], None]:
        self._presence_handlers.append(handler)
        return lambda: self._presence_handlers.remove(handler)

    def on_state(self, handler: Callable[[str, dict], Any]) -> Callable[[], None]:
        """handler(state, info) on every change of connecting | open | fallback | closed."""
        self._state_handlers.append(handler)
        return lambda: self._state_handlers.remove(handler)

    def on_error(self, handler: Callable[[BaseException], Any]) -> Callable[[], None]:
        self._error_handlers.append(handler)
        return lambda: self._error_handlers.remove(handler)

    async def start(self) -> RealtimeClient:
        if self._started:
            return self
        self._started = True
        if self._http is None:
            self._http = httpx.AsyncClient()
        self._set_state("connecting", "start")
        self._arm_fallback_timer()
        self._ws_task = self._spawn(self._ws_loop())
        return self

    async def wait_for_state(self, *states: str, timeout: float = 30.0) -> str:
        """Wait until the client is in one of ``states``; returns it."""

        async def reached() -> str:
            while self.state not in states:
                self._state_changed.clear()
                await self._state_changed.wait()
            return self.state

        return await asyncio.wait_for(reached(), timeout)

    def reconnect_now(self) -> None:
        """Retry the WebSocket now instead of after the backoff."""
        if self._closed or self._ws_open:
            return
        self.backoff.reset()
        self._wake.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [task for task in self._tasks if not task.done() and task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if self.websocket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.websocket.close(), 2)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_http and self._http is not None:
            await self._http.aclose()
        self.websocket = None
        self._ws_open = False
        self.transport = None
        self._set_state("closed", "close()")

    async def __aenter__(self) -> RealtimeClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- tasks ----------------------------------------------------------------------

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._emit_error(task.exception())

    # -- WebSocket ------------------------------------------------------------------

    @staticmethod
    async def _default_ws_connect(url: str) -> Any:
        # Pings are sent by this client as {"action": "ping"} frames, the way the
        # browser has to (it cannot send protocol pings); they also keep API
        # Gateway's idle timer from closing the socket.
        return await ws_connect_default(url, ping_interval=None, open_timeout=None, close_timeout=2)

    async def _ws_loop(self) -> None:
        while not self._closed:
            self._asked_to_wait = 0.0
            expired = await self._ws_attempt()
            if self._closed:
                return
            if expired:
                continue  # not a failure: reopen at once, with a new token
            self._wake.clear()
            # A refusal that said when to come back is honoured: never sooner (a storm spreads out that way).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(self.backoff.next(), self._asked_to_wait))

    async def _ws_attempt(self) -> bool:
        """One socket, from opening to its end; True if it ended because its token expired."""
        try:
            token = await self._fresh_token()
        except Exception as error:  # the application's get_token failed: tell it; there is no socket either
            self._emit_error(error)
            self._socket_failed(error)
            return False
        try:
            separator = "&" if "?" in self.ws_url else "?"
            socket, first_frame, frames = await asyncio.wait_for(
                self._open(f"{self.ws_url}{separator}token={quote(token, safe='')}"), self.open_timeout
            )
        except websockets.InvalidStatus as refusal:  # the server answered the handshake, with a reason
            asked = retry_after_seconds(refusal.response.headers.get("Retry-After"), time.time())
            error = ConnectionRefused(refusal.response.status_code, asked)
            self._asked_to_wait = asked or 0.0
            self._emit_error(error)
            self._socket_failed(error)
            return False
        except Exception as error:  # blocked, timed out, silent, unreachable: all mean "no socket"
            self._socket_failed(error)
            return False
        self._token_expired = False
        self._socket_opened(socket)
        self._on_message(first_frame)
        reason = "closed"
        heartbeat = self._spawn(self._heartbeat(socket))
        stable = self._spawn(self._stable_timer())
        try:
            async for raw in frames:
                self._frame_seen.set()
                self._on_message(raw)
        except websockets.ConnectionClosed as closed:
            reason = f"closed {closed.rcvd.code if closed.rcvd else 1006}"
        finally:
            heartbeat.cancel()
            stable.cancel()
            if not self._closed:
                self._socket_expired() if self._token_expired else self._socket_dropped(reason)
        return self._token_expired

    async def _open(self, url: str) -> tuple[Any, str | bytes, AsyncIterator[str | bytes]]:
        """Connect and wait for a first frame: a proxy may accept the upgrade and then pass
        nothing, so the socket counts as open once it answers a ping."""
        socket = await self._ws_connect(url)
        frames = aiter(socket)
        try:
            await socket.send(json.dumps({"action": "ping"}))
            return socket, await anext(frames), frames
        except BaseException:  # closed, or silent until the open timeout cancels this
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket.close(), 2)
            raise

    def _socket_failed(self, error: BaseException) -> None:
        self._failures += 1
        self.stats.failed_opens += 1
        if self._failures >= self.fallback_after_failures:
            self._enter_fallback(f"websocket cannot open: {type(error).__name__}")

    def _socket_opened(self, socket: Any) -> None:
        self.websocket = socket
        self._ws_open = True
        self._failures = 0
        self.stats.opens += 1
        self.transport = "websocket"
        self._frame_seen = asyncio.Event()
        self._cancel(self._fallback_task)
        self._stop_polling()  # the socket carries events again
        # Anything published while there was no socket is read over HTTP first;
        # live frames that arrive meanwhile are held and released in order.
        self.tracker.begin_sync()
        sync = self._request_sync()

        def announce(_: asyncio.Task) -> None:
            if self.websocket is socket and self._ws_open and not self._closed:
                self._set_state("open", "websocket")

        sync.add_done_callback(announce)

    def _on_message(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            return
        if not isinstance(frame, dict) or frame.get("type") == "pong":
            return
        if frame.get("type") == "error" and "seq" not in frame:
            if (frame.get("error") or {}).get("code") == TOKEN_EXPIRED:
                self._token_expiring()
                return
            self._emit_error(RuntimeError(f"error frame: {frame.get('error')}"))
            return
        result = self.tracker.offer_live(frame)
        self._dispatch(result.deliver, "websocket")
        if result.need_sync:
            self._gap_detected()
        elif self._gap_task is not None and not self._gap_task.done() and not self._sync_running():
            self._try_close_gap()

    def _gap_detected(self) -> None:
        if self._gap_seen_at is None:
            self._gap_seen_at = time.monotonic()
        # Frames of one topic can overtake each other (the server delivers from
        # concurrent workers), so a missing frame is usually just late: wait a
        # moment for it before reading the gap over HTTP.
        if self._sync_running() or self.gap_grace <= 0:
            self._request_sync()
        elif self._gap_task is None or self._gap_task.done():

            async def later() -> None:
                await asyncio.sleep(self.gap_grace)
                self._gap_task = None
                self._request_sync()

            self._gap_task = self._spawn(later())

    def _try_close_gap(self) -> None:
        result = self.tracker.end_sync(force=False)
        self._dispatch(result.deliver, "websocket")
        if not result.gap_remaining:
            self._cancel(self._gap_task)  # the late frame came: no HTTP needed
            self._gap_task = None
            self._gap_closed()

    def _gap_closed(self) -> None:
        if self._gap_seen_at is not None:
            self.stats.last_gap_repair_seconds = time.monotonic() - self._gap_seen_at
            self._gap_seen_at = None

    def _sync_running(self) -> bool:
        return self._sync_task is not None and not self._sync_task.done()

    async def _heartbeat(self, socket: Any) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            self._frame_seen.clear()
            with contextlib.suppress(websockets.ConnectionClosed):
                await socket.send(json.dumps({"action": "ping"}))
            try:
                await asyncio.wait_for(self._frame_seen.wait(), self.pong_timeout)
            except TimeoutError:
                # Silently dead (no FIN, no RST): give up on it without waiting for the OS.
                transport = getattr(socket, "transport", None)
                if transport is not None:
                    transport.abort()
                else:
                    await socket.close()
                return

    async def _stable_timer(self) -> None:
        await asyncio.sleep(self.stable_after)
        self.backoff.reset()

    def _token_expiring(self) -> None:
        """The server said the socket's token expired: close it (the server does too) and reopen at once."""
        self._token_expired = True
        socket = self.websocket
        if socket is not None:
            self._spawn(socket.close())

    def _socket_ended(self) -> None:
        self.websocket = None
        self._ws_open = False
        self.transport = "http" if self._poll_task and not self._poll_task.done() else None

    def _socket_expired(self) -> None:
        # Not a drop: it counts toward no fallback, and the next socket opens without a backoff.
        self._socket_ended()
        self.stats.token_expiries += 1
        self.backoff.reset()
        self._set_state("connecting", TOKEN_EXPIRED)
        self._arm_fallback_timer()

    def _socket_dropped(self, reason: str) -> None:
        self._socket_ended()
        self.stats.drops += 1
        now = time.monotonic()
        self._drop_times = [at for at in self._drop_times if now - at < self.drop_window] + [now]
        if len(self._drop_times) >= self.max_drops_in_window or self.state == "fallback":
            self._enter_fallback("websocket keeps dropping")
        else:
            self._set_state("connecting", reason)
            self._arm_fallback_timer()

    # -- HTTP -----------------------------------------------------------------------

    async def _fresh_token(self) -> str:
        token = self.get_token()
        if inspect.isawaitable(token):
            token = await token
        self._token = token
        return token

    async def get_presence(self, users: Iterable[str]) -> dict:
        """The presence of ``users`` now (``GET /presence``): ``{"users": {<id>: {"online", "sessions",
        "lastSeen", "version"}}}``, only users the token may watch (its own, presence:<id> topics, shared
        groups). Raises HttpError. Needs the client started (its HTTP client)."""
        if self._http is None:
            raise RuntimeError("start the client first (async with client, or await client.start())")
        token = self._token or await self._fresh_token()
        for attempt in range(2):
            response = await self._http.get(
                f"{self.http_url}/presence",
                params={"users": ",".join(users)},
                headers={"Authorization": f"Bearer {token}"},
                timeout=15,
            )
            if response.status_code == 401 and attempt == 0:
                token = await self._fresh_token()
                continue
            if response.status_code != 200:
                raise _http_error(response)
            return response.json()
        raise AssertionError("unreachable")

    async def presence_roster(self, users: Iterable[str]) -> LiveRoster:
        """A live members view of ``users``: ``GET /presence`` merged with the presence events this client
        hands on (the token must carry them: presence:<id> topics, or group presence). Returns once the
        first answer is merged; ``await roster.refresh()`` reads it again, ``roster.close()`` stops following."""
        roster = LiveRoster(users, self)
        await roster.refresh()
        return roster

    async def _get_events(self, wait: int = 0) -> dict:
        assert self._http is not None
        query = self.tracker.fetch_query()
        params: dict[str, Any] = {**query, "limit": self.page_limit}
        if wait > 0:
            params["wait"] = wait
        token = self._token or await self._fresh_token()
        for attempt in range(2):
            response = await self._http.get(
                f"{self.http_url}/events",
                params=params,
                headers={"Authorization": f"Bearer {token}"},
                timeout=wait + 15,
            )
            if response.status_code == 401 and attempt == 0:
                token = await self._fresh_token()  # expired or rotated: one retry with a new token
                continue
            if response.status_code != 200:
                error = _http_error(response)
                if error.code == "invalid_cursor" and "cursor" in query:
                    # Not a cursor of this deployment (saved from elsewhere, a table rebuilt): say so, start over.
                    self._emit_error(error)
                    self.tracker.reset()
                    return await self._get_events(wait)
                raise error
            return response.json()
        raise AssertionError("unreachable")

    def _request_sync(self) -> asyncio.Task:
        """Catch up over HTTP (one at a time; a request during one runs once more after it)."""
        self._cancel(self._gap_task)
        self._gap_task = None
        if self._sync_running():
            self._sync_again = True
            return self._sync_task
        self._sync_task = self._spawn(self._sync_loop())
        return self._sync_task

    async def _sync_loop(self) -> None:
        while True:
            self._sync_again = False
            await self._sync_once()
            if not self._sync_again or self._closed:
                return

    async def _sync_once(self) -> None:
        started = time.monotonic()
        retry = self._retry_backoffs()
        count = 0
        self.tracker.begin_sync()
        passes = 0
        while not self._closed:
            try:
                count += await self._drain()
            except Exception as error:
                self._emit_error(error)
                await asyncio.sleep(self._retry_delay(error, retry))
                continue
            # A frame still ahead of a gap after a full read means the server lost
            # those events (retention): hand it on rather than stall for ever.
            result = self.tracker.end_sync(force=passes >= 1)
            self._dispatch(result.deliver, "websocket")
            count += len(result.deliver)
            if not result.gap_remaining:
                break
            passes += 1
            self.tracker.begin_sync()
        self.stats.syncs += 1
        self.stats.last_sync_seconds = time.monotonic() - started
        self._gap_closed()
        self.stats.last_sync_events = count

    def _retry_backoffs(self) -> _RetryBackoffs:
        return _RetryBackoffs(
            failed=Backoff(**self._backoff_options),
            throttled=Backoff(**{**self._backoff_options, "jitter": "full"}),
        )

    def _retry_delay(self, error: Exception, retry: _RetryBackoffs) -> float:
        """How long a reader waits after a failed read. A throttled answer (429, 5xx) waits
        what Retry-After asks, then a full-jitter share of the backoff, so clients told the
        same moment do not all come back at it; anything else takes the usual backoff."""
        if not (isinstance(error, HttpError) and error.throttled):
            return retry.failed.next()
        self.stats.throttled += 1
        return (error.retry_after or 0.0) + retry.throttled.next()

    async def _drain(self) -> int:
        """Read GET /events from the cursor until hasMore is false; returns how many were handed on."""
        count = 0
        while True:
            page, handed_on = await self._read_page()
            count += handed_on
            if not page.get("hasMore"):
                return count

    async def _read_page(self, wait: int = 0) -> tuple[dict, int]:
        """One page of GET /events, handed on; returns it and how many of its events were new."""
        page = await self._get_events(wait)
        deliver = self.tracker.apply_page(page)
        self._dispatch(deliver, "http")
        return page, len(deliver)

    # -- fallback: HTTP long polling --------------------------------------------------

    def _arm_fallback_timer(self) -> None:
        if self._closed or self.state == "fallback" or (self._fallback_task and not self._fallback_task.done()):
            return

        async def later() -> None:
            await asyncio.sleep(self.fallback_delay)
            if not self._ws_open:
                self._enter_fallback("no websocket yet")

        self._fallback_task = self._spawn(later())

    def _enter_fallback(self, reason: str) -> None:
        if self._closed or self._ws_open:
            return
        self._cancel(self._fallback_task)
        if self._poll_task is None or self._poll_task.done():
            self.transport = "http"
            self._poll_task = self._spawn(self._poll_loop(reason))

    async def _poll_loop(self, reason: str) -> None:
        retry = self._retry_backoffs()
        # The first read (or a catch-up) without waiting; shielded so that
        # stopping the poll does not cancel a catch-up the socket relies on.
        await asyncio.shield(self._request_sync())
        if self.state != "fallback" and not self._ws_open:
            # Announced once HTTP has read the cursor: from here on nothing is missed.
            self.stats.fallbacks += 1
            self._set_state("fallback", reason)
        while not self._closed:
            if self._sync_task is not None and not self._sync_task.done():
                await asyncio.shield(self._sync_task)
            try:
                await self._read_page(wait=0 if self.tracker.syncing else self.long_poll_wait)
            except Exception as error:
                self._emit_error(error)
                await asyncio.sleep(self._retry_delay(error, retry))
                continue
            retry.reset()

    def _stop_polling(self) -> None:
        self._cancel(self._poll_task)
        self._poll_task = None

    @staticmethod
    def _cancel(task: asyncio.Task | None) -> None:
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    # -- delivery to the application --------------------------------------------------

    def _dispatch(self, events: list[Event], transport: Transport) -> None:
        for event in events:
            meta = Delivery(transport, time.time())
            for handler in [*self._handlers.get(event.get("type", ""), []), *self._handlers.get("*", [])]:
                self._call(handler, event, meta)
            presence = self.presence.update(event)
            if presence is not None:
                for handler in list(self._presence_handlers):
                    self._call(handler, presence, meta)

    def _call(self, handler: Callable, *args: Any) -> None:
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                self._spawn(result)
        except Exception as error:  # one broken handler must not stop delivery
            self._emit_error(error)

    def _set_state(self, state: State, reason: str = "") -> None:
        if state == self.state and self.stats.states:
            return
        self.state = state
        self.stats.states.append((time.monotonic(), state, reason))
        self._state_changed.set()
        for handler in list(self._state_handlers):
            self._call(handler, state, {"reason": reason})

    def _emit_error(self, error: BaseException) -> None:
        for handler in list(self._error_handlers):
            with contextlib.suppress(Exception):
                handler(error)


async def connect(ws_url: str, http_url: str, get_token: TokenSource, **options: Any) -> RealtimeClient:
    """Create a client and start it (add handlers before, or use ``since="retention"``)."""
    return await RealtimeClient(ws_url, http_url, get_token, **options).start()
