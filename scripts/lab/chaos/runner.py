"""Fault injection on the local stack: what every client ends with when parts of AWS misbehave.

    python -m scripts.lab.chaos [--endpoints .local/endpoints.json] [--only NAME ...] [--report docs/reliability.md]

Without --endpoints (or REALTIME_STACK_ENDPOINTS) it starts its own emulator on
a free loopback port, applies the stack, and stops it afterwards. Each
scenario connects several of the project's Python clients (with their dedup
and gap repair), publishes a known set of events while a fault is injected,
and then checks what every client handed on:

- lost: events a client never handed on that are not readable from the store either;
- unrepaired: events a client had not handed on by the deadline although the store has them;
- duplicates: events a client handed on more than once (after its dedup);
- stored twice: events with more than one item on their topic (exactly-once storage);
- DLQ: messages that reached a dead-letter queue during the scenario, by errorCode;
- complete after: seconds from the last publish until every client had every event.

The faults come from loopback proxies (scripts/lab/fault_proxy.py) that the
functions are pointed at through their configuration, and from the Lambda and
SQS APIs (a shorter function timeout, a shorter visibility timeout); the
production code has no test hooks. Every change is undone after its scenario.
It exits non-zero if any scenario lost, left unrepaired, duplicated or stored
twice an event, or failed one of its own checks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from realtime_client import RealtimeClient
from realtime_publisher import Publisher

from scripts.lab.fault_proxy import (
    ConnectionsFaults,
    DynamoDBThrottling,
    FaultPlan,
    HttpFaultProxy,
    ProxyThread,
    TcpDropProxy,
    TransactionConflicts,
)
from scripts.local.emulator import ROOT, emulator_client, free_port, read_endpoints
from scripts.local.local_stack import stack_on_free_port
from scripts.local.mint_token import local_secret, mint_token

REPORT = ROOT / "docs" / "reliability.md"
EVENT_TYPE = "chaos.step"
CLIENTS = 4
EVENT_PATH = ("process-events", "fanout", "events-api")  # the functions an event passes through
DEADLINE = 120.0  # seconds after the last publish for every client to be complete


# --- the clients ------------------------------------------------------------------------------------


class Recorder:
    """What one client handed on of the scenario's events: how often, and when first."""

    def __init__(self, client: RealtimeClient, event_type: str = EVENT_TYPE) -> None:
        self.client = client
        self.times: Counter[str] = Counter()
        self.first_at: dict[str, float] = {}
        client.on(event_type, self._record)

    def _record(self, event: dict, _meta: Any) -> None:
        self.times[event["id"]] += 1
        self.first_at.setdefault(event["id"], time.time())

    def missing(self, ids: Sequence[str]) -> list[str]:
        return [event_id for event_id in ids if event_id not in self.times]

    def duplicates(self) -> int:
        return sum(count - 1 for count in self.times.values())


