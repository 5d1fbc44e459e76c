"""Issue 11, finding 2, on the emulator: a producer can neither forge nor suppress presence.

Presence events come from the module's own presence-events queue; on the
producers' queue, their types and ids are refused (DLQ, with the reason).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from dead_letters import dead_letter_reasons
from sessions import Session

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_producer_cannot_forge_or_suppress_presence_events(stack, aws, token):
    alice = unique("alice")
    sqs = aws("sqs")
    # The real online event of alice's first session will be presence-<alice>-1: a producer takes the id first.
    forged = {
        "forged-offline": {
            "type": "presence.offline",
            "id": f"presence-{alice}-1",
            "data": {"userId": alice, "version": 1, "lastSeen": None},
            "audience": [f"presence:{alice}"],
        },
        "squatted-id": {
            "type": "account.updated",
            "id": f"presence-{alice}-2",
            "data": {"userId": alice},
            "audience": [f"presence:{alice}"],
        },
    }

    async def scenario():
        watcher = await Session.open(
            stack["websocket_url"], token(unique("watcher"), topics=[f"presence:{alice}"]), "w"
        )
        response = sqs.send_message_batch(
            QueueUrl=stack["events_queue_url"],
            Entries=[{"Id": key, "MessageBody": json.dumps(body)} for key, body in forged.items()],
        )
        source_ids = {item["MessageId"]: item["Id"] for item in response["Successful"]}
        reasons = dead_letter_reasons(sqs, stack["dlq_url"], source_ids)
        assert {key: attrs["errorCode"] for key, attrs in reasons.items()} == {
            "forged-offline": "reserved_type",
            "squatted-id": "reserved_id",
        }
        assert "the module's own presence events" in reasons["forged-offline"]["errorReason"]

        # Alice's real sessions: watchers see her online (the id the producer tried to take), then offline.
        session = await Session.open(stack["websocket_url"], token(alice), "alice")
        online = await watcher.wait_for(lambda f: f.get("type") == "presence.online")
        assert (online["id"], online["data"]["userId"]) == (f"presence-{alice}-1", alice)
        await session.close()
        offline = await watcher.wait_for(
            lambda f: f.get("type") == "presence.offline", timeout=stack["presence_grace_period_seconds"] + 20
        )
        assert offline["data"]["version"] > online["data"]["version"]
        assert [f["id"] for f in watcher.events] == [online["id"], offline["id"]]
        await watcher.close()

    asyncio.run(scenario())
