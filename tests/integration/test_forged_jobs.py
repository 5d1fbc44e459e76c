"""Issue 20, finding 1, on the emulator: jobs written to the fanout queue by hand post nothing that
was not stored for a topic the connection holds, and are not retried as poison.

The emulator does not enforce queue policies (the module's policy keeps foreign senders out on AWS,
checked by terraform test): these jobs are sent as an account insider would, past the policy.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from sessions import Session

pytestmark = pytest.mark.integration

FORGED = {"type": "admin.notice", "data": {"forged": True}, "occurredAt": "2026-01-01T00:00:00Z"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fanout_queue_url(sqs) -> str:
    (url,) = [url for url in sqs.list_queues().get("QueueUrls", []) if url.endswith("-fanout")]
    return url


def connection_of(aws, stack, user: str) -> str:
    items = aws("dynamodb").scan(
        TableName=stack["connections_table_name"],
        FilterExpression="userId = :user AND sk = :meta",
        ExpressionAttributeValues={":user": {"S": user}, ":meta": {"S": "meta"}},
    )["Items"]
    (item,) = items
    return item["connectionId"]["S"]


def queue_drained(sqs, url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        if sum(int(value) for value in attributes.values()) == 0:
            return True
        time.sleep(0.5)
    return False


def test_jobs_written_by_hand_post_only_stored_events_to_connections_that_hold_their_topics(stack, aws, token):
    alice, bob = unique("alice"), unique("bob")
    secret_id, marker_id, marker_group = unique("secret"), unique("marker"), unique("forged")
    sqs = aws("sqs")
    fanout = fanout_queue_url(sqs)

    async def scenario():
        sockets = {
            user: await Session.open(stack["websocket_url"], token(user, groups=[marker_group]), user)
            for user in (alice, bob)
        }
        sqs.send_message(
            QueueUrl=stack["events_queue_url"],
            MessageBody=json.dumps(
                {"type": "secret", "id": secret_id, "data": {"for": alice}, "audience": [f"user:{alice}"]}
            ),
        )
        secret = await sockets[alice].wait_for(lambda f: f.get("id") == secret_id)
        stored = {f"user:{alice}": secret["seq"]}
        jobs = [
            # An event nobody stored, to every subscriber of `all`: with every field the module writes, and bare.
            {"event": {"id": unique("x"), "seqs": {"all": 10**9}, **FORGED}, "topic": "all", "startKey": None},
            {"event": {"id": unique("x"), "seqs": {"all": 10**9}}, "topic": "all", "startKey": None, "attempt": 0},
            # Alice's stored private event, retried to Bob's connection.
            {
                "event": {"id": secret_id, "seqs": stored},
                "targets": [{"connectionId": connection_of(aws, stack, bob), "topics": [f"user:{alice}"]}],
                "attempt": 1,
            },
            # Alice's stored private event with forged content, to her own topic: only what was stored goes out.
            {"event": {"id": secret_id, "seqs": stored, **FORGED}, "topic": f"user:{alice}", "startKey": None},
            "not a job at all",
        ]
        sqs.send_message_batch(
            QueueUrl=fanout,
            Entries=[
                {"Id": str(n), "MessageBody": job if isinstance(job, str) else json.dumps(job)}
                for n, job in enumerate(jobs)
            ],
        )
        assert queue_drained(sqs, fanout), "forged jobs are still on the fanout queue: retried as poison"
        # A real broadcast after the forged jobs: once it has arrived, anything they posted has too.
        sqs.send_message(
            QueueUrl=stack["events_queue_url"],
            # A group of this test's own, not `all`: other tests read `all` from its first seq.
            MessageBody=json.dumps(
                {"type": "notice", "id": marker_id, "data": {}, "audience": [f"group:{marker_group}"]}
            ),
        )
        for session in sockets.values():
            await session.wait_for(lambda f: f.get("id") == marker_id)
            await session.close()
        return sockets

    sockets = asyncio.run(scenario())

    # Presence events (Alice and Bob share the marker group) come and go with timing: not what is tested here.
    bob_events, alice_events = (
        [f for f in sockets[u].events if not f["type"].startswith("presence.")] for u in (bob, alice)
    )
    assert [f["id"] for f in bob_events] == [marker_id]
    assert {f["id"] for f in alice_events} == {secret_id, marker_id}
    assert all(f["type"] != FORGED["type"] and "forged" not in f["data"] for f in alice_events)
    assert all(f["data"] == {"for": alice} for f in alice_events if f["id"] == secret_id)


def test_an_event_split_across_messages_reaches_every_topic_once(stack, aws, token):
    """Issue 20, finding 7: one producer's id in two messages with different audiences (as db-changes
    splits a record of over 100 topics) reaches the subscribers of both parts; one in both hands it on once."""
    users = {name: unique(name) for name in ("ann", "bob", "both")}
    event_id, group = unique("split"), unique("split")
    sqs = aws("sqs")

    async def scenario():
        sockets = {
            name: await Session.open(
                stack["websocket_url"],
                token(user, groups=[group] if name == "both" else None),
                name,
            )
            for name, user in users.items()
        }
        parts = [
            {"audience": [f"user:{users['ann']}", f"user:{users['both']}"]},
            {"audience": [f"user:{users['bob']}", f"group:{group}"]},
        ]
        sqs.send_message_batch(
            QueueUrl=stack["events_queue_url"],
            Entries=[
                {"Id": str(n), "MessageBody": json.dumps({"type": "split", "id": event_id, "data": {"n": 1}, **part})}
                for n, part in enumerate(parts)
            ],
        )
        for session in sockets.values():
            await session.wait_for(lambda f: f.get("id") == event_id)
        await asyncio.sleep(2)  # room for a second copy to arrive, if one were sent
        for session in sockets.values():
            await session.close()
        return sockets

    sockets = asyncio.run(scenario())

    for name in ("ann", "bob"):
        assert [f["id"] for f in sockets[name].events] == [event_id]
    # "both" holds a topic of each part: one frame if the parts were delivered together, or one per part,
    # each with the same key, so a client hands the event on once.
    copies = [f for f in sockets["both"].events if f["id"] == event_id]
    assert 1 <= len(copies) <= 2
    assert len({f["key"] for f in copies}) == 1
    assert sorted(topic for f in copies for topic in f["seqs"]) == sorted([f"user:{users['both']}", f"group:{group}"])