def via(url: str, port: int) -> str:
    """`url` with its port replaced: the same path through a loopback proxy."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


@dataclass
class Stack:
    """The stack under test and the AWS clients the scenarios use."""

    endpoints: dict
    secret: str = ""
    clients: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.secret = self.secret or local_secret(self.endpoints)

    def aws(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = emulator_client(self.endpoints, service)
        return self.clients[service]

    @property
    def functions(self) -> dict[str, str]:
        return self.endpoints["function_names"]

    def token(self, user: str, groups: Sequence[str]) -> str:
        return mint_token(self.secret, user, list(groups), ttl=3600)

    def client(self, user: str, group: str, *, proxy_port: int | None = None, **options: Any) -> RealtimeClient:
        ws_url, http_url = self.endpoints["websocket_url"], self.endpoints["http_api_url"]
        if proxy_port is not None:
            ws_url, http_url = via(ws_url, proxy_port), via(http_url, proxy_port)
        return RealtimeClient(ws_url, http_url, lambda: self.token(user, [group]), name=user, **options)

    def publisher(self) -> Publisher:
        return Publisher(self.endpoints["events_queue_url"], sqs_client=self.aws("sqs"))

    def invoke(self, function: str, payload: dict | None = None) -> dict:
        response = self.aws("lambda").invoke(FunctionName=self.functions[function], Payload=json.dumps(payload or {}))
        result = json.loads(response["Payload"].read() or b"null")
        if "FunctionError" in response:
            raise RuntimeError(f"{function} failed: {result}")
        return result


@contextlib.asynccontextmanager
async def fleet(
    stack: Stack, group: str, count: int = CLIENTS, *, prefix: str = "", **options: Any
) -> AsyncIterator[list[Recorder]]:
    """`count` clients of users of `group`, their WebSockets open before the scenario publishes."""
    recorders = [Recorder(stack.client(f"{prefix or group}-{n}", group, **options)) for n in range(count)]
    try:
        await asyncio.gather(*(recorder.client.start() for recorder in recorders))
        await asyncio.gather(*(recorder.client.wait_for_state("open", timeout=60) for recorder in recorders))
        yield recorders
    finally:
        await asyncio.gather(*(recorder.client.close() for recorder in recorders), return_exceptions=True)


async def publish(
    stack: Stack, group: str, ids: Sequence[str], *, seconds: float = 5.0, copies: int = 1
) -> dict[str, float]:
    """Publish `ids` to `group:<group>` over `seconds`, each `copies` times; returns when each was first sent."""
    publisher = stack.publisher()
    sent: dict[str, float] = {}
    for n, event_id in enumerate(ids):
        sent[event_id] = time.time()
        for _ in range(copies):
            await asyncio.to_thread(publisher.publish, EVENT_TYPE, {"n": n}, audience=[f"group:{group}"], id=event_id)
        await asyncio.sleep(seconds / len(ids))
    return sent


async def wait_complete(recorders: Sequence[Recorder], ids: Sequence[str], deadline: float = DEADLINE) -> bool:
    """Wait until every client has handed on every id (True), or `deadline` seconds pass (False)."""
    until = time.monotonic() + deadline
    while any(recorder.missing(ids) for recorder in recorders):
        if time.monotonic() > until:
            return False
        await asyncio.sleep(0.2)
    return True


def event_ids(scenario: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{scenario}-{run}-{n:03d}" for n in range(count)]


# --- what the stack ends with ---------------------------------------------------------------------


async def readable(stack: Stack, group: str) -> set[str]:
    """Ids of the events `GET /events` serves on `group:<group>` from the start of retention."""
    token = stack.token(f"{group}-reader", [group])
    ids: set[str] = set()
    params: dict[str, Any] = {"limit": 200}
    async with httpx.AsyncClient(timeout=30) as http:
        while True:
            response = await http.get(
                f"{stack.endpoints['http_api_url']}/events", params=params, headers={"Authorization": f"Bearer {token}"}
            )
            response.raise_for_status()
            page = response.json()
            ids |= {event["id"] for event in page["events"] if event.get("type") == EVENT_TYPE}
            params["cursor"] = page["cursor"]
            if not page["hasMore"]:
                return ids


def stored_items(stack: Stack, group: str) -> Counter[str]:
    """Items per event id of the scenario's events (not presence events) on `group:<group>`."""
    table = stack.endpoints["events_table_name"]
    paginator = stack.aws("dynamodb").get_paginator("query")
    items: Counter[str] = Counter()
    for page in paginator.paginate(
        TableName=table,
        KeyConditionExpression="topic = :topic AND seq > :zero",
        ExpressionAttributeValues={":topic": {"S": f"group:{group}"}, ":zero": {"N": "0"}},
        ConsistentRead=True,
    ):
        items.update(item["id"]["S"] for item in page["Items"] if item["type"]["S"] == EVENT_TYPE)
    return items


def events_stored(stack: Stack, group: str) -> int:
    return len(stored_items(stack, group))


def stored_twice(stack: Stack, group: str) -> int:
    """Events with more than one item on `group:<group>` (each (topic, event id) must get exactly one seq)."""
    return sum(count - 1 for count in stored_items(stack, group).values() if count > 1)


def drain_dead_letters(stack: Stack) -> Counter[str]:
    """Take every message out of the stack's dead-letter queues; returns their reasons (errorCode, or the redrive)."""
    sqs = stack.aws("sqs")
    name = stack.functions["process-events"].removesuffix("-process-events")
    reasons: Counter[str] = Counter()
    for queue_url in sqs.list_queues(QueueNamePrefix=name).get("QueueUrls", []):
        if not queue_url.endswith("-dlq"):
            continue
        queue = queue_url.rsplit("/", 1)[1].removeprefix(f"{name}-")
        while messages := sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", []):
            for message in messages:
                code = message.get("MessageAttributes", {}).get("errorCode", {}).get("StringValue")
                reasons[f"{queue}: {code or 'maxReceiveCount reached'}"] += 1
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return reasons


