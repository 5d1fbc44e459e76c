"""Issue 11, finding 1, on the emulator: a socket stops receiving when its token expires.

Delivery closes it at the next event (a last `token_expired` frame, then
DeleteConnection), maintenance closes the idle ones, and a client given fresh
tokens reconnects at once and misses nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from realtime_client import RealtimeClient
from realtime_publisher import Publisher
from sessions import Session

from scripts.local.emulator import emulator_client

pytestmark = pytest.mark.integration

TOKEN_EXPIRED_FRAME = {
    "type": "error",
    "error": {"code": "token_expired", "message": "the token has expired; reconnect with a new token"},
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def connection_record(stack: dict, user: str) -> list[dict]:
    table = emulator_client(stack, "dynamodb", resource=True).Table(stack["connections_table_name"])
    return table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"topic#user:{user}"}).get(
        "Items", []
    )


async def until_closed(session: Session, timeout: float = 15) -> None:
    await asyncio.wait_for(session.socket.wait_closed(), timeout)


def test_a_socket_gets_no_event_once_its_token_expired_but_a_last_frame_and_is_closed(stack, aws, token):
    user, kind = unique("short"), unique("expiry.test")
    publisher = Publisher(stack["events_queue_url"], sqs_client=aws("sqs"))

    async def scenario():
        session = await Session.open(stack["websocket_url"], token(user, ttl=4), "short")
        publisher.publish(kind, {"n": 1}, audience=[f"user:{user}"], id=f"{kind}-1")
        await session.wait_for(lambda f: f.get("id") == f"{kind}-1")
        [subscription] = connection_record(stack, user)
        assert subscription["tokenExpiresAt"] <= time.time() + 4

        await asyncio.sleep(max(0.0, float(subscription["tokenExpiresAt"]) - time.time()) + 0.5)
        publisher.publish(kind, {"n": 2}, audience=[f"user:{user}"], id=f"{kind}-2")
        await session.wait_for(lambda f: f.get("type") == "error")
        await until_closed(session)

        assert [f["id"] for f in session.events if f["type"] == kind] == [f"{kind}-1"]
        assert session.frames[-1] == TOKEN_EXPIRED_FRAME
        # Stored all the same: a new token reads it over HTTP.
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(
                f"{stack['http_api_url']}/events", headers={"Authorization": f"Bearer {token(user)}"}
            )
        assert f"{kind}-2" in [e["id"] for e in response.json()["events"]]
        # The close ran $disconnect, which removed the connection.
        deadline = time.time() + 10
        while connection_record(stack, user) and time.time() < deadline:
            await asyncio.sleep(0.2)
        assert connection_record(stack, user) == []

    asyncio.run(scenario())


def test_maintenance_closes_an_idle_socket_whose_token_expired(stack, aws, token):
    user = unique("idle")

    async def scenario():
        session = await Session.open(stack["websocket_url"], token(user, ttl=3), "idle")
        await asyncio.sleep(3.5)

        response = aws("lambda").invoke(FunctionName=stack["maintenance_function_name"], Payload=b"{}")
        summary = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, summary

        await until_closed(session)
        assert session.frames[-1] == TOKEN_EXPIRED_FRAME
        assert summary["connections_expired"] >= 1

    asyncio.run(scenario())


def test_a_client_with_short_tokens_receives_every_event_once_across_expiries(stack, aws, token):
    user, kind = unique("renewing"), unique("expiry.client")
    publisher = Publisher(stack["events_queue_url"], sqs_client=aws("sqs"))
    tokens: list[str] = []

    def short_token() -> str:
        tokens.append(token(user, ttl=5))
        return tokens[-1]

    async def scenario():
        client = RealtimeClient(stack["websocket_url"], stack["http_api_url"], short_token, name="renewing")
        received: list[str] = []
        client.on(kind, lambda event, meta: received.append(event["id"]))
        await client.start()
        await client.wait_for_state("open", timeout=30)
        sent = []
        started = time.monotonic()
        while time.monotonic() - started < 16:  # three lifetimes of its tokens and more
            sent.append(f"{kind}-{len(sent)}")
            publisher.publish(kind, {"n": len(sent)}, audience=[f"user:{user}"], id=sent[-1])
            await asyncio.sleep(0.4)
        deadline = time.monotonic() + 20
        while sorted(set(received)) != sorted(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stats = client.stats
        await client.close()
        print(
            f"\n{len(sent)} events over {len(tokens)} tokens: {stats.token_expiries} expiries, "
            f"{stats.opens} opens, {stats.drops} drops, {stats.fallbacks} fallbacks"
        )

        assert sorted(received) == sorted(sent)  # every one, once
        assert stats.token_expiries >= 2
        assert (stats.drops, stats.fallbacks) == (0, 0)

    asyncio.run(scenario())
