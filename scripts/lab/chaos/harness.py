"""The harness of the chaos scenarios: Python clients on the stack, what the stack ends with,
faults through the functions' configuration, and what a scenario measures (`Outcome`).

The scenarios are in `scripts.lab.chaos.scenarios`; `scripts.lab.chaos.runner` runs them and writes the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from realtime_client import RealtimeClient
from realtime_publisher import Publisher

from scripts.lab.fault_proxy import HttpFaultProxy, ProxyThread
from scripts.local.emulator import emulator_client
from scripts.local.mint_token import local_secret, mint_token

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


# --- what a scenario measures -------------------------------------------------------------------


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
