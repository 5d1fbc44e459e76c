"""Producer to browser on the emulator: delivery, catch-up, idempotency, auth, poison."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict

import httpx
import jwt
import pytest
import websockets
from dead_letters import dead_letter_reasons
from measurements import LATENCIES
from realtime_publisher import Event, Publisher
from sessions import Session

from scripts.local.mint_token import LOCAL_AUDIENCE

pytestmark = pytest.mark.integration

# A frame is an HTTP item plus `seqs`: the seq of each of its topics that reaches this connection.
# `key`: the stored event's opaque key, what clients dedupe on.
FRAME_KEYS = {"id", "key", "type", "topic", "seq", "seqs", "data", "occurredAt", "publishedAt"}


def unique(prefix: str) -> str:
    """Names unique to one test, since every test shares one stack."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def send_raw(sqs, queue_url: str, message: dict) -> float:
    sent_at = time.time()
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))
    return sent_at


async def get_events(http_url: str, token: str, **params) -> httpx.Response:
    async with httpx.AsyncClient(timeout=40) as client:
        return await client.get(f"{http_url}/events", params=params, headers={"Authorization": f"Bearer {token}"})


async def read_all(http_url: str, token: str, limit: int) -> tuple[list[dict], str, int]:
    """Follow the cursor until hasMore is false; returns events, last cursor, pages."""
    events, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await get_events(http_url, token, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["events"]
        cursor, pages = page["cursor"], pages + 1
        assert len(page["events"]) <= limit
        if not page["hasMore"]:
            return events, cursor, pages


def by_topic(events: list[dict]) -> dict[str, list[tuple[int, str]]]:
    grouped = defaultdict(list)
    for event in events:
        grouped[event["topic"]].append((event["seq"], event["id"]))
    return dict(grouped)


def test_every_session_in_the_audience_receives_the_event_and_no_other(stack, aws, token):
    alice, bob, team = unique("alice"), unique("bob"), unique("team")
    sqs = aws("sqs")
    publisher = Publisher(stack["events_queue_url"], sqs_client=sqs)

    async def scenario():
        url = stack["websocket_url"]
        alice_1 = await Session.open(url, token(alice, [team]), "alice-1")
        alice_2 = await Session.open(url, token(alice, [team]), "alice-2")
        bob_1 = await Session.open(url, token(bob, [team]), "bob-1")
        sessions = [alice_1, alice_2, bob_1]
        expected: dict[str, set[str]] = {s.name: set() for s in sessions}
        sent_at: dict[str, float] = {}

        # Raw SQS, the producer contract itself.
        to_alice = unique("evt")
        sent_at[to_alice] = send_raw(
            sqs,
            stack["events_queue_url"],
            {"type": "order.updated", "id": to_alice, "data": {"orderId": "o-1"}, "audience": [f"user:{alice}"]},
        )
        expected["alice-1"].add(to_alice)
        expected["alice-2"].add(to_alice)

        # The SDK, one at a time and batched.
        to_bob = unique("evt")
        sent_at[to_bob] = time.time()
        publisher.publish("order.shipped", {"orderId": "o-2"}, audience=[f"user:{bob}"], id=to_bob)
        expected["bob-1"].add(to_bob)

        to_team = [unique("evt") for _ in range(3)]
        now = time.time()
        publisher.publish_many([Event("team.note", {"n": n}, [f"group:{team}"], eid) for n, eid in enumerate(to_team)])
        for event_id in to_team:
            sent_at[event_id] = now
            for session in sessions:
                expected[session.name].add(event_id)

        for session in sessions:
            await session.wait_for_ids(expected[session.name])
        # Anything addressed elsewhere would have arrived by now.
        await asyncio.sleep(1.0)
        for session in sessions:
            # Teammates' presence events (group presence is on in the local example) are not this test's business.
            events = [event for event in session.events if not event["type"].startswith("presence.")]
            assert {event["id"] for event in events} == expected[session.name], session.name
            for event in events:
                assert set(event) == FRAME_KEYS
                assert event["seqs"] == {event["topic"]: event["seq"]}  # one topic reaches each of these sessions
                LATENCIES.append(session.arrival_of(event["id"]) - sent_at[event["id"]])
        frame = await alice_1.wait_for(lambda f: f.get("id") == to_alice)
        assert frame["type"] == "order.updated"
        assert frame["topic"] == f"user:{alice}"
        assert frame["data"] == {"orderId": "o-1"}
        # Both sessions of one user see the same stored event: same topic and seq.
        twin = await alice_2.wait_for(lambda f: f.get("id") == to_alice)
        assert twin["seq"] == frame["seq"]
        for session in sessions:
            await session.close()

    asyncio.run(scenario())


def test_http_returns_the_same_events_in_the_same_order_across_pages(stack, aws, token):
    carol, crew = unique("carol"), unique("crew")
    publisher = Publisher(stack["events_queue_url"], sqs_client=aws("sqs"))
    carol_token = token(carol, [crew])

    async def scenario():
        session = await Session.open(stack["websocket_url"], carol_token, "carol")
        ids, sent_at = [], {}
        for n in range(7):
            audience = [f"user:{carol}"] if n % 2 else [f"group:{crew}"]
            ids.append(unique("evt"))
            sent_at[ids[-1]] = time.time()
            publisher.publish("step.done", {"n": n}, audience=audience, id=ids[-1])
        await session.wait_for_ids(set(ids))
        LATENCIES.extend(session.arrival_of(event_id) - sent_at[event_id] for event_id in ids)

        everything, cursor, pages = await read_all(stack["http_api_url"], carol_token, limit=3)
        # Broadcasts (`all`) from anyone else using the stack are not this test's business.
        events = [e for e in everything if e["topic"] != "all"]

        assert pages >= 3
        # The socket may bring two invocations' frames out of seq order (clients hold and reorder); HTTP is in order.
        on_the_socket = sorted((e for e in session.events if e["topic"] != "all"), key=lambda e: e["seq"])
        assert by_topic(events) == by_topic(on_the_socket)
        assert sorted(e["id"] for e in events if not e["type"].startswith("presence.")) == sorted(ids)
        for topic, seqs in by_topic(events).items():
            numbers = [seq for seq, _ in seqs]
            assert numbers == list(range(1, len(numbers) + 1)), f"{topic} has gaps or disorder: {numbers}"
        on_socket = {(e["topic"], e["seq"]): {k: v for k, v in e.items() if k != "seqs"} for e in session.events}
        for event in events:
            assert event == on_socket[(event["topic"], event["seq"])]  # the stored item is the frame less its seqs

        # Nothing new: an empty page that keeps the cursor usable.
        empty = (await get_events(stack["http_api_url"], carol_token, cursor=cursor)).json()
        assert empty["events"] == []
        assert empty["hasMore"] is False

        # Long poll: returns as soon as an event arrives, well before `wait`.
        late = unique("evt")

        async def publish_later():
            await asyncio.sleep(1.0)
            publisher.publish("step.done", {"n": 99}, audience=[f"user:{carol}"], id=late)

        started = time.monotonic()
        response, _ = await asyncio.gather(
            get_events(stack["http_api_url"], carol_token, cursor=cursor, wait=20), publish_later()
        )
        waited = time.monotonic() - started
        assert [e["id"] for e in response.json()["events"] if e["topic"] != "all"] == [late]
        assert waited < 15, f"long poll held {waited:.1f}s after the event arrived"
        await session.close()

    asyncio.run(scenario())


def test_a_message_sent_twice_is_stored_once_with_one_seq(stack, aws, token):
    dave = unique("dave")
    dave_token = token(dave)
    sqs = aws("sqs")
    event_id = unique("once")
    message = {"type": "invoice.paid", "id": event_id, "data": {"invoice": "i-1"}, "audience": [f"user:{dave}"]}

    async def scenario():
        session = await Session.open(stack["websocket_url"], dave_token, "dave")
        send_raw(sqs, stack["events_queue_url"], message)
        send_raw(sqs, stack["events_queue_url"], message)
        marker = unique("after")
        send_raw(sqs, stack["events_queue_url"], {**message, "id": marker})
        await session.wait_for_ids({event_id, marker})
        await asyncio.sleep(1.0)

        events, _, _ = await read_all(stack["http_api_url"], dave_token, limit=50)
        stored = [e for e in events if e["id"] == event_id]
        assert len(stored) == 1
        # Delivery is at-least-once: any copy on the socket carries the same seq.
        assert {e["seq"] for e in session.events if e["id"] == event_id} == {stored[0]["seq"]}
        assert sorted(e["seq"] for e in events if e["topic"] == f"user:{dave}") == [1, 2]
        await session.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "expired",
        "bad signature",
        "alg none",
        "no subject",
        "another audience",
        "too long-lived",
        "garbage",
        "too many topics",
    ],
)
def test_bad_tokens_are_refused_on_connect_and_on_http(stack, secret, token, case):
    now = int(time.time())
    good = jwt.decode(token("eve"), secret, algorithms=["HS256"], audience=LOCAL_AUDIENCE)
    tokens = {
        "missing": None,
        "expired": token("eve", ttl=-60),
        "bad signature": jwt.encode(good, "x" * 32 + "not-the-secret", algorithm="HS256"),
        "alg none": jwt.encode(good, None, algorithm="none"),
        "no subject": jwt.encode({k: v for k, v in good.items() if k != "sub"}, secret, algorithm="HS256"),
        # Signed with the right secret, for another service: hs256 mode checks the audience too.
        "another audience": jwt.encode(good | {"aud": "billing"}, secret, algorithm="HS256"),
        "too long-lived": jwt.encode(good | {"iat": now, "exp": now + 30 * 86400}, secret, algorithm="HS256"),
        "garbage": "not.a.jwt",
        # user:eve, all and 99 groups: one over the module's default max_topics_per_token (100).
        "too many topics": jwt.encode(good | {"groups": [f"g{n}" for n in range(99)]}, secret, algorithm="HS256"),
    }
    bad = tokens[case]

    async def scenario():
        url = stack["websocket_url"] + ("" if bad is None else f"?token={bad}")
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(url, open_timeout=15)
        async with httpx.AsyncClient(timeout=20) as client:
            headers = {} if bad is None else {"Authorization": f"Bearer {bad}"}
            response = await client.get(f"{stack['http_api_url']}/events", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"]

    asyncio.run(scenario())


def nested(depth: int) -> list:
    """`depth` lists, one inside the other."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_poison_messages_go_to_the_dlq_at_once_and_the_good_ones_arrive(stack, aws, token):
    erin = unique("erin")
    sqs = aws("sqs")
    good = [unique("good"), unique("good")]
    entries = {
        "good-0": {"type": "ok.one", "id": good[0], "data": {}, "audience": [f"user:{erin}"]},
        "invalid-json": "{not json",
        "bad-type": {"type": "Not A Type", "data": {}, "audience": [f"user:{erin}"]},
        "too-large": {"type": "big.one", "data": {"blob": "x" * 40_000}, "audience": [f"user:{erin}"]},
        "no-audience": {"type": "unrouted.kind", "data": {}},
        # One level deeper than data may nest, and far deeper than any JSON parser goes.
        "too-deep": {"type": "deep.one", "data": {"x": nested(64)}, "audience": [f"user:{erin}"]},
        "far-too-deep": '{"type": "deep.two", "data": {"x": ' + "[" * 50_000 + "]" * 50_000 + "}}",
        "good-1": {"type": "ok.two", "id": good[1], "data": {}, "audience": [f"user:{erin}"]},
    }

    async def scenario():
        session = await Session.open(stack["websocket_url"], token(erin), "erin")
        started = time.monotonic()
        response = sqs.send_message_batch(
            QueueUrl=stack["events_queue_url"],
            Entries=[
                {"Id": key, "MessageBody": body if isinstance(body, str) else json.dumps(body)}
                for key, body in entries.items()
            ],
        )
        source_ids = {item["MessageId"]: item["Id"] for item in response["Successful"]}
        assert len(source_ids) == len(entries)
        await session.wait_for_ids(set(good))

        poison = {message_id: key for message_id, key in source_ids.items() if not key.startswith("good")}
        reasons = dead_letter_reasons(sqs, stack["dlq_url"], poison)
        elapsed = time.monotonic() - started

        assert {key: attrs["errorCode"] for key, attrs in reasons.items()} == {
            "invalid-json": "invalid_json",
            "bad-type": "invalid_message",
            "too-large": "too_large",
            "no-audience": "no_audience",
            "too-deep": "too_deep",
            "far-too-deep": "too_deep",
        }
        assert all(attrs["errorReason"] for attrs in reasons.values())
        # Straight to the DLQ: no waiting out visibility timeouts and redrives.
        assert elapsed < 30, f"poison messages took {elapsed:.0f}s to reach the DLQ"
        assert session.ids() == set(good)
        await session.close()

    asyncio.run(scenario())
