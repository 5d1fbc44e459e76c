"""`make demo`: a scripted walkthrough against the LOCAL stack, printed as a timeline.

    PYTHONPATH=clients/python python -m scripts.local.demo [--endpoints .local/endpoints.json]

Two users, three sessions (alice on a laptop and a phone, bob on a laptop),
all using the Python client (clients/python/realtime_client), which behaves
like the browser client. Events go to a user, a group and everyone; then a
session reloads, a firewall blocks bob's WebSocket, and alice's laptop loses
its connection. Each line says what a session received, when, and over which
transport; the end checks that every session got exactly what it should.
Needs `make up` first. Development only: it mints tokens with the local secret.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from realtime_client import RealtimeClient, exactly_once_in_order
from realtime_publisher import Publisher

from scripts.local.demo_server import check_local
from scripts.local.emulator import LOCAL_ENDPOINTS, emulator_client, read_endpoints
from scripts.local.mint_token import local_secret, mint_token

RUN = uuid.uuid4().hex[:6]
GROUP = "ops"
USERS = {"alice": [GROUP], "bob": [GROUP]}
COLOURS = {"alice/laptop": "\033[36m", "alice/phone": "\033[35m", "bob/laptop": "\033[33m"}
RESET, DIM, BOLD = "\033[0m", "\033[2m", "\033[1m"
USE_COLOUR = sys.stdout.isatty()


def paint(text: str, colour: str) -> str:
    return f"{colour}{text}{RESET}" if USE_COLOUR else text


class Timeline:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.quiet = False  # the sessions closing at the end are not news

    def line(self, who: str, text: str) -> None:
        elapsed = f"{time.monotonic() - self.started:6.2f}s"
        print(f"  {paint(elapsed, DIM)}  {paint(f'{who:<13}', COLOURS.get(who, BOLD))} {text}", flush=True)

    def step(self, title: str) -> None:
        print(f"\n{paint(title, BOLD)}", flush=True)


class Gate:
    """Between a session and the network: a firewall that refuses WebSockets, or an outage."""

    def __init__(self) -> None:
        self.blocked = False
        self.up = asyncio.Event()
        self.up.set()

    async def connect(self, url: str):
        if self.blocked:
            raise ConnectionRefusedError("WebSocket blocked by a firewall")
        await self.up.wait()
        return await RealtimeClient._default_ws_connect(url)


class Session:
    def __init__(self, name: str, user: str, endpoints: dict, secret: str, timeline: Timeline, cursor=None):
        self.name, self.user, self.timeline = name, user, timeline
        self.gate = Gate()
        self.received: list[tuple[dict, str]] = []
        watch = [f"presence:{other}" for other in USERS if other != user]
        self.client = RealtimeClient(
            endpoints["websocket_url"],
            endpoints["http_api_url"],
            lambda: mint_token(secret, user, USERS[user], watch, 900),
            ws_connect=self.gate.connect,
            cursor=cursor,
            name=name,
        )
        self.client.on("*", self._event)
        self.client.on_state(self._state)

    def _state(self, state: str, info: dict) -> None:
        if state != "closed" or not self.timeline.quiet:
            self.timeline.line(self.name, f"● {state}" + _reason(info))

    def _event(self, event: dict, meta) -> None:
        if event["type"].startswith("presence."):
            data = event.get("data") or {}
            self.timeline.line(
                self.name, f"◆ {data.get('userId')} is {event['type'].split('.')[1]}  via {meta.transport}"
            )
            return
        if not str(event.get("id", "")).startswith(f"demo-{RUN}-"):
            return  # someone else's event (the demo page, another run): not part of this story
        self.received.append((event, meta.transport))
        self.timeline.line(
            self.name,
            f"← {event['type']:<18} {event['topic']:<12} seq {event['seq']:<4} via {meta.transport:<9} "
            f"{json.dumps(event['data'])}",
        )

    def ids(self) -> set[str]:
        return {event["id"] for event, _ in self.received}

    async def wait_for(self, ids: Iterable[str], timeout: float = 30.0) -> None:
        wanted = set(ids)
        deadline = time.monotonic() + timeout
        while not wanted <= self.ids():
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not receive {wanted - self.ids()} within {timeout:.0f}s")
            await asyncio.sleep(0.05)


def _reason(info: dict) -> str:
    reason = info.get("reason") or ""
    return paint(f"  ({reason})", DIM) if reason and reason not in ("start", "websocket") else ""


class Story:
    def __init__(self, endpoints: dict):
        self.endpoints = endpoints
        self.secret = local_secret(endpoints)
        sqs = emulator_client(endpoints, "sqs")
        self.publisher = Publisher(endpoints["events_queue_url"], sqs_client=sqs)
        self.timeline = Timeline()
        self.sessions: dict[str, Session] = {}
        self.expected: dict[str, set[str]] = {}
        self.count = 0

    def session(self, name: str, user: str, cursor=None) -> Session:
        session = Session(name, user, self.endpoints, self.secret, self.timeline, cursor)
        self.sessions[name] = session
        self.expected.setdefault(name, set())
        return session

    def publish(self, event_type: str, audience: str, data: dict, to: Iterable[str]) -> str:
        self.count += 1
        event_id = f"demo-{RUN}-{self.count}"
        self.publisher.publish(event_type, data, audience=[audience], id=event_id)
        self.timeline.line("publisher", f"→ {event_type:<18} to {audience}")
        for name in to:
            self.expected[name].add(event_id)
        return event_id

    async def delivered(self, event_id: str, names: Iterable[str]) -> None:
        await asyncio.gather(*(self.sessions[name].wait_for([event_id]) for name in names))

    async def run(self) -> bool:
        t = self.timeline
        laptop, phone, bob = "alice/laptop", "alice/phone", "bob/laptop"
        everyone = [laptop, phone, bob]

        t.step("1. Three sessions connect: alice on a laptop and a phone, bob on a laptop (both in group ops)")
        for name, user in ((laptop, "alice"), (phone, "alice"), (bob, "bob")):
            await self.session(name, user).client.start()
        await asyncio.gather(*(s.client.wait_for_state("open") for s in self.sessions.values()))

        t.step("2. An event to one user: both of alice's sessions get it, bob does not")
        event = self.publish("order.shipped", "user:alice", {"orderId": "o-1001"}, [laptop, phone])
        await self.delivered(event, [laptop, phone])

        t.step(f"3. An event to a group: everyone in group:{GROUP}")
        event = self.publish("deploy.started", f"group:{GROUP}", {"service": "billing"}, everyone)
        await self.delivered(event, everyone)

        t.step("4. An event to everyone (the `all` topic)")
        event = self.publish("maintenance.notice", "all", {"at": "22:00"}, everyone)
        await self.delivered(event, everyone)

        t.step("5. alice reloads the page on her phone; an event is published while it reloads")
        saved = self.sessions[phone].client.cursor  # a page keeps it in sessionStorage
        await self.sessions[phone].client.close()
        old_phone = self.sessions.pop(phone)
        event = self.publish("order.updated", "user:alice", {"orderId": "o-1001", "status": "out for delivery"}, [])
        self.expected[laptop].add(event)
        await self.sessions[laptop].wait_for([event])
        await asyncio.sleep(0.5)
        new_phone = self.session(phone, "alice", cursor=saved)
        new_phone.received = list(old_phone.received)  # the same tab, as far as the story goes
        self.expected[phone].add(event)
        await new_phone.client.start()
        await new_phone.client.wait_for_state("open")
        await new_phone.wait_for([event])

        t.step("6. A firewall starts blocking bob's WebSocket: HTTP long polling carries on")
        bob_session = self.sessions[bob]
        bob_session.gate.blocked = True
        if bob_session.client.websocket is not None:
            bob_session.client.websocket.transport.abort()  # the firewall cuts the live socket too
        await bob_session.client.wait_for_state("fallback")
        event = self.publish("deploy.finished", f"group:{GROUP}", {"service": "billing", "ok": True}, everyone)
        await self.delivered(event, everyone)
        t.line(bob, paint("the firewall lets WebSockets through again", DIM))
        bob_session.gate.blocked = False
        bob_session.client.reconnect_now()
        await bob_session.client.wait_for_state("open")
        event = self.publish("chat.message", "user:bob", {"text": "welcome back"}, [bob])
        await self.delivered(event, [bob])

        t.step("7. alice's laptop loses its connection for 2 s; two events are published meanwhile")
        laptop_session = self.sessions[laptop]
        laptop_session.gate.up.clear()
        laptop_session.client.websocket.transport.abort()
        first = self.publish("order.shipped", "user:alice", {"orderId": "o-1002"}, [laptop, phone])
        second = self.publish("order.shipped", "user:alice", {"orderId": "o-1003"}, [laptop, phone])
        await self.sessions[phone].wait_for([first, second])
        await asyncio.sleep(2)
        t.line(laptop, paint("the network is back", DIM))
        laptop_session.gate.up.set()
        await laptop_session.client.wait_for_state("open")
        await laptop_session.wait_for([first, second])
        await asyncio.sleep(1.5)  # anything extra (a duplicate) would show up now
        self.timeline.quiet = True
        await self.close()
        return self.summary()

    def summary(self) -> bool:
        print(f"\n{paint('What each session received', BOLD)}")
        ok = True
        for name, session in self.sessions.items():
            events = [event for event, _ in session.received]
            via = {"websocket": 0, "http": 0}
            for _, transport in session.received:
                via[transport] += 1
            problems = exactly_once_in_order(events)
            if session.ids() != self.expected[name]:
                problems.append(f"expected {sorted(self.expected[name])}, got {sorted(session.ids())}")
            stats = session.client.tracker.stats
            mark = "✓" if not problems else "✗"
            ok = ok and not problems
            print(
                f"  {mark} {name:<13} {len(events)} events ({via['websocket']} over WebSocket, "
                f"{via['http']} over HTTP), each once, in order per topic; duplicates dropped: {stats.duplicates}, "
                f"gaps repaired: {stats.gaps_detected}, reconnects: {session.client.stats.opens - 1}, "
                f"fallbacks: {session.client.stats.fallbacks}"
            )
            for problem in problems:
                print(f"      {problem}")
        return ok

    async def close(self) -> None:
        await asyncio.gather(*(s.client.close() for s in self.sessions.values()))


async def main_async(endpoints: dict) -> bool:
    story = Story(endpoints)
    print(paint("Realtime events walkthrough", BOLD) + f" (local stack, run {RUN})")
    try:
        return await asyncio.wait_for(story.run(), 180)
    finally:
        await story.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, default=LOCAL_ENDPOINTS)
    args = parser.parse_args()
    endpoints = read_endpoints(args.endpoints)
    check_local(endpoints)
    sys.exit(0 if asyncio.run(main_async(endpoints)) else 1)


if __name__ == "__main__":
    main()
