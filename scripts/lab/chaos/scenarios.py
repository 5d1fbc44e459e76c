"""The chaos scenarios: each connects clients, injects one fault while it publishes a known set of
events, and records what the clients ended with (`SCENARIOS`, run by `scripts.lab.chaos.runner`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from scripts.lab.chaos.harness import (
    EVENT_PATH,
    Outcome,
    Reconfigured,
    Scenario,
    Stack,
    connections_endpoint_via,
    event_ids,
    events_stored,
    fleet,
    functions_with,
    measure,
    publish,
    publish_through_proxy,
)
from scripts.lab.fault_proxy import (
    ConnectionsFaults,
    DynamoDBThrottling,
    FaultPlan,
    HttpFaultProxy,
    ProxyThread,
    TcpDropProxy,
    TransactionConflicts,
)


async def no_fault(stack: Stack, proxies: ProxyThread, outcome: Outcome) -> None:
    group = f"chaos-{outcome.name}-{uuid.uuid4().hex[:6]}"
    async with fleet(stack, group) as recorders:
        await measure(stack, outcome, group, recorders, await publish(stack, group, event_ids(outcome.name, 30)))


async def connections_faults(stack: Stack, proxies: ProxyThread, outcome: Outcome) -> None:
    plan = FaultPlan(share=0.3, failures_each=2, kinds=("throttle", "error", "timeout"), seed=14)

    def changes(proxy_url: str) -> dict[str, dict[str, Any]]:
        endpoint = connections_endpoint_via(stack, proxy_url)
        posting = functions_with(stack, "CONNECTIONS_ENDPOINT")
        return {key: {"Environment": {"CONNECTIONS_ENDPOINT": endpoint}} for key in posting}

    await publish_through_proxy(stack, outcome, [ConnectionsFaults(plan)], changes)


async def dynamodb_faults(stack: Stack, outcome: Outcome, faults: Sequence[Any]) -> None:
    # The functions on the events' path: storing, delivering, and the clients' catch-up over HTTP.
    def changes(proxy_url: str) -> dict[str, dict[str, Any]]:
        return {key: {"Environment": {"AWS_ENDPOINT_URL_DYNAMODB": proxy_url}} for key in EVENT_PATH}

    await publish_through_proxy(stack, outcome, faults, changes)


async def dynamodb_throttling(stack: Stack, proxies: ProxyThread, outcome: Outcome) -> None:
    plan = FaultPlan(share=0.2, failures_each=3, seed=14)
    await dynamodb_faults(stack, outcome, [DynamoDBThrottling(plan)])


async def dynamodb_throttling_past_retries(stack: Stack, proxies: ProxyThread, outcome: Outcome) -> None:
    # botocore tries a DynamoDB request 10 times (legacy mode): 10 failures reach the functions' own handling.
    plan = FaultPlan(share=0.05, failures_each=10, seed=15)
    await dynamodb_faults(stack, outcome, [DynamoDBThrottling(plan)])


async def transaction_conflicts(stack: Stack, proxies: ProxyThread, outcome: Outcome) -> None:
    plan = FaultPlan(share=0.5, failures_each=3, kinds=("conflict",), seed=14)
    await dynamodb_faults(stack, outcome, [TransactionConflicts(plan)])


async def crash_before_delivery(stack: Stack, proxies: ProxyThread, outcome: Outcome) -> None:
    # No post is answered until every event is stored: process-events, with a 5 s timeout (its posts'
    # read timeout is 5 s too, counted from the post), is stopped after storing, while delivering;
    # the messages come back after the visibility timeout.
    plan = FaultPlan(share=1.0, failures_each=1000, kinds=("timeout",))
    count = 20

    def changes(proxy_url: str) -> dict[str, dict[str, Any]]:
        endpoint = connections_endpoint_via(stack, proxy_url)
        return {
            "process-events": {"Environment": {"CONNECTIONS_ENDPOINT": endpoint}, "Timeout": 5},
            "fanout": {"Environment": {"CONNECTIONS_ENDPOINT": endpoint}},
        }

    async def all_stored_none_delivered(group: str, proxy: HttpFaultProxy) -> None:
        until = time.monotonic() + 90
        while time.monotonic() < until:
            stored = await asyncio.to_thread(events_stored, stack, group)
            if stored >= count and proxy.counts.injected["timeout"]:
                break
            await asyncio.sleep(0.5)
        outcome.figures["events stored while no post was answered"] = f"{stored} of {count}"
        outcome.figures["posts held unanswered (their invocations stopped)"] = proxy.counts.injected["timeout"]
        if stored < count:
            outcome.problems.append(f"only {stored} of {count} events were stored before delivery resumed")

    # Each event twice, as two messages: SQS's at-least-once delivery on top of the redelivery.
    faults = [ConnectionsFaults(plan)]
    await publish_through_proxy(
        stack, outcome, faults, changes, count=count, copies=2, visibility=10, heal_when=all_stored_none_delivered
    )
    outcome.figures["messages sent"] = 2 * count


class RefusingEndpoint:
    """A loopback port that accepts each connection and closes it at once, counting them: the DynamoDB
    endpoint of a function that must fail, which shows when it has tried (and failed)."""

    def __init__(self) -> None:
        self.attempts = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed by __exit__
            while True:
                connection, _ = self._server.accept()
                self.attempts += 1
                connection.close()

    def __enter__(self) -> RefusingEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.close()


async def missed_disconnects(stack: Stack, proxies: ProxyThread, outcome: Outcome) -> None:
    group = f"chaos-gone-{uuid.uuid4().hex[:6]}"
    ids = event_ids("gone", 30)
    stale_after = 60  # STALE_CONNECTION_SECONDS' minimum
    async with (
        fleet(stack, group) as recorders,
        # Two vanish from the group the events go to (delivery finds them gone), two from a quiet one.
        fleet(stack, group, 2, prefix=f"{group}-vanished") as posted_to,
        fleet(stack, f"{group}-quiet", 2) as quiet,
    ):
        vanishing = [*posted_to, *quiet]
        opened = time.time()
        with RefusingEndpoint() as dynamodb:
            # ws-disconnect's DynamoDB closes every connection (one try): each $disconnect runs, and fails.
            broken = Reconfigured(
                stack,
                {
                    "ws-disconnect": {
                        "Environment": {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb.url, "AWS_MAX_ATTEMPTS": "1"}
                    }
                },
            )
            await asyncio.to_thread(broken.apply)
            try:
                closed = time.monotonic()
                for recorder in vanishing:
                    await recorder.client.close()
                # Held until every $disconnect has tried (the emulator starts a new worker first): restored
                # after a fixed wait instead, a late one found DynamoDB again and the fault did not hold.
                deadline = time.monotonic() + 60
                while dynamodb.attempts < len(vanishing) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                outcome.figures["seconds from the closes to the last $disconnect's try"] = round(
                    time.monotonic() - closed, 1
                )
                await asyncio.sleep(1)
            finally:
                await asyncio.to_thread(broken.restore)
            outcome.figures["$disconnects that tried DynamoDB and failed"] = dynamodb.attempts
        vanished = [recorder.client.name for recorder in vanishing]
        left = await asyncio.to_thread(connection_records, stack, vanished)
        outcome.figures["connection records left by the lost $disconnects"] = left
        if left != len(vanished):
            outcome.problems.append(f"{left} of {len(vanished)} connection records were left: the fault did not hold")
        await measure(stack, outcome, group, recorders, await publish(stack, group, ids))
        after_delivery = await asyncio.to_thread(connection_records, stack, vanished)
        outcome.figures["removed before maintenance ran (delivery, on a 410)"] = left - after_delivery
        await asyncio.sleep(max(0.0, opened + stale_after + 2 - time.time()))
        maintenance = Reconfigured(
            stack, {"maintenance": {"Environment": {"STALE_CONNECTION_SECONDS": str(stale_after)}}}
        )
        async with maintenance.active():
            report = await asyncio.to_thread(stack.invoke, "maintenance")
        outcome.figures["removed by maintenance"] = report.get("connections_removed")
        grace = int(stack.endpoints["presence_grace_period_seconds"])
        await asyncio.sleep(grace + 5)  # the offline checks wait out the grace period
        left_after = await asyncio.to_thread(connection_records, stack, vanished)
        online = [user for user in vanished if presence_of(stack, user).get("online", {}).get("BOOL")]
        sessions = sum(len(presence_of(stack, user).get("connections", {}).get("SS", [])) for user in vanished)
        outcome.figures["connection records left after maintenance"] = left_after
        outcome.figures["vanished users still online / sessions"] = f"{len(online)} / {sessions}"
        if left_after or online or sessions:
            outcome.problems.append(
                f"after maintenance: {left_after} records, {len(online)} online, {sessions} sessions"
            )


def connection_records(stack: Stack, users: Sequence[str]) -> int:
    """Connection items (sk = meta) of `users` in the connections table."""
    table = stack.endpoints["connections_table_name"]
    wanted = set(users)
    count = 0
    for page in (
        stack.aws("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=table, FilterExpression="sk = :meta", ExpressionAttributeValues={":meta": {"S": "meta"}})
    ):
        count += sum(1 for item in page["Items"] if item.get("userId", {}).get("S") in wanted)
    return count


def presence_of(stack: Stack, user: str) -> dict:
    table = stack.endpoints["presence_table_name"]
    return (
        stack.aws("dynamodb")
        .get_item(TableName=table, Key={"userId": {"S": user}}, ConsistentRead=True)
        .get("Item", {})
    )


async def network_drop(stack: Stack, proxies: ProxyThread, outcome: Outcome) -> None:
    group = f"chaos-net-{uuid.uuid4().hex[:6]}"
    ids = event_ids("net", 40)
    outage = 5.0
    emulator_port = urlsplit(stack.endpoints["emulator_endpoint"]).port
    network = proxies.call(TcpDropProxy(emulator_port).start())
    try:
        async with fleet(stack, group, proxy_port=network.port) as recorders:
            sending = asyncio.ensure_future(publish(stack, group, ids, seconds=10))
            await asyncio.sleep(3)
            proxies.call(network.drop(outage))
            await measure(stack, outcome, group, recorders, await sending)
        outcome.figures["outage"] = f"{outage:.0f} s, {network.resets} connections reset, {network.refused} refused"
    finally:
        proxies.call(network.stop())


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    simulated: str
    run: Scenario
    quick: bool = False  # one of the key scenarios (tests/chaos, marker chaos_quick)


SCENARIOS = [
    Spec(
        "baseline",
        "No fault (the reference)",
        "The same clients and events with nothing injected: what the emulator on this machine takes anyway.",
        no_fault,
    ),
    Spec(
        "posts",
        "PostToConnection answers 429, 500 or nothing",
        "A loopback proxy in front of the emulator's `@connections` API (the functions' CONNECTIONS_ENDPOINT "
        "points at it) answers 30% of (connection, frame) pairs with 429 LimitExceeded, 500 or no answer "
        "(the functions' client times out after 5 s), twice each, then forwards.",
        connections_faults,
        quick=True,
    ),
    Spec(
        "throttled",
        "DynamoDB throttling, absorbed by the SDK",
        "A loopback proxy on the DynamoDB endpoint (AWS_ENDPOINT_URL_DYNAMODB) of the functions an event "
        "passes through (process-events, fanout, events-api) answers 20% of requests with "
        "ProvisionedThroughputExceededException three times each, then forwards.",
        dynamodb_throttling,
        quick=True,
    ),
    Spec(
        "throttled-hard",
        "DynamoDB throttling past the SDK's retries",
        "The same proxy answers 5% of requests with ProvisionedThroughputExceededException ten times each: "
        "botocore's ten tries (legacy mode) give up and the functions' own handling takes over.",
        dynamodb_throttling_past_retries,
    ),
    Spec(
        "conflicts",
        "DynamoDB transaction conflicts",
        "The same proxy cancels 50% of TransactWriteItems with TransactionCanceledException "
        "(TransactionConflict on the counter) three times each, then forwards.",
        transaction_conflicts,
    ),
    Spec(
        "crash",
        "Crash between store and deliver; SQS delivers twice",
        "process-events' timeout is 5 s and a proxy holds every post unanswered until all the events are "
        "stored, so each invocation is stopped after storing, while delivering (its posts would time out "
        "only after 5 s); the events queue's visibility timeout is 10 s, so the same messages come back. "
        "Every event is also sent twice, as two messages.",
        crash_before_delivery,
        quick=True,
    ),
    Spec(
        "disconnects",
        "$disconnect never arrives",
        "Four more clients connect and close while ws-disconnect's DynamoDB endpoint closes every connection "
        "(held until each $disconnect has tried), so their connection records and sessions stay: two in the "
        "group the events go to (delivery finds them gone once they are 30 s old), two in a quiet group; "
        "maintenance (STALE_CONNECTION_SECONDS=60) is invoked once they are stale. Their users must end with no "
        "record, no session and offline.",
        missed_disconnects,
    ),
    Spec(
        "network",
        "A client's network drops mid-stream",
        "Every client reaches the emulator through a loopback TCP proxy; 3 s into a 10 s stream of events "
        "the network drops for 5 s: open connections are reset and new ones refused.",
        network_drop,
    ),
]
