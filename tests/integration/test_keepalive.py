"""Keepalives on the emulator: the gateway answers pings (no function, no table write), and
maintenance, not pings, proves a connection alive.

The emulator writes no Lambda START lines for route invocations, so "no invocation" is shown
by the route's integration (a MOCK, with no function behind it:
test_refused_frames.py::test_the_route_is_answered_by_the_gateway_not_by_a_function) and by
`make soak-keepalive`'s counts, and "no write" here, by the records unchanged after the pings.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from sessions import Session

from scripts.local.emulator import emulator_client

pytestmark = pytest.mark.integration

PINGS = 20
HOUR_AGO = "2000-01-01T00:00:00.000Z"  # long before any run: the record is due a check


def test_pings_write_nothing_and_maintenance_marks_a_live_connection_seen(stack, aws, token):
    user = f"pinger-{uuid.uuid4().hex[:8]}"
    dynamodb = emulator_client(stack, "dynamodb", resource=True)
    connections = dynamodb.Table(stack["connections_table_name"])
    presence = dynamodb.Table(stack["presence_table_name"])

    def record(connection_id: str) -> dict:
        return connections.get_item(Key={"pk": f"conn#{connection_id}", "sk": "meta"}, ConsistentRead=True)["Item"]

    def maintain() -> dict:
        response = aws("lambda").invoke(FunctionName=stack["maintenance_function_name"], Payload=b"{}")
        summary = json.loads(response["Payload"].read())
        assert "FunctionError" not in response, summary
        return summary

    async def scenario():
        session = await Session.open(stack["websocket_url"], token(user), user)
        (item,) = connections.scan(
            FilterExpression="userId = :user AND sk = :meta",
            ExpressionAttributeValues={":user": user, ":meta": "meta"},
            ConsistentRead=True,
        )["Items"]
        connection_id = item["connectionId"]
        user_seen = presence.get_item(Key={"userId": user}, ConsistentRead=True)["Item"]["lastSeen"]

        # Pings a second apart, each answered by the pong frame, and nothing written.
        for n in range(PINGS):
            await session.send({"action": "ping"})
            await session.wait_for(lambda f, n=n: [g.get("type") for g in session.frames].count("pong") > n)
            await asyncio.sleep(0.05)
        pongs = [f for f in session.frames if f.get("type") == "pong"]
        assert pongs == [{"type": "pong"}] * PINGS
        assert record(connection_id) == item, "a ping wrote the connection record"
        assert presence.get_item(Key={"userId": user}, ConsistentRead=True)["Item"]["lastSeen"] == user_seen

        # Seen long ago (as a connection left alone for the stale threshold is): maintenance asks the
        # gateway, finds it alive, and marks it seen instead of removing it.
        connections.update_item(
            Key={"pk": f"conn#{connection_id}", "sk": "meta"},
            UpdateExpression="SET lastSeen = :then",
            ExpressionAttributeValues={":then": HOUR_AGO},
        )
        before = time.time()
        summary = maintain()
        assert summary["connections_alive"] >= 1, summary
        seen = record(connection_id)["lastSeen"]
        assert seen > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before - 1)), seen

        # Still connected and served.
        await session.send({"action": "ping"})
        await session.wait_for(lambda f: [g.get("type") for g in session.frames].count("pong") > PINGS)
        await session.close()

    asyncio.run(scenario())