# --- faults through configuration ----------------------------------------------------------------


class Reconfigured:
    """Functions' environment variables and timeouts changed for a scenario, and put back afterwards.

    Updating a function's configuration replaces its warm workers, so every
    invocation after `apply` runs with the new values.
    """

    def __init__(self, stack: Stack, changes: dict[str, dict[str, Any]]) -> None:
        self.stack = stack
        self.changes = changes  # function key -> {"Environment": {name: value}, "Timeout": seconds}
        self.original: dict[str, dict[str, Any]] = {}

    def _update(self, function: str, environment: dict[str, str], timeout: int) -> None:
        lambda_client = self.stack.aws("lambda")
        name = self.stack.functions[function]
        lambda_client.update_function_configuration(
            FunctionName=name, Environment={"Variables": environment}, Timeout=timeout
        )
        lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)

    def apply(self) -> None:
        for function, change in self.changes.items():
            config = self.stack.aws("lambda").get_function_configuration(FunctionName=self.stack.functions[function])
            environment = config["Environment"]["Variables"]
            self.original[function] = {"Environment": environment, "Timeout": config["Timeout"]}
            self._update(
                function, environment | change.get("Environment", {}), change.get("Timeout", config["Timeout"])
            )

    def restore(self) -> None:
        for function, original in self.original.items():
            self._update(function, original["Environment"], original["Timeout"])
        self.original.clear()

    @contextlib.asynccontextmanager
    async def active(self) -> AsyncIterator[None]:
        await asyncio.to_thread(self.apply)
        try:
            yield
        finally:
            await asyncio.to_thread(self.restore)


def connections_endpoint_via(stack: Stack, proxy_url: str) -> str:
    """The functions' @connections endpoint with the proxy's address in front of the emulator's path."""
    return via(stack.endpoints["websocket_management_endpoint"], urlsplit(proxy_url).port)


def functions_with(stack: Stack, variable: str) -> list[str]:
    lambda_client = stack.aws("lambda")
    return [
        key
        for key, name in stack.functions.items()
        if variable in lambda_client.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    ]


@contextlib.contextmanager
def queue_visibility(stack: Stack, seconds: int) -> Iterator[None]:
    """The events queue's visibility timeout set to `seconds` (how soon an unfinished message comes back)."""
    sqs, queue_url = stack.aws("sqs"), stack.endpoints["events_queue_url"]
    original = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(seconds)})
    try:
        yield
    finally:
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=original)


# --- scenarios ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    title: str
    simulated: str
    events: int = 0
    clients: int = 0
    lost: int = 0
    unrepaired: int = 0
    duplicates: int = 0
    stored_twice: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    complete_after: float | None = None
    wall_seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)  # what the fault did, and the scenario's own checks
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.lost or self.unrepaired or self.duplicates or self.stored_twice or self.problems)


async def measure(
    stack: Stack, outcome: Outcome, group: str, recorders: Sequence[Recorder], sent: dict[str, float]
) -> None:
    """Wait for the clients, then fill in what they ended with (`sent`: when each event was published)."""
    ids = list(sent)
    complete = await wait_complete(recorders, ids)
    outcome.events, outcome.clients = len(ids), len(recorders)
    if complete:
        outcome.complete_after = max(max(r.first_at[i] for i in ids) for r in recorders) - max(sent.values())
    latencies = sorted(at - sent[i] for r in recorders for i, at in r.first_at.items() if i in sent)
    if latencies:
        outcome.figures["publish to handler, median / max"] = (
            f"{statistics.median(latencies):.2f} s / {latencies[-1]:.2f} s"
        )
    in_store = await readable(stack, group)
    for recorder in recorders:
        missing = recorder.missing(ids)
        outcome.lost += sum(1 for event_id in missing if event_id not in in_store)
        outcome.unrepaired += sum(1 for event_id in missing if event_id in in_store)
        outcome.duplicates += recorder.duplicates()
    outcome.stored_twice = await asyncio.to_thread(stored_twice, stack, group)
    outcome.figures["client reconnects"] = sum(r.client.stats.opens - 1 for r in recorders)
    outcome.figures["client catch-ups over HTTP"] = sum(r.client.stats.syncs for r in recorders)


