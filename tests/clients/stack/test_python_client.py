"""The Python client against the real module on the emulator: WebSocket delivery,
a blocked WebSocket carried on by HTTP long polling, a socket killed mid-stream
with catch-up after reconnect, and gap repair when a frame is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import httpx
import pytest
import websockets
from realtime_client import ConnectionRefused, RealtimeClient, encode_cursor, exactly_once_in_order
from realtime_publisher import Publisher
from realtime_publisher.tokens import TokenMinter
from stored_events import write_events
from websockets.asyncio.server import serve

from scripts.local.mint_token import LOCAL_AUDIENCE, LOCAL_ISSUER

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Recorder:
    """Every event a client hands on, with its transport and arrival time."""

    def __init__(self, client: RealtimeClient):
        self.items: list[tuple[dict, str, float]] = []
        self._changed = asyncio.Event()
        client.on("*", self._record)

    def _record(self, event, meta) -> None:
        self.items.append((event, meta.transport, time.monotonic()))
        self._changed.set()

    def mine(self, ids: set[str] | list[str]) -> list[dict]:
        wanted = set(ids)
        return [event for event, _, _ in self.items if event["id"] in wanted]

    def transports(self, ids) -> list[str]:
        return [transport for event, transport, _ in self.items if event["id"] in set(ids)]

    def arrival(self, event_id: str) -> float:
        return next(at for event, _, at in self.items if event["id"] == event_id)

    async def wait_for_ids(self, ids, timeout: float = 30.0) -> None:
        async def until_all():
            while not set(ids) <= {event["id"] for event, _, _ in self.items}:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(until_all(), timeout)
        except TimeoutError:
            got = {event["id"] for event, _, _ in self.items}
            raise AssertionError(f"missing {set(ids) - got} after {timeout}s") from None


class Gate:
    """Stands between the client and the network: blocks or holds WebSocket opens, drops frames."""

    def __init__(self):
        self.blocked = False  # a firewall that refuses WebSockets
        self.open = asyncio.Event()  # cleared: handshakes hang (the network is down)
        self.open.set()
        self.drop_ids: set[str] = set()  # frames lost on the way (client side)
        self.opens = 0

    async def connect(self, url: str):
        if self.blocked:
            raise ConnectionRefusedError("WebSocket blocked by the gate")
        await self.open.wait()
        socket = await RealtimeClient._default_ws_connect(url)
        self.opens += 1
        return _Filtered(socket, self.drop_ids) if self.drop_ids else socket


class _Filtered:
    """A connection that loses the frames of chosen event ids."""

    def __init__(self, socket, drop_ids: set[str]):
        self._socket = socket
        self._drop = drop_ids
        self.transport = socket.transport

    def __aiter__(self):
        return self._frames()

    async def _frames(self):
        async for raw in self._socket:
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(raw).get("id") in self._drop:
                    continue
            yield raw

    async def send(self, message):
        await self._socket.send(message)

    async def close(self):
        await self._socket.close()


@pytest.fixture
def publisher(stack, aws):
    return Publisher(stack["events_queue_url"], sqs_client=aws("sqs"))


@pytest.fixture
def make_client(stack, token):
    def make(user: str, groups: list[str], gate: Gate | None = None, **options) -> RealtimeClient:
        return RealtimeClient(
            stack["websocket_url"],
            stack["http_api_url"],
            lambda: token(user, groups),
            ws_connect=gate.connect if gate else None,
            name=user,
            **options,
        )

    return make


def publish_each(publisher: Publisher, audience: str, count: int, kind: str = "test.step") -> list[str]:
    ids = [unique("evt") for _ in range(count)]
    for n, event_id in enumerate(ids):
        publisher.publish(kind, {"n": n}, audience=[audience], id=event_id)
    return ids


def assert_exactly_once_in_order(events: list[dict], ids: list[str]) -> None:
    """Every id once, and per topic in seq order without a gap (seq order is the
    server's processing order; a standard SQS queue does not keep publish order)."""
    assert sorted(e["id"] for e in events) == sorted(ids), "every event, once"
    assert exactly_once_in_order(events) == []


def per_topic(events: list[dict]) -> dict[str, list[tuple[int, str]]]:
    grouped: dict[str, list[tuple[int, str]]] = {}
    for event in events:
        grouped.setdefault(event["topic"], []).append((event["seq"], event["id"]))
    return grouped


def run(coroutine, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def test_events_arrive_over_the_websocket(make_client, publisher, timings):
    alice, team = unique("alice"), unique("team")

    async def scenario():
        client = make_client(alice, [team])
        received = Recorder(client)
        started = time.monotonic()
        async with client:
            await client.wait_for_state("open", timeout=30)
            timings("python: connect to open (websocket)", time.monotonic() - started)
            sent = time.monotonic()
            ids = publish_each(publisher, f"user:{alice}", 3) + publish_each(publisher, f"group:{team}", 2)
            await received.wait_for_ids(ids)
            events = received.mine(ids)
            assert_exactly_once_in_order(events, ids)
            assert set(received.transports(ids)) == {"websocket"}
            last = max(received.arrival(i) for i in ids)
            timings("python: first publish to last receipt, 5 events (websocket)", last - sent)
            assert {e["topic"] for e in events} == {f"user:{alice}", f"group:{team}"}

    run(scenario())


def test_a_blocked_websocket_changes_nothing_but_the_transport(make_client, publisher, timings):
    bob, team = unique("bob"), unique("team")

    async def scenario():
        gate = Gate()
        gate.blocked = True
        behind_firewall = make_client(bob, [team], gate, backoff={"initial": 0.5, "maximum": 2.0})
        on_socket = make_client(bob, [team])
        blocked_events, socket_events = Recorder(behind_firewall), Recorder(on_socket)
        started = time.monotonic()
        async with behind_firewall, on_socket:
            await behind_firewall.wait_for_state("fallback", timeout=30)
            timings("python: fallback switch-over (websocket refused at start)", time.monotonic() - started)
            await on_socket.wait_for_state("open", timeout=30)

            sent = time.monotonic()
            ids = publish_each(publisher, f"user:{bob}", 4) + publish_each(publisher, f"group:{team}", 2)
            await blocked_events.wait_for_ids(ids)
            await socket_events.wait_for_ids(ids)
            last = max(blocked_events.arrival(i) for i in ids)
            timings("python: first publish to last receipt, 6 events (http long poll)", last - sent)
            over_http = blocked_events.mine(ids)
            assert set(blocked_events.transports(ids)) == {"http"}
            assert_exactly_once_in_order(over_http, ids)
            # The same events with the same topics and seqs as the WebSocket session of the same user saw, in
            # the same order per topic (across topics, order is not part of the contract).
            assert per_topic(over_http) == per_topic(socket_events.mine(ids))
            assert behind_firewall.stats.opens == 0

            # The firewall opens: the client moves back to the WebSocket by itself.
            gate.blocked = False
            await behind_firewall.wait_for_state("open", timeout=30)
            assert behind_firewall.transport == "websocket"
            later = publish_each(publisher, f"user:{bob}", 2)
            await blocked_events.wait_for_ids(later)
            assert set(blocked_events.transports(later)) == {"websocket"}
            assert_exactly_once_in_order(blocked_events.mine(ids + later), ids + later)

    run(scenario())


def test_a_websocket_blocked_mid_session_hands_over_to_http_without_loss(make_client, publisher, timings):
    carol = unique("carol")

    async def scenario():
        gate = Gate()
        client = make_client(carol, [], gate)
        received = Recorder(client)
        async with client:
            await client.wait_for_state("open", timeout=30)
            before = publish_each(publisher, f"user:{carol}", 2)
            await received.wait_for_ids(before)
            # A firewall starts refusing WebSockets and cuts the live one.
            gate.blocked = True
            cut = time.monotonic()
            client.websocket.transport.abort()
            during = publish_each(publisher, f"user:{carol}", 3)
            await client.wait_for_state("fallback", timeout=30)
            timings("python: fallback switch-over (socket cut, websocket refused)", time.monotonic() - cut)
            await received.wait_for_ids(during)
            timings("python: socket cut to last event over http", max(received.arrival(i) for i in during) - cut)
            assert_exactly_once_in_order(received.mine(before + during), before + during)
            assert set(received.transports(during)) == {"http"}

    run(scenario())


def test_a_socket_killed_mid_stream_catches_up_without_gap_or_duplicate(make_client, publisher, timings):
    dave = unique("dave")

    async def scenario():
        gate = Gate()
        client = make_client(dave, [], gate)
        watcher = make_client(dave, [])  # another session of the same user, whose network stays up
        received, seen = Recorder(client), Recorder(watcher)
        async with client, watcher:
            await client.wait_for_state("open", timeout=30)
            await watcher.wait_for_state("open", timeout=30)
            ids: list[str] = []

            async def stream():
                for n in range(24):
                    event_id = unique("evt")
                    ids.append(event_id)
                    audience = [f"user:{dave}"]
                    await asyncio.to_thread(publisher.publish, "test.stream", {"n": n}, audience=audience, id=event_id)
                    await asyncio.sleep(0.1)

            streaming = asyncio.create_task(stream())
            await asyncio.sleep(0.8)
            # The network goes away: the socket dies abruptly and reconnects hang until it is back.
            gate.open.clear()
            client.websocket.transport.abort()
            await asyncio.sleep(1.5)
            published_while_down = list(ids)
            await seen.wait_for_ids(published_while_down)  # stored and delivered: only a catch-up can bring them now
            missed = [i for i in published_while_down if i not in {e["id"] for e in received.mine(ids)}]
            gate.open.set()
            restored = time.monotonic()
            await client.wait_for_state("open", timeout=30)
            await streaming
            await received.wait_for_ids(ids)
            events = received.mine(ids)
            assert_exactly_once_in_order(events, ids)
            assert client.stats.drops == 1
            assert client.stats.opens == 2
            assert len(missed) >= 5
            assert set(received.transports(missed)) == {"http"}, "missed events come from the catch-up read"
            caught_up = max(received.arrival(i) for i in missed)
            timings("python: catch-up after reconnect (GET /events on reopen)", client.stats.last_sync_seconds or 0.0)
            timings(f"python: network back to all {len(missed)} missed events delivered", caught_up - restored)

    run(scenario())


def test_a_lost_frame_is_repaired_from_http_before_newer_events(make_client, publisher, timings):
    erin = unique("erin")

    async def scenario():
        gate = Gate()
        ids = [unique("evt") for _ in range(5)]
        gate.drop_ids = {ids[2]}  # the third frame never arrives on the socket
        client = make_client(erin, [], gate)
        received = Recorder(client)
        async with client:
            await client.wait_for_state("open", timeout=30)
            for n, event_id in enumerate(ids):
                publisher.publish("test.step", {"n": n}, audience=[f"user:{erin}"], id=event_id)
                await asyncio.sleep(0.3)  # one at a time, so the jump is seen on the next frame
            await received.wait_for_ids(ids)
            events = received.mine(ids)
            assert_exactly_once_in_order(events, ids)
            assert client.tracker.stats.gaps_detected >= 1
            assert received.transports([ids[2]]) == ["http"]
            repair = client.stats.last_gap_repair_seconds or 0.0
            timings("python: gap repair (seq jump seen to gap filled from HTTP, 250 ms grace)", repair)

    run(scenario())


def test_a_silent_socket_is_detected_by_ping(make_client, publisher, timings):
    frank = unique("frank")

    async def scenario():
        client = make_client(frank, [], ping_interval=1.0, pong_timeout=1.0)
        received = Recorder(client)
        async with client:
            await client.wait_for_state("open", timeout=30)
            # Stop reading from the socket without closing it: to the client it looks silent.
            socket = client.websocket
            socket.transport.pause_reading()
            silenced = time.monotonic()
            ids = publish_each(publisher, f"user:{frank}", 2)
            await received.wait_for_ids(ids, timeout=30)
            timings("python: silent socket to events delivered (ping 1 s, pong 1 s)", time.monotonic() - silenced)
            assert client.stats.drops >= 1
            assert_exactly_once_in_order(received.mine(ids), ids)
            with contextlib.suppress(Exception):
                socket.transport.abort()

    run(scenario())


# --- where a client starts, history, retention, silent sockets ----------------------------------


def test_a_fresh_client_hands_on_none_of_450_stored_events_then_new_ones_once(
    make_client, publisher, events_table, timings
):
    gina = unique("gina")
    topic = f"user:{gina}"
    write_events(events_table, topic, 450)

    async def scenario():
        client = make_client(gina, [])
        received = Recorder(client)
        started = time.monotonic()
        async with client:
            await client.wait_for_state("open", timeout=30)
            timings("python: start to open, 450 stored events (since 'now')", time.monotonic() - started)
            ids = publish_each(publisher, topic, 3)
            await received.wait_for_ids(ids)
            await asyncio.sleep(0.5)  # anything else handed on would be here by now
            mine = [event for event, _, _ in received.items if event["topic"] == topic]
            assert sorted(event["id"] for event in mine) == sorted(ids)
            assert [event["seq"] for event in mine] == [451, 452, 453]

    run(scenario())


def test_since_retention_hands_on_all_450_in_order_once_then_new_ones(make_client, publisher, events_table, timings):
    hal = unique("hal")
    topic = f"user:{hal}"
    stored = [event["id"] for event in write_events(events_table, topic, 450)]

    async def scenario():
        client = make_client(hal, [], since="retention")
        received = Recorder(client)
        started = time.monotonic()
        async with client:
            await received.wait_for_ids(stored)
            timings("python: start to 450 stored events handed on (since 'retention')", time.monotonic() - started)
            await client.wait_for_state("open", timeout=30)
            ids = publish_each(publisher, topic, 2)
            await received.wait_for_ids(ids)
            mine = [event for event, _, _ in received.items if event["topic"] == topic]
            assert [event["id"] for event in mine[:450]] == stored
            assert [event["seq"] for event in mine] == list(range(1, 453))
            assert set(received.transports(stored)) == {"http"}

    run(scenario())


class Tap:
    """Opens real sockets and keeps every event frame they carry, as sent."""

    def __init__(self):
        self.frames: list[dict] = []

    async def connect(self, url: str):
        return _Tapped(await RealtimeClient._default_ws_connect(url), self.frames)


class _Tapped(_Filtered):
    def __init__(self, socket, frames: list[dict]):
        super().__init__(socket, set())
        self._kept = frames

    async def _frames(self):
        async for raw in self._socket:
            with contextlib.suppress(ValueError, AttributeError):
                frame = json.loads(raw)
                if "seq" in frame:
                    self._kept.append(frame)
            yield raw


def test_an_event_reaching_the_client_through_two_topics_is_one_frame_and_one_call(stack, publisher, token):
    erin, team = unique("erin"), unique("team")

    async def scenario():
        tap = Tap()
        client = RealtimeClient(
            stack["websocket_url"], stack["http_api_url"], lambda: token(erin, [team]), ws_connect=tap.connect
        )
        received = Recorder(client)
        async with client:
            await client.wait_for_state("open", timeout=30)
            (event_id,) = ids = [unique("evt")]
            publisher.publish("team.note", {"n": 1}, audience=[f"user:{erin}", f"group:{team}"], id=event_id)
            await received.wait_for_ids(ids)
            await asyncio.sleep(1)  # a second frame would have come by now

            # Over HTTP the same event is one item per topic (presence events of erin may come first on both).
            async with httpx.AsyncClient(timeout=40) as http:
                response = await http.get(
                    f"{stack['http_api_url']}/events", headers={"Authorization": f"Bearer {token(erin, [team])}"}
                )
            items = [item for item in response.json()["events"] if item["id"] == event_id]
            assert sorted(item["topic"] for item in items) == [f"group:{team}", f"user:{erin}"]
            assert all("seqs" not in item for item in items)
            seqs = {item["topic"]: item["seq"] for item in items}

            frames = [frame for frame in tap.frames if frame["id"] == event_id]
            assert len(frames) == 1, "posted once to this connection"
            assert frames[0]["seqs"] == seqs
            assert (frames[0]["topic"], frames[0]["seq"]) == (f"group:{team}", seqs[f"group:{team}"])
            (handed_on,) = received.mine(ids)
            assert handed_on["seqs"] == seqs
            # One frame moved both topics' positions (erin's presence.online on the group may come after it).
            assert all(client.tracker.positions[topic] >= seq for topic, seq in seqs.items())

    run(scenario())


@contextlib.asynccontextmanager
async def silent_websocket_server():
    """Accepts every WebSocket upgrade, then passes nothing either way (a middlebox gone quiet)."""

    async def swallow(connection):
        await connection.wait_closed()

    async with serve(swallow, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_a_socket_that_opens_but_passes_nothing_falls_back_to_long_polling(stack, token, publisher, timings):
    jo = unique("jo")

    async def scenario():
        async with silent_websocket_server() as silent_url:
            client = RealtimeClient(
                silent_url, stack["http_api_url"], lambda: token(jo), open_timeout=2, fallback_delay=60, name=jo
            )
            received = Recorder(client)
            started = time.monotonic()
            async with client:
                await client.wait_for_state("fallback", timeout=30)
                timings("python: silent socket to fallback (2 failed opens, 2 s each)", time.monotonic() - started)
                assert (client.stats.opens, client.stats.failed_opens) == (0, 2)
                sent = time.monotonic()
                ids = publish_each(publisher, f"user:{jo}", 3)
                await received.wait_for_ids(ids)
                latency = max(received.arrival(i) for i in ids) - sent
                timings("python: publish to receipt in fallback behind a silent socket, 3 events", latency)
                assert set(received.transports(ids)) == {"http"}
                assert latency < 5, "the long poll's latency, not a reconnect cycle's"

    run(scenario())


def test_after_events_past_retention_the_next_arrive_without_a_gap(make_client, publisher, events_table):
    ivy = unique("ivy")
    topic = f"user:{ivy}"
    past = int(time.time()) - 3600
    write_events(events_table, topic, 2)
    write_events(events_table, topic, 1, expires_at=past)  # seq 3: TTL has not deleted it yet
    saved = encode_cursor({topic: 2})  # a cursor from before it

    async def scenario():
        client = make_client(ivy, [], cursor=saved)
        received = Recorder(client)
        async with client:
            await client.wait_for_state("open", timeout=30)
            first = publish_each(publisher, topic, 1)  # seq 4
            await received.wait_for_ids(first)
            write_events(events_table, topic, 1, expires_at=past)  # seq 5, never delivered
            second = publish_each(publisher, topic, 1)  # seq 6: a jump on the socket
            await received.wait_for_ids(second)
            mine = [event for event, _, _ in received.items if event["topic"] == topic]
            assert [event["seq"] for event in mine] == [4, 6]
            assert client.tracker.stats.gaps_lost == 0

    run(scenario())


def test_the_session_past_the_users_limit_is_refused_with_a_clear_error(stack, token):
    """The local stack keeps the module's default max_sessions_per_user (10)."""
    frank = unique("frank")

    async def scenario():
        url = f"{stack['websocket_url']}?token={token(frank)}"
        sockets = [await websockets.connect(url, open_timeout=15) for _ in range(10)]
        errors: list[BaseException] = []
        client = RealtimeClient(
            stack["websocket_url"], stack["http_api_url"], lambda: token(frank), backoff={"initial": 0.5, "maximum": 1}
        )
        client.on_error(errors.append)
        async with client:
            await client.wait_for_state("fallback", timeout=30)  # the socket is refused; HTTP carries on
            refused = [error for error in errors if isinstance(error, ConnectionRefused)]
            assert refused, errors
            # AWS answers the handshake with $connect's 429; the emulator turns any refusal into a 403.
            assert (refused[0].status, refused[0].code) in {(429, "too_many_sessions"), (403, "refused")}

            await sockets.pop().close()  # a place frees up: the client's next try gets the socket
            await client.wait_for_state("open", timeout=30)
        for socket in sockets:
            await socket.close()

    run(scenario())


def test_the_consumer_path_sdk_token_roster_and_an_event(stack, aws, publisher):
    """What a new user's app does: tokens minted by the publisher SDK from the parameter the module
    reads, a client with a presence roster of the people it watches, and an event from the server."""
    minter = TokenMinter.from_ssm(
        stack["token_secret_ssm_parameter"], ssm_client=aws("ssm"), issuer=LOCAL_ISSUER, audience=LOCAL_AUDIENCE
    )
    watcher, watched, team = unique("ann"), unique("ben"), unique("desk")

    async def scenario():
        ann = RealtimeClient(
            stack["websocket_url"], stack["http_api_url"], lambda: minter.mint(watcher, topics=[f"presence:{watched}"])
        )
        ben = RealtimeClient(stack["websocket_url"], stack["http_api_url"], lambda: minter.mint(watched, groups=[team]))
        got: list[dict] = []
        ann.on("desk.note", lambda event, _meta: got.append(event))
        async with ann:
            await ann.wait_for_state("open", timeout=30)
            roster = await ann.presence_roster([watched])
            assert roster.members == {}  # ben is not connected yet
            came, left = asyncio.Event(), asyncio.Event()
            roster.on_added(lambda _m: came.set())
            roster.on_removed(lambda _m: left.set())

            async with ben:
                await ben.wait_for_state("open", timeout=30)
                await asyncio.wait_for(came.wait(), 30)
                assert list(roster.members) == [watched]
                assert roster.members[watched].version is not None
                # A fresh roster reads the same from GET /presence.
                assert watched in (await ann.presence_roster([watched])).members

            publisher.publish("desk.note", {"text": "hello"}, audience=[f"user:{watcher}"])
            await until_true(lambda: len(got) == 1, 30)
            assert got[0]["data"] == {"text": "hello"}
            await asyncio.wait_for(left.wait(), 60)  # ben's last session ended: offline after the grace period
            assert roster.members == {}

    run(scenario())


async def until_true(predicate, timeout: float) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)
