"""The Python client's state machine against in-process fakes of both transports:
WebSocket delivery, fallback to long polling and back, reconnect catch-up, gap
repair, silent sockets, tokens. Short timings keep each test under a second or two."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import websockets
from realtime_client import (
    ConnectionRefused,
    HttpError,
    PresenceRoster,
    PresenceUpdate,
    RealtimeClient,
    encode_cursor,
    exactly_once_in_order,
)
from realtime_client.client import RETRY_AFTER_MAX, retry_after_seconds
from websockets.datastructures import Headers
from websockets.http11 import Response

from .fakes import FakeServer

ROOT = Path(__file__).resolve().parents[3]

FAST = {
    "ping_interval": 0.2,
    "pong_timeout": 0.15,
    "open_timeout": 0.3,
    "fallback_delay": 0.6,
    "long_poll_wait": 1,
    "backoff": {"initial": 0.05, "maximum": 0.4},
}


@asynccontextmanager
async def running(setup=None, get_token=None, **options):
    server = FakeServer()
    if setup:
        setup(server)
    counter = itertools.count(1)
    client = RealtimeClient(
        "ws://ws.test/prod",
        "http://api.test/",
        get_token or (lambda: f"token-{next(counter)}"),
        ws_connect=server.ws_connect,
        http=server.http,
        **{**FAST, **options},
    )
    got: list[tuple[dict, str]] = []
    client.on("*", lambda event, meta: got.append((event, meta.transport)))
    await client.start()
    try:
        yield server, client, got
    finally:
        await client.close()


def keys(got) -> list[str]:
    return [f"{event['topic']}#{event['seq']}" for event, _ in got]


async def until(predicate, timeout: float = 3.0) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_websocket_delivery_never_reads_history_with_since_now():
    async def scenario():
        def history(server):
            server.publish("user:alice")
            server.publish("user:alice")

        async with running(history) as (server, client, got):
            assert await client.wait_for_state("open", timeout=2) == "open"
            assert server.open_sockets[0].token == "token-1"
            server.publish("user:alice")
            server.publish("group:ops")
            await until(lambda: len(got) == 2)
            assert keys(got) == ["user:alice#3", "group:ops#1"]
            assert {transport for _, transport in got} == {"websocket"}
            assert [r["params"] for r in server.event_requests()] == [{"since": "now", "limit": "200"}]

    run(scenario())


def test_since_retention_replays_first_page_by_page_in_order_once():
    async def scenario():
        def history(server):
            for topic in ("user:alice", "all", "user:alice", "group:ops", "user:alice"):
                server.publish(topic)

        async with running(history, since="retention", page_limit=2) as (server, client, got):
            await client.wait_for_state("open", timeout=2)
            server.publish("user:alice")
            await until(lambda: len(got) == 6)
            expected = ["user:alice#1", "all#1", "user:alice#2", "group:ops#1", "user:alice#3", "user:alice#4"]
            assert keys(got) == expected
            assert {transport for _, transport in got[:5]} == {"http"}
            assert "cursor" not in server.event_requests()[0]["params"]

    run(scenario())


def test_pings_keep_a_live_socket():
    async def scenario():
        async with running() as (server, client, _):
            await client.wait_for_state("open", timeout=2)
            await asyncio.sleep(0.7)
            assert len([m for m in server.open_sockets[0].sent if m == {"action": "ping"}]) >= 3
            assert client.stats.drops == 0

    run(scenario())


def test_pings_every_minute_by_default_like_the_browser_client_on_a_visible_page():
    # Each ping and its pong are billed messages; a silent socket is still found within 70 s (under 90).
    client = RealtimeClient("ws://ws.test", "http://api.test", lambda: "t")
    assert (client.ping_interval, client.pong_timeout) == (60.0, 10.0)
    browser = (ROOT / "clients/js/src/client.js").read_text()
    assert re.search(r"^  pingIntervalMs: (\d+),", browser, re.MULTILINE)[1] == "60000"
    assert re.search(r"^  pongTimeoutMs: (\d+),", browser, re.MULTILINE)[1] == "10000"


def test_drop_then_catch_up_without_gap_or_duplicate():
    async def scenario():
        async with running() as (server, client, got):
            await client.wait_for_state("open", timeout=2)
            server.publish("user:alice")
            await until(lambda: len(got) == 1)
            server.open_sockets[0].kill()
            await client.wait_for_state("connecting", timeout=2)
            server.publish("user:alice")  # while down
            server.publish("group:ops")
            await client.wait_for_state("open", timeout=3)
            server.publish("user:alice")
            await until(lambda: len(got) == 4)
            assert keys(got) == ["user:alice#1", "user:alice#2", "group:ops#1", "user:alice#3"]
            assert [t for _, t in got] == ["websocket", "http", "http", "websocket"]
            assert [s.token for s in server.all_sockets] == ["token-1", "token-2"]
            assert client.stats.last_sync_events == 2

    run(scenario())


def test_a_socket_closed_for_its_expired_token_reopens_at_once_with_a_new_token_and_loses_nothing():
    async def scenario():
        # A backoff far longer than the test: only an immediate reopen passes.
        async with running(backoff={"initial": 10, "maximum": 10}) as (server, client, got):
            states = []
            client.on_state(lambda state, info: states.append((state, info["reason"])))
            for n in range(4):  # more closes than max_drops_in_window
                await client.wait_for_state("open", timeout=2)
                server.publish("user:alice")
                # The last one only says so: the client closes the socket itself.
                server.open_sockets[0].expire_token(close=n < 3)
                server.publish("user:alice")  # while there is no socket
                await until(lambda n=n: client.stats.token_expiries == n + 1)
            await client.wait_for_state("open", timeout=2)
            await until(lambda: len(got) == 8)
            assert exactly_once_in_order(e for e, _ in got) == []
            assert [s.token for s in server.all_sockets] == [f"token-{n}" for n in range(1, 6)]
            assert (client.stats.token_expiries, client.stats.drops, client.stats.fallbacks) == (4, 0, 0)
            assert ("connecting", "token_expired") in states

    run(scenario())


def test_resumes_after_a_saved_cursor_without_loss_or_repeat():
    async def scenario():
        async with running() as (server, client, got):
            await client.wait_for_state("open", timeout=2)
            server.publish("user:alice")
            server.publish("group:ops")
            await until(lambda: len(got) == 2)
            saved = client.cursor
            await client.close()
            server.publish("user:alice")  # while the service restarts
            resumed = RealtimeClient(
                "ws://ws.test/prod",
                "http://api.test",
                lambda: "t",
                ws_connect=server.ws_connect,
                http=server.http,
                cursor=saved,
                **FAST,
            )
            again: list[str] = []
            resumed.on("*", lambda e, m: again.append(f"{e['topic']}#{e['seq']}/{m.transport}"))
            async with resumed:
                await resumed.wait_for_state("open", timeout=2)
                server.publish("all")
                await until(lambda: len(again) == 2)
            assert again == ["user:alice#2/http", "all#1/websocket"]

    run(scenario())


def test_a_missed_frame_is_repaired_before_the_next_is_handed_on():
    async def scenario():
        async with running() as (server, client, got):
            await client.wait_for_state("open", timeout=2)
            server.publish("user:alice")
            server.drop_frames = 1
            server.publish("user:alice")  # lost on the way
            server.publish("user:alice")
            server.publish("user:alice")
            await until(lambda: len(got) == 4)
            assert keys(got) == ["user:alice#1", "user:alice#2", "user:alice#3", "user:alice#4"]
            assert client.tracker.stats.gaps_detected == 1

    run(scenario())


def test_frames_that_overtook_each_other_are_reordered_without_http():
    async def scenario():
        async with running() as (server, client, got):
            await client.wait_for_state("open", timeout=2)
            requests = len(server.event_requests())
            socket = server.open_sockets[0]
            server.sockets.discard(socket)  # deliver by hand, out of order
            one, two, three = (server.publish("user:alice") for _ in range(3))
            for frame in (two, three, one):
                socket.queue.put_nowait(json.dumps(frame))
            await until(lambda: len(got) == 3)
            assert keys(got) == ["user:alice#1", "user:alice#2", "user:alice#3"]
            await asyncio.sleep(0.4)
            assert len(server.event_requests()) == requests, "no GET /events"

    run(scenario())


def test_a_silent_socket_is_declared_dead_and_replaced():
    async def scenario():
        async with running() as (server, client, got):
            await client.wait_for_state("open", timeout=2)
            server.publish("user:alice")
            silent = server.open_sockets[0]
            silent.go_silent()
            server.publish("user:alice")  # never arrives on the silent socket
            await until(lambda: client.stats.drops == 1)
            await until(lambda: len(got) == 2)
            assert silent.closed
            assert keys(got) == ["user:alice#1", "user:alice#2"]

    run(scenario())


def test_a_refused_cursor_starts_over_and_says_so():
    async def scenario():
        errors: list[BaseException] = []
        saved = encode_cursor({"user:alice": 7})  # from another deployment: past this one's last event
        async with running(cursor=saved) as (server, client, got):
            client.on_error(errors.append)
            await client.wait_for_state("open", timeout=2)
            server.publish("user:alice")
            await until(lambda: len(got) == 1)
            assert [getattr(error, "code", None) for error in errors] == ["invalid_cursor"]
            assert [r["params"].get("since", "cursor") for r in server.event_requests()] == ["cursor", "now"]
            assert keys(got) == ["user:alice#1"]

    run(scenario())


def test_401_gets_a_fresh_token():
    async def scenario():
        def setup(server):
            server.valid_tokens = {"token-1"}

        async with running(setup) as (server, client, got):
            await client.wait_for_state("open", timeout=2)
            server.valid_tokens = {"token-2"}
            server.drop_frames = 1
            server.publish("user:alice")
            server.publish("user:alice")  # gap -> GET /events -> 401 -> new token -> 200
            await until(lambda: len(got) == 2)
            assert [r["token"] for r in server.event_requests()][-2:] == ["token-1", "token-2"]

    run(scenario())


def test_a_failing_get_token_is_reported_and_retried():
    async def scenario():
        calls = itertools.count(1)

        def get_token():
            if next(calls) == 1:
                raise RuntimeError("token service down")
            return "token-2"

        async with running(get_token=get_token) as (_, client, _):
            errors = []
            client.on_error(errors.append)
            await client.wait_for_state("open", timeout=2)
            assert [str(error) for error in errors] == ["token service down"]

    run(scenario())


def test_blocked_websocket_falls_back_to_long_polling_with_the_same_events():
    async def scenario():
        async with running(lambda s: setattr(s, "block_websocket", True)) as (server, client, got):
            await client.wait_for_state("fallback", timeout=2)
            server.publish("user:alice")
            server.publish("group:ops")
            await until(lambda: len(got) == 2)
            assert keys(got) == ["user:alice#1", "group:ops#1"]
            assert {t for _, t in got} == {"http"}
            assert any(r["params"].get("wait") == "1" for r in server.event_requests())

    run(scenario())


def test_a_hanging_handshake_falls_back_after_the_delay():
    async def scenario():
        async with running(lambda s: setattr(s, "hang_websocket", True), open_timeout=5) as (_, client, _got):
            await asyncio.sleep(0.4)
            assert client.state == "connecting"
            await client.wait_for_state("fallback", timeout=1)

    run(scenario())


def test_moves_back_to_the_websocket_when_it_works_again():
    async def scenario():
        async with running(lambda s: setattr(s, "block_websocket", True)) as (server, client, got):
            await client.wait_for_state("fallback", timeout=2)
            server.publish("user:alice")
            await until(lambda: len(got) == 1)
            server.block_websocket = False
            server.publish("user:alice")
            await client.wait_for_state("open", timeout=3)
            assert client.transport == "websocket"
            before = len(server.event_requests())
            server.publish("user:alice")
            await until(lambda: len(got) == 3)
            await asyncio.sleep(1.2)
            assert len(server.event_requests()) == before, "polling stops once the socket is back"
            assert exactly_once_in_order(e for e, _ in got) == []
            assert got[-1][1] == "websocket"
            assert [state for _, state, _ in client.stats.states] == ["connecting", "fallback", "open"]

    run(scenario())


def test_a_socket_that_opens_but_never_answers_is_a_failed_open_two_fall_back():
    async def scenario():
        async with running(lambda s: setattr(s, "silent_websocket", True), fallback_delay=30) as (server, client, got):
            await client.wait_for_state("fallback", timeout=3)
            assert client.stats.failed_opens == 2
            assert client.stats.opens == 0
            assert all(socket.closed for socket in server.all_sockets[:2])
            server.publish("user:alice")
            await until(lambda: len(got) == 1)
            assert got[0][1] == "http"

    run(scenario())


def test_a_dropped_socket_replaced_by_silent_ones_falls_back():
    async def scenario():
        async with running(open_timeout=5) as (server, client, got):
            await client.wait_for_state("open", timeout=2)
            server.silent_websocket = True
            server.open_sockets[0].kill()
            await client.wait_for_state("fallback", timeout=2)  # fallback_delay, though a silent socket is open
            server.publish("user:alice")
            await until(lambda: len(got) == 1)
            assert got[0][1] == "http"

    run(scenario())


def test_a_socket_that_keeps_dropping_hands_over_to_http():
    async def scenario():
        async with running() as (server, client, got):
            for _ in range(3):
                await client.wait_for_state("open", timeout=3)
                server.open_sockets[0].kill()
                server.publish("user:alice")
                await asyncio.sleep(0.02)
            await client.wait_for_state("fallback", timeout=2)
            await until(lambda: len(got) == 3)
            assert exactly_once_in_order(e for e, _ in got) == []

    run(scenario())


def test_close_stops_everything():
    async def scenario():
        async with running() as (server, client, _):
            await client.wait_for_state("open", timeout=2)
            socket = server.open_sockets[0]
            await client.close()
            assert socket.closed
            assert client.state == "closed"
            assert not client._tasks

    run(scenario())


def test_handlers_that_fail_do_not_stop_delivery_and_presence_is_routed():
    async def scenario():
        def setup(server):
            server.topics.append("presence:bob")
            server.store["presence:bob"] = []

        async with running(setup) as (server, client, got):
            errors, presence, typed = [], [], []
            client.on_error(errors.append)
            client.on("test.event", lambda e, m: 1 / 0)
            off = client.on("order.updated", lambda e, m: typed.append(e["seq"]))
            client.on_presence(lambda p, m: presence.append((p.user_id, p.online, p.version)))

            async def async_handler(event, meta):
                typed.append("async")

            client.on("order.updated", async_handler)
            await client.wait_for_state("open", timeout=2)
            server.publish("user:alice")
            server.publish("user:alice", "order.updated")
            server.publish("presence:bob", "presence.online", {"userId": "bob", "version": 2})
            server.publish("presence:bob", "presence.offline", {"userId": "bob", "version": 1})  # stale
            await until(lambda: len(got) == 4)
            off()
            server.publish("user:alice", "order.updated")
            await until(lambda: len(got) == 5)
            await asyncio.sleep(0.01)
            assert len(errors) == 1
            assert typed.count(2) == 1
            assert typed.count("async") == 2
            assert presence == [("bob", True, 2)]

    run(scenario())


def test_a_refused_handshake_is_reported_with_its_reason_and_http_carries_on():
    async def scenario():
        errors: list[BaseException] = []

        async def too_many_sessions(_url):
            raise websockets.InvalidStatus(Response(429, "Too Many Requests", Headers()))

        async with running(lambda s: setattr(s, "ws_connect", too_many_sessions)) as (server, client, got):
            client.on_error(errors.append)
            await client.wait_for_state("fallback", timeout=5)
            server.publish("user:alice")
            await until(lambda: len(got) == 1)

        refused = [error for error in errors if isinstance(error, ConnectionRefused)]
        assert refused
        assert (refused[0].status, refused[0].code) == (429, "too_many_sessions")
        assert str(refused[0]) == "WebSocket refused: 429 too_many_sessions"

    run(scenario())


def test_a_handshake_refused_as_overloaded_is_not_retried_before_its_retry_after():
    async def scenario():
        attempts: list[float] = []

        async def overloaded(_url):
            attempts.append(time.monotonic())
            raise websockets.InvalidStatus(Response(503, "Service Unavailable", Headers({"Retry-After": "1"})))

        async with running(lambda s: setattr(s, "ws_connect", overloaded)) as (_server, client, _got):
            errors: list[BaseException] = []
            client.on_error(errors.append)
            await until(lambda: len(attempts) >= 3, timeout=5)

        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        assert min(gaps) >= 0.95  # the backoff alone is milliseconds here (FAST): Retry-After held it back
        refused = [error for error in errors if isinstance(error, ConnectionRefused)]
        assert (refused[0].status, refused[0].code, refused[0].retry_after) == (503, "try_later", 1.0)

    run(scenario())


# --- throttled reads (issue 20, finding 5) -------------------------------------------------------


def test_a_throttled_poll_waits_retry_after_then_carries_on():
    async def scenario():
        def throttled(server):
            server.block_websocket = True
            server.refusals = [(429, "1")]

        async with running(throttled) as (server, client, got):
            assert await client.wait_for_state("fallback", timeout=5) == "fallback"
            first, second = server.event_requests()[:2]
            assert second["at"] - first["at"] >= 1.0
            assert client.stats.throttled == 1
            server.publish("user:alice")
            await until(lambda: keys(got) == ["user:alice#1"])

    run(scenario())


def half(_: object = None) -> float:
    return 0.5


def test_throttled_answers_wait_retry_after_plus_full_jitter_that_grows_and_others_the_usual_backoff():
    client = RealtimeClient("ws://ws.test", "http://api.test", lambda: "t", backoff={"initial": 1.0, "rand": half})
    retry = client._retry_backoffs()

    delays = [
        client._retry_delay(HttpError(429, None, retry_after=3.0), retry),  # 3 s asked + half of 1 s
        client._retry_delay(HttpError(503, None), retry),  # full jitter: half of 2 s
        client._retry_delay(HttpError(500, None), retry),  # a throttled Lambda: half of 4 s
        client._retry_delay(HttpError(403, None, retry_after=60.0), retry),  # equal jitter: 0.5 + half of 0.5
        client._retry_delay(ConnectionError("unreachable"), retry),
    ]

    assert delays == [3.5, 1.0, 2.0, 0.75, 1.5]
    assert client.stats.throttled == 3
    retry.reset()
    assert client._retry_delay(HttpError(429, None), retry) == 0.5


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2026 07:28:05 GMT", 5.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # a date past: now
        ("86400", RETRY_AFTER_MAX),  # a wrong header does not park the client for a day
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("soon", None),
    ],
)
def test_retry_after_is_delay_seconds_or_an_http_date(value, seconds):
    now = 1_792_567_680.0  # Wed, 21 Oct 2026 07:28:00 GMT

    assert retry_after_seconds(value, now) == seconds


def test_two_producers_events_with_one_id_are_both_handed_on():
    async def scenario():
        async with running() as (server, client, got):
            await client.wait_for_state("open", timeout=2)
            socket = server.open_sockets[0]
            event = {"type": "t", "data": {}, "id": "o-17", "occurredAt": "x", "publishedAt": "x"}
            for key, topic in (("kShop", "user:alice"), ("kBill", "group:ops"), ("kBill", "all")):
                socket.queue.put_nowait(json.dumps({**event, "key": key, "topic": topic, "seq": 1}))
            await until(lambda: client.stats.tracker.duplicates == 1)
            assert keys(got) == ["user:alice#1", "group:ops#1"]

    run(scenario())


def test_dedupe_by_id_is_the_deprecated_name_of_dedupe_events():
    assert RealtimeClient("ws://ws.test", "http://api.test", lambda: "t").tracker.dedupe_events is True
    with pytest.warns(DeprecationWarning, match="dedupe_events"):
        client = RealtimeClient("ws://ws.test", "http://api.test", lambda: "t", dedupe_by_id=False)
    assert client.tracker.dedupe_events is False
    renamed = RealtimeClient("ws://ws.test", "http://api.test", lambda: "t", dedupe_events=False)
    assert renamed.tracker.dedupe_events is False


# --- presence rosters ------------------------------------------------------------------------------------------


def test_a_roster_starts_from_get_presence_and_follows_the_presence_events():
    async def scenario():
        def setup(server):
            for user in ("bob", "carol"):
                server.topics.append(f"presence:{user}")
                server.store[f"presence:{user}"] = []
            server.presence["bob"] = {"online": True, "sessions": 2, "lastSeen": "2026-12-06T10:00:00Z", "version": 4}
            server.presence["carol"] = {"online": False, "sessions": 0, "lastSeen": None, "version": 2}

        async with running(setup) as (server, client, _got):
            await client.wait_for_state("open", timeout=2)
            roster = await client.presence_roster(["bob", "carol"])
            seen = []
            roster.on_added(lambda m: seen.append(f"+{m.user_id}"))
            roster.on_removed(lambda m: seen.append(f"-{m.user_id}"))
            assert list(roster.members) == ["bob"]
            assert roster.members["bob"].sessions == 2
            (request,) = [r for r in server.requests if r["path"] == "/presence"]
            assert request["params"] == {"users": "bob,carol"}

            server.publish("presence:carol", "presence.online", {"userId": "carol", "version": 3, "lastSeen": "T11"})
            server.publish("presence:bob", "presence.offline", {"userId": "bob", "version": 6})
            await until(lambda: seen == ["+carol", "-bob"])
            assert list(roster.members) == ["carol"]
            assert roster.members["carol"].last_seen == "T11"

            roster.close()
            server.publish("presence:bob", "presence.online", {"userId": "bob", "version": 8})
            await asyncio.sleep(0.1)
            assert seen == ["+carol", "-bob"]

    run(scenario())


def test_a_roster_keeps_the_higher_version_whichever_arrives_first():
    roster = PresenceRoster(["bob", "dave"])
    seen = []
    roster.on_added(lambda m: seen.append(f"+{m.user_id}@{m.version}"))
    roster.on_removed(lambda m: seen.append(f"-{m.user_id}@{m.version}"))

    def update(user, online, version):
        return PresenceUpdate(user, online, version, {}, {})

    roster.apply_update(update("bob", False, 7))  # bob went offline at 7; the snapshot below was read at 5
    roster.apply_snapshot({"users": {"bob": {"online": True, "sessions": 1, "lastSeen": None, "version": 5}}})
    assert roster.members == {}
    roster.apply_snapshot({"users": {"dave": {"online": True, "sessions": 1, "lastSeen": None, "version": 9}}})
    roster.apply_update(update("dave", False, 8))  # older than the snapshot
    assert list(roster.members) == ["dave"]
    roster.apply_update(update("dave", False, 10))
    roster.apply_update(update("mallory", True, 1))  # not watched by this roster
    assert seen == ["+dave@9", "-dave@10"]
    assert roster.members == {}