Scenario = Callable[[Stack, ProxyThread, Outcome], Awaitable[None]]


async def publish_through_proxy(
    stack: Stack,
    outcome: Outcome,
    faults: Sequence[Any],
    changes: Callable[[str], dict[str, dict[str, Any]]],
    *,
    count: int = 40,
    copies: int = 1,
    visibility: int | None = None,
    heal_when: Callable[[str, HttpFaultProxy], Awaitable[None]] | None = None,
) -> None:
    """Clients connected, the functions reconfigured to go through a fault proxy (`changes(proxy_url)`), events sent.

    `visibility`: the events queue's visibility timeout meanwhile; `heal_when(group, proxy)`: the faults
    end once it returns (after the last event was sent).
    """
    group = f"chaos-{outcome.name}-{uuid.uuid4().hex[:6]}"
    ids = event_ids(outcome.name, count)
    with HttpFaultProxy(stack.endpoints["emulator_endpoint"], faults).running() as proxy:
        async with fleet(stack, group) as recorders, Reconfigured(stack, changes(proxy.url)).active():
            with queue_visibility(stack, visibility) if visibility else contextlib.nullcontext():
                sent = await publish(stack, group, ids, copies=copies)
                if heal_when is not None:
                    await heal_when(group, proxy)
                    proxy.heal()
                await measure(stack, outcome, group, recorders, sent)
        outcome.figures["requests through the proxy"] = proxy.counts.requests
        injected = sorted(proxy.counts.injected.items())
        outcome.figures["answered by the proxy"] = ", ".join(f"{n} {kind}" for kind, n in injected)


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


