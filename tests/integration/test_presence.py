"""Presence on the emulator: session counting, the grace period, reloads, missed $disconnects, watchers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from realtime.connections.store import ConnectionStore
from realtime.core.topics import topics_for_claims
from realtime.presence.store import PresenceStore
from sessions import Session

from scripts.local.emulator import emulator_client

pytestmark = pytest.mark.integration

# Offline-event delays seen by the tests (seconds after the last session closed), reported at the end.
OFFLINE_DELAYS: list[float] = []


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def presence_frames(session: Session, user: str) -> list[dict]:
    return [f for f in session.events if f["type"].startswith("presence.") and f["data"].get("userId") == user]


def presence_of(user: str, kind: str):
    """A frame predicate: presence.<kind> of that user."""
    return lambda f: f.get("type") == f"presence.{kind}" and f.get("data", {}).get("userId") == user


async def get_presence(stack: dict, token: str, users: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(
            f"{stack['http_api_url']}/presence", params={"users": users}, headers={"Authorization": f"Bearer {token}"}
        )


async def get_events(stack: dict, token: str) -> list[dict]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(
            f"{stack['http_api_url']}/events", params={"limit": 200}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    return response.json()["events"]


def test_sessions_are_counted_and_the_last_close_goes_offline_after_the_grace_period(stack, token):
    grace = stack["presence_grace_period_seconds"]
    user, team = unique("doctor"), unique("ward")
    user_token = token(user, [team])
    watcher_token = token(unique("patient"), topics=[f"presence:{user}"])
    colleague_token = token(unique("nurse"), [team])
    stranger_token = token(unique("stranger"), [unique("elsewhere")])

    async def scenario():
        url = stack["websocket_url"]
        watcher = await Session.open(url, watcher_token, "watcher")
        colleague = await Session.open(url, colleague_token, "colleague")
        stranger = await Session.open(url, stranger_token, "stranger")
        tabs = [await Session.open(url, user_token, f"tab-{n}") for n in range(3)]

        online = await watcher.wait_for(presence_of(user, "online"))
        assert online["topic"] == f"presence:{user}"
        assert online["data"]["userId"] == user
        assert isinstance(online["data"]["version"], int)
        # The group audience is on in the local example: colleagues see it on their group topic.
        on_group = await colleague.wait_for(presence_of(user, "online"))
        assert (on_group["topic"], on_group["id"]) == (f"group:{team}", online["id"])

        # Closing one of three tabs changes nothing anyone sees.
        await tabs[0].close()
        await asyncio.sleep(grace + 2)
        assert [f["type"] for f in presence_frames(watcher, user)] == ["presence.online"]
        answer = (await get_presence(stack, watcher_token, user)).json()
        assert answer["users"][user]["online"] is True
        assert answer["users"][user]["sessions"] == 2

        # Closing the rest: one presence.offline, after the grace period.
        await tabs[1].close()
        await tabs[2].close()
        closed_at = time.time()
        offline = await watcher.wait_for(presence_of(user, "offline"), timeout=grace + 20)
        delay = watcher.arrival_of(offline["id"]) - closed_at
        OFFLINE_DELAYS.append(delay)
        print(f"\npresence.offline arrived {delay:.2f} s after the last session closed (grace {grace} s)")
        assert delay >= grace - 0.5, "offline came before the grace period was over"
        assert offline["data"]["version"] > online["data"]["version"]
        await asyncio.sleep(2)
        assert [f["type"] for f in presence_frames(watcher, user)] == ["presence.online", "presence.offline"]
        assert [f["type"] for f in presence_frames(colleague, user)] == ["presence.online", "presence.offline"]

        answer = (await get_presence(stack, watcher_token, user)).json()
        assert answer["users"][user]["online"] is False
        assert answer["users"][user]["sessions"] == 0
        assert answer["users"][user]["version"] == offline["data"]["version"]

        # Store before deliver: the watcher reads the same two events over HTTP.
        stored = [e for e in await get_events(stack, watcher_token) if e["topic"] == f"presence:{user}"]
        assert [(e["id"], e["seq"]) for e in stored] == [(online["id"], online["seq"]), (offline["id"], offline["seq"])]

        # No right, nothing seen, nothing answered.
        assert presence_frames(stranger, user) == []
        refused = await get_presence(stack, stranger_token, user)
        assert (refused.status_code, refused.json()) == (200, {"users": {}})
        for session in (watcher, colleague, stranger):
            await session.close()

    asyncio.run(scenario())


def test_a_reload_inside_the_grace_period_emits_nothing(stack, token):
    grace = stack["presence_grace_period_seconds"]
    user = unique("reloader")
    user_token = token(user)
    watcher_token = token(unique("watcher"), topics=[f"presence:{user}"])

    async def scenario():
        url = stack["websocket_url"]
        watcher = await Session.open(url, watcher_token, "watcher")
        page = await Session.open(url, user_token, "page")
        await watcher.wait_for(presence_of(user, "online"))

        await page.close()
        await asyncio.sleep(0.5)
        reloaded = await Session.open(url, user_token, "reloaded")
        await asyncio.sleep(grace + 3)

        assert [f["type"] for f in presence_frames(watcher, user)] == ["presence.online"]
        answer = (await get_presence(stack, watcher_token, user)).json()
        assert (answer["users"][user]["online"], answer["users"][user]["sessions"]) == (True, 1)
        await reloaded.close()
        await watcher.wait_for(presence_of(user, "offline"), timeout=grace + 20)
        await watcher.close()

    asyncio.run(scenario())


def test_a_missed_disconnect_is_repaired_by_maintenance(stack, aws, token):
    grace = stack["presence_grace_period_seconds"]
    user = unique("vanished")
    watcher_token = token(unique("watcher"), topics=[f"presence:{user}"])
    dynamodb = emulator_client(stack, "dynamodb", resource=True)
    connections_table = dynamodb.Table(stack["connections_table_name"])
    # A socket whose $disconnect never ran: a record (seen an hour ago) and a counted session,
    # for a connection id the gateway has never heard of.
    hour_ago = ConnectionStore(connections_table, clock=lambda: time.time() - 3600)
    presence = PresenceStore(dynamodb, stack["presence_table_name"])
    ghost = f"ghost{uuid.uuid4().hex[:10]}="

    async def scenario():
        url = stack["websocket_url"]
        watcher = await Session.open(url, watcher_token, "watcher")
        real = await Session.open(url, token(user), "real")
        await watcher.wait_for(presence_of(user, "online"))
        hour_ago.add(ghost, user, topics_for_claims({"sub": user}), ttl_seconds=7200)
        presence.session_started(user, ghost, (), max_sessions=10)

        # The real session leaves; the ghost keeps the user online.
        await real.close()
        await asyncio.sleep(grace + 2)
        assert [f["type"] for f in presence_frames(watcher, user)] == ["presence.online"]
        assert presence.get(user).connection_ids == {ghost}

        # The scheduled run, now: GetConnection says gone; the ghost is removed and the user goes offline.
        response = aws("lambda").invoke(FunctionName=stack["maintenance_function_name"], Payload=b"{}")
        summary = json.loads(response["Payload"].read())
        repaired_at = time.time()
        print(f"\nmaintenance run: {summary}")
        assert "FunctionError" not in response, summary
        assert summary["complete"] is True
        assert connections_table.get_item(Key={"pk": f"conn#{ghost}", "sk": "meta"}).get("Item") is None
        assert connections_table.get_item(Key={"pk": f"topic#user:{user}", "sk": f"conn#{ghost}"}).get("Item") is None
        assert presence.get(user).connection_ids == frozenset()

        offline = await watcher.wait_for(presence_of(user, "offline"), timeout=grace + 20)
        print(f"presence.offline arrived {watcher.arrival_of(offline['id']) - repaired_at:.2f} s after the repair")
        # Idempotent: running again finds nothing more to do for this user.
        again = json.loads(
            aws("lambda").invoke(FunctionName=stack["maintenance_function_name"], Payload=b"{}")["Payload"].read()
        )
        assert again["complete"] is True
        await asyncio.sleep(1)
        assert [f["type"] for f in presence_frames(watcher, user)] == ["presence.online", "presence.offline"]
        await watcher.close()

    asyncio.run(scenario())


def test_the_schedule_runs_maintenance_with_its_own_role(stack, aws):
    schedule = aws("scheduler").get_schedule(Name=stack["maintenance_schedule_name"])
    function_arn = aws("lambda").get_function(FunctionName=stack["maintenance_function_name"])["Configuration"][
        "FunctionArn"
    ]

    assert schedule["State"] == "ENABLED"
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    assert schedule["Target"]["Arn"] == function_arn
    role_name = schedule["Target"]["RoleArn"].rsplit("/", 1)[1]
    iam = aws("iam")
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"]["Service"] == "scheduler.amazonaws.com"
    [policy_name] = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"] == [
        {"Sid": "InvokeMaintenance", "Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": [function_arn]}
    ]


def test_presence_requests_are_bounded(stack, token):
    caller = token(unique("caller"))

    async def scenario():
        too_many = await get_presence(stack, caller, ",".join(f"u{n}" for n in range(51)))
        assert too_many.status_code == 400
        assert too_many.json()["error"]["code"] == "too_many_users"
        missing = await get_presence(stack, caller, "")
        assert missing.status_code == 400

    asyncio.run(scenario())