async def missed_disconnects(stack: Stack, proxies: ProxyThread, outcome: Outcome) -> None:
    group = f"chaos-gone-{uuid.uuid4().hex[:6]}"
    ids = event_ids("gone", 30)
    stale_after = 60  # STALE_CONNECTION_SECONDS' minimum
    # ws-disconnect cannot reach DynamoDB (nothing listens there, one try): its $disconnect runs and fails.
    unreachable = {"AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    broken = Reconfigured(stack, {"ws-disconnect": {"Environment": unreachable}})
    async with (
        fleet(stack, group) as recorders,
        # Two vanish from the group the events go to (delivery finds them gone), two from a quiet one.
        fleet(stack, group, 2, prefix=f"{group}-vanished") as posted_to,
        fleet(stack, f"{group}-quiet", 2) as quiet,
    ):
        vanishing = [*posted_to, *quiet]
        opened = time.time()
        await asyncio.to_thread(broken.apply)
        try:
            for recorder in vanishing:
                await recorder.client.close()
            await asyncio.sleep(3)  # their $disconnect runs, and fails
        finally:
            await asyncio.to_thread(broken.restore)
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
        "Four more clients connect and close while ws-disconnect cannot reach DynamoDB, so their connection "
        "records and sessions stay: two in the group the events go to (delivery finds them gone once they are "
        "30 s old), two in a quiet group; maintenance (STALE_CONNECTION_SECONDS=60) is invoked once they are "
        "stale. Their users must end with no record, no session and offline.",
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


async def run_scenario(stack: Stack, proxies: ProxyThread, spec: Spec) -> Outcome:
    outcome = Outcome(spec.name, spec.title, spec.simulated)
    await asyncio.to_thread(drain_dead_letters, stack)
    started = time.monotonic()
    print(f"==> {spec.name}: {spec.title}", flush=True)
    try:
        await spec.run(stack, proxies, outcome)
    except Exception as error:  # one broken scenario is reported, the others still run
        outcome.problems.append(f"{type(error).__name__}: {error}")
    await asyncio.sleep(5)  # late retries of the scenario's own messages reach the DLQ now, or never
    outcome.dead_letters = await asyncio.to_thread(drain_dead_letters, stack)
    outcome.wall_seconds = time.monotonic() - started
    print(f"    {summary_line(outcome)}", flush=True)
    return outcome


async def run(endpoints: dict, only: Sequence[str] = ()) -> list[Outcome]:
    stack = Stack(endpoints)
    with ProxyThread().running() as proxies:
        return [await run_scenario(stack, proxies, spec) for spec in SCENARIOS if not only or spec.name in only]


# --- the report ----------------------------------------------------------------------------------


def summary_line(outcome: Outcome) -> str:
    complete = "never" if outcome.complete_after is None else f"{outcome.complete_after:.1f} s"
    verdict = "ok" if outcome.passed else "FAILED " + "; ".join(outcome.problems)
    return (
        f"{outcome.events} events x {outcome.clients} clients: lost {outcome.lost}, unrepaired {outcome.unrepaired}, "
        f"duplicates {outcome.duplicates}, stored twice {outcome.stored_twice}, "
        f"DLQ {sum(outcome.dead_letters.values())}, "
        f"complete after {complete} ({outcome.wall_seconds:.0f} s) {verdict}"
    )


def dead_letter_text(reasons: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "0"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.machine()


def report(outcomes: Sequence[Outcome], wall_seconds: float) -> str:
    machine = f"{cpu_model()} ({os.cpu_count()} CPUs), Linux {platform.release()}, Python {platform.python_version()}"
    lines = [
        "# Reliability under faults",
        "",
        "Written by `make chaos` (scripts/lab/chaos); do not edit by hand. Each scenario connects Python",
        "clients (`clients/python/realtime_client`, with their dedup and gap repair) to the stack on the",
        "local emulator, publishes a known set of events while a fault is injected, and checks what every",
        "client handed on. **Lost**: events a client never handed on that the store does not have either;",
        "**unrepaired**: events a client had not handed on by the deadline (120 s after the last publish)",
        "although the store has them; **duplicates**: events a client handed on more than once;",
        "**stored twice**: events with more than one item on their topic; **DLQ**: messages that reached a",
        "dead-letter queue, by reason; **complete after**: from the last publish until every client had",
        "every event.",
        "",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}; ministack (the emulator) runs the functions",
        f"on this machine. {len(outcomes)} scenarios in {wall_seconds:.0f} s.",
        "",
        "| scenario | events x clients | lost | unrepaired | duplicates after dedup | stored twice | DLQ "
        "| complete after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        complete = "never" if outcome.complete_after is None else f"{outcome.complete_after:.1f} s"
        lines.append(
            f"| {outcome.title} | {outcome.events} x {outcome.clients} | {outcome.lost} | {outcome.unrepaired} | "
            f"{outcome.duplicates} | {outcome.stored_twice} | {dead_letter_text(outcome.dead_letters)} | {complete} |"
        )
    for outcome in outcomes:
        lines += ["", f"## {outcome.title}", "", outcome.simulated, "", "| figure | value |", "|---|---|"]
        lines.append(f"| result | {'passed' if outcome.passed else 'FAILED: ' + '; '.join(outcome.problems)} |")
        lines += [f"| {name} | {value} |" for name, value in outcome.figures.items()]
        lines.append(f"| scenario wall time | {outcome.wall_seconds:.0f} s |")
    lines += [
        "",
        "## What is simulated, and what is not",
        "",
        "- The faults are injected from outside the functions: loopback proxies the functions are pointed at",
        "  through their configuration (`CONNECTIONS_ENDPOINT`, `AWS_ENDPOINT_URL_DYNAMODB`), the Lambda API",
        "  (a function's timeout) and the SQS API (the visibility timeout). The production code has no test hooks.",
        "- The emulator is not AWS: its Lambda runs the functions on this machine, its SQS-to-Lambda mapping",
        "  ignores batching windows, and it enforces no throttling of its own.",
        "  The figures show how the design behaves under each fault, not AWS's timings.",
        "- The proxies' choice of failing requests is deterministic (a hash of the request and a seed), and",
        "  every fault is bounded: a request that failed its given number of times is forwarded.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, default=os.environ.get("REALTIME_STACK_ENDPOINTS"))
    parser.add_argument("--only", nargs="*", default=[], choices=[spec.name for spec in SCENARIOS])
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    started = time.monotonic()
    if args.endpoints:
        outcomes = asyncio.run(run(read_endpoints(args.endpoints), args.only))
    else:
        with tempfile.TemporaryDirectory(prefix="realtime-chaos-") as tmp, stack_on_free_port(Path(tmp)) as endpoints:
            outcomes = asyncio.run(run(endpoints, args.only))
    args.report.write_text(report(outcomes, time.monotonic() - started))
    print(f"==> {args.report}")
    failed = [outcome.name for outcome in outcomes if not outcome.passed]
    if failed:
        sys.exit(f"chaos: {', '.join(failed)} lost, duplicated or failed a check")


if __name__ == "__main__":
    main()
