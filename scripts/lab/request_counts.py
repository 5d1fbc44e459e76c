"""AWS requests and DynamoDB capacity per operation, counted on the real handlers (on moto).

    python -m scripts.lab.request_counts [--json]

Every AWS client the functions create comes from boto3's default session; hooks
on that session see each request the handlers send (`before-call`) and each
response (`after-call`). The harness runs the handlers as the unit tests do
(moto, the unit tests' events and tokens: scripts.lab.lambda_events) and counts, per operation:

- requests by service and API call (`dynamodb:PutItem`, `sqs:SendMessageBatch`,
  `execute-api:PostToConnection`, ...);
- DynamoDB read and write capacity units (`rcu`, `wcu`).

Capacity: a hook asks every DynamoDB call for ReturnConsumedCapacity=TOTAL and
the responses' figures are summed as `reported_capacity`, but moto answers a
constant (0.5 or 1 per call, whatever the items), so `rcu` and `wcu` are computed
from the items' sizes by DynamoDB's rules instead: a read unit per 4 KB (half for
an eventually consistent read; a Query or Scan rounds the sum of the items it
evaluates, before any filter), a write unit per 1 KB of the larger of the item
before and after (a failed condition still pays), twice both in transactions.
The sizes are read through a separate, uncounted client. On-demand bills these
units as read and write request units.

Steady state: each operation is measured on a warm container (its first call,
which reads the token secret, is made before counting).

Keepalives are not measured: the gateway answers `ping` itself (a MOCK
integration), so a ping costs no invocation and no AWS request the harness
could see (only its two billed messages, which scripts.lab.cost_model prices).
What keeps a live connection's record fresh is maintenance instead: it asks
`@connections` about every connection not seen for the stale threshold
(GetConnection; moto answers any id as alive) and moves the lastSeen of those
alive. `maintenance_check_per_connection` is that check, measured on 1,000
connections made due (their lastSeen moved back through the uncounted client)
less the same run with none due; `connection_hour` counts it
CONNECTION_CHECKS_PER_HOUR times (scripts.module_defaults).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from unittest import mock

import boto3
import botocore.client
from moto import mock_aws
from realtime.core import aws, lifecycle
from realtime.core.encoding import timestamp_at

from scripts.lab.lambda_events import (
    AUDIENCE,
    ISSUER,
    REGION,
    SECRET,
    SSM_PARAMETER,
    FakeLambdaContext,
    http_event,
    make_token,
    sqs_record,
    ws_event,
)
from scripts.module_defaults import (
    CONNECTION_CHECKS_PER_HOUR,
    FUNCTION_ENVIRONMENT,
    MAINTENANCE_RUNS_PER_HOUR,
    VARIABLES,
)

TABLES = {
    "connections": ("realtime-bench-connections", [("pk", "S", "HASH"), ("sk", "S", "RANGE")]),
    "events": ("realtime-bench-events", [("topic", "S", "HASH"), ("seq", "N", "RANGE")]),
    "presence": ("realtime-bench-presence", [("userId", "S", "HASH")]),
}
QUEUES = ("events", "fanout", "dlq", "checks", "presence-events")
ENDPOINT = "https://bench123.execute-api.us-east-1.amazonaws.com/live"
READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024
MAINTENANCE_SIZES = (100, 1000)
# Connections the steady-state maintenance runs are measured on (made due a check, then not).
CHECKED_CONNECTIONS = 1000
STALE_SECONDS = VARIABLES["stale_connection_threshold_seconds"]
CONNECTION_HOURS = 2  # API Gateway closes every WebSocket after 2 hours: a connect and a disconnect per 2 h
TOPIC_COUNTS = (1, 3, 10)


# --- DynamoDB's sizing rules -----------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return 1 + math.ceil(len(digits) / 2)


def value_size(value: dict[str, Any]) -> int:
    """The size of one typed attribute value, as DynamoDB counts it."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        return _number_size(raw)
    if kind == "B":
        return len(base64.b64decode(raw))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in raw)
    if kind == "NS":
        return sum(_number_size(n) for n in raw)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in raw)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in raw.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(v) for name, v in (item or {}).items())


def _units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


# --- the meter ---------------------------------------------------------------------------------------


@dataclass
class Counts:
    requests: Counter = field(default_factory=Counter)
    rcu: float = 0.0
    wcu: float = 0.0
    reported_capacity: float = 0.0

    def as_dict(self, per: float = 1) -> dict[str, Any]:
        requests = {name: round(n / per, 3) for name, n in sorted(self.requests.items())}
        by_service = Counter()
        for name, n in self.requests.items():
            by_service[name.split(":")[0]] += n
        return {
            "requests": requests,
            "rcu": round(self.rcu / per, 3),
            "wcu": round(self.wcu / per, 3),
            "reported_capacity": round(self.reported_capacity / per, 3),
            **{service: round(by_service[service] / per, 3) for service in ("dynamodb", "sqs", "execute-api")},
        }


class Meter:
    """Counts every request of clients made by boto3's default session, with DynamoDB capacity by item sizes."""

    def __init__(self) -> None:
        self.counts = Counts()
        self.counting = False
        # Maintenance asks @connections from worker threads (realtime.connections.sweep).
        self._lock = threading.Lock()
        self._shadow = boto3.session.Session(region_name=REGION).client("dynamodb")
        self._key_names: dict[str, list[str]] = {}
        events = boto3._get_default_session().events
        events.register("before-parameter-build.dynamodb.*", self._ask_for_capacity)
        events.register("before-call.*.*", self._before)
        events.register("after-call.dynamodb.*", self._after)

    @property
    def uncounted(self) -> Any:
        """A DynamoDB client of its own session: what it does is not counted."""
        return self._shadow

    @contextmanager
    def measuring(self) -> Iterator[Counts]:
        self.counts, self.counting = Counts(), True
        try:
            yield self.counts
        finally:
            self.counting = False

    # -- hooks

    @staticmethod
    def _ask_for_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params["ReturnConsumedCapacity"] = "TOTAL"

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.counting:
            return
        with self._lock:
            self.counts.requests[f"{model.service_model.signing_name}:{model.name}"] += 1
        if model.service_model.service_name == "dynamodb":
            request = json.loads(params["body"] or b"{}")
            context["bench_request"] = request
            context["bench_before"] = {key: self._size(*key) for key in self._written_keys(model.name, request)}

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.counting or "bench_request" not in context:
            return
        reported = parsed.get("ConsumedCapacity") or []
        for entry in reported if isinstance(reported, list) else [reported]:
            self.counts.reported_capacity += float(entry.get("CapacityUnits", 0))
        request, before = context["bench_request"], context["bench_before"]
        name = model.name
        if before:
            factor = 2 if name == "TransactWriteItems" else 1
            for key, size in before.items():
                self.counts.wcu += factor * _units(max(size, self._size(*key)), WRITE_UNIT_BYTES)
        elif name in ("GetItem", "BatchGetItem", "TransactGetItems"):
            factor = 2 if name == "TransactGetItems" else 1
            for table, key, consistent in self._read_keys(name, request):
                share = 1 if consistent or factor == 2 else 0.5
                self.counts.rcu += factor * share * _units(self._size(table, _frozen(key)), READ_UNIT_BYTES)
        elif name in ("Query", "Scan"):
            share = 1 if request.get("ConsistentRead") else 0.5
            self.counts.rcu += share * _units(self._evaluated_bytes(name, request), READ_UNIT_BYTES)

    # -- sizes through the uncounted client

    def _size(self, table: str, key: tuple[tuple[str, str], ...]) -> int:
        item = self._shadow.get_item(TableName=table, Key={k: json.loads(v) for k, v in key}, ConsistentRead=True)
        return item_size(item.get("Item"))

    def _key_of(self, table: str, item: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        if table not in self._key_names:
            schema = self._shadow.describe_table(TableName=table)["Table"]["KeySchema"]
            self._key_names[table] = [k["AttributeName"] for k in schema]
        return _frozen({name: item[name] for name in self._key_names[table]})

    def _written_keys(self, name: str, request: dict[str, Any]) -> list[tuple[str, tuple]]:
        if name == "PutItem":
            return [(request["TableName"], self._key_of(request["TableName"], request["Item"]))]
        if name in ("UpdateItem", "DeleteItem"):
            return [(request["TableName"], _frozen(request["Key"]))]
        if name == "BatchWriteItem":
            return [
                (table, self._key_of(table, entry["PutRequest"]["Item"]))
                if "PutRequest" in entry
                else (table, _frozen(entry["DeleteRequest"]["Key"]))
                for table, entries in request["RequestItems"].items()
                for entry in entries
            ]
        if name == "TransactWriteItems":
            keys = []
            for entry in request["TransactItems"]:
                ((kind, action),) = entry.items()
                table = action["TableName"]
                keys.append((table, self._key_of(table, action["Item"]) if kind == "Put" else _frozen(action["Key"])))
            return keys
        return []

    @staticmethod
    def _read_keys(name: str, request: dict[str, Any]) -> list[tuple[str, dict, bool]]:
        if name == "GetItem":
            return [(request["TableName"], request["Key"], bool(request.get("ConsistentRead")))]
        if name == "BatchGetItem":
            return [
                (table, key, bool(spec.get("ConsistentRead")))
                for table, spec in request["RequestItems"].items()
                for key in spec["Keys"]
            ]
        return [(e["Get"]["TableName"], e["Get"]["Key"], True) for e in request["TransactItems"]]

    def _evaluated_bytes(self, name: str, request: dict[str, Any]) -> int:
        """What a Query or Scan reads (and pays for): its items in full, before the filter."""
        shadow = {k: v for k, v in request.items() if k in ("TableName", "Limit", "ExclusiveStartKey", "IndexName")}
        if name == "Query":
            condition = request["KeyConditionExpression"]
            shadow["KeyConditionExpression"] = condition
            used = set(re.findall(r"[#:]\w+", condition))
            for part in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
                kept = {k: v for k, v in request.get(part, {}).items() if k in used}
                if kept:
                    shadow[part] = kept
            items = self._shadow.query(**shadow)["Items"]
        else:
            items = self._shadow.scan(**shadow)["Items"]
        return sum(item_size(item) for item in items)


def _frozen(key: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, json.dumps(value, sort_keys=True)) for name, value in key.items()))


# --- the world the handlers run in -------------------------------------------------------------------


class World:
    """Tables, queues, the token secret and the functions' environment on moto (presence on)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for name, schema in TABLES.values():
            dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": a, "KeyType": k} for a, _, k in schema],
                AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t, _ in schema],
                BillingMode="PAY_PER_REQUEST",
            )
        sqs = boto3.client("sqs", region_name=REGION)
        self.queues = {name: sqs.create_queue(QueueName=f"realtime-bench-{name}")["QueueUrl"] for name in QUEUES}
        boto3.client("ssm", region_name=REGION).put_parameter(Name=SSM_PARAMETER, Value=SECRET, Type="SecureString")
        os.environ.update(
            {
                **FUNCTION_ENVIRONMENT,
                "CONNECTIONS_TABLE": TABLES["connections"][0],
                "EVENTS_TABLE": TABLES["events"][0],
                "PRESENCE_TABLE": TABLES["presence"][0],
                "EVENTS_QUEUE_URL": self.queues["events"],
                "FANOUT_QUEUE_URL": self.queues["fanout"],
                "DLQ_URL": self.queues["dlq"],
                "PRESENCE_CHECKS_QUEUE_URL": self.queues["checks"],
                "PRESENCE_EVENTS_QUEUE_URL": self.queues["presence-events"],
                "PRESENCE_EVENTS_QUEUE_ARN": sqs.get_queue_attributes(
                    QueueUrl=self.queues["presence-events"], AttributeNames=["QueueArn"]
                )["Attributes"]["QueueArn"],
                "PRESENCE_GRACE_SECONDS": "0",
                "GROUP_PRESENCE_ENABLED": "false",
                "MAX_PRESENCE_USERS": "100",
                "CONNECTIONS_ENDPOINT": ENDPOINT,
                "TOKEN_MODE": "hs256",
                "TOKEN_SECRET_SSM_PARAMETER": SSM_PARAMETER,
                "TOKEN_ISSUER": ISSUER,
                "TOKEN_AUDIENCE": AUDIENCE,
            }
        )
        self.context = FakeLambdaContext(remaining_millis=900_000)

    def token(self, user: str, topics: list[str]) -> str:
        return make_token(user, topics=topics)

    def connect(self, user: str, topics: list[str], connection_id: str | None = None) -> str:
        from realtime.handlers import ws_connect

        connection_id = connection_id or f"c-{uuid.uuid4().hex[:12]}"
        event = ws_event("$connect", connection_id, queryStringParameters={"token": self.token(user, topics)})
        event["requestContext"]["connectedAt"] = int(time.time() * 1000)
        assert ws_connect.handler(event, self.context)["statusCode"] == 200
        return connection_id

    def disconnect(self, connection_id: str) -> None:
        from realtime.handlers import ws_disconnect

        ws_disconnect.handler(ws_event("$disconnect", connection_id), self.context)

    def last_seen(self, seconds_ago: float, connection_ids: Sequence[str] = (), users: Sequence[str] = ()) -> None:
        """Move the lastSeen of connection records and of users' presence back, through the uncounted client."""
        client, value = self.meter.uncounted, {":at": {"S": timestamp_at(time.time() - seconds_ago)}}
        keys = [(TABLES["connections"][0], {"pk": {"S": f"conn#{c}"}, "sk": {"S": "meta"}}) for c in connection_ids]
        keys += [(TABLES["presence"][0], {"userId": {"S": user}}) for user in users]
        for table, key in keys:
            client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET lastSeen = :at",
                ConditionExpression="attribute_exists(lastSeen)",
                ExpressionAttributeValues=value,
            )

    def publish(self, events: list[dict[str, Any]]) -> None:
        from realtime.handlers import process_events

        records = [sqs_record(json.dumps(e), f"m-{uuid.uuid4().hex[:12]}") for e in events]
        process_events.handler({"Records": records}, self.context)

    def read_events(self, token: str, **query: str) -> dict[str, Any]:
        from realtime.handlers import events_api

        event = http_event(headers={"authorization": f"Bearer {token}"}, query=query or None)
        return json.loads(events_api.handler(event, self.context)["body"])

    def maintain(self) -> dict[str, Any]:
        """One maintenance run; its summary (connections checked, alive, removed, ...)."""
        from realtime.handlers import maintenance

        return maintenance.handler({}, self.context)


@contextmanager
def _one_request_at_a_time() -> Iterator[None]:
    """One request, with its counting hooks, at a time: the functions send requests from several threads
    (the store writes a batch's topics side by side), and neither moto nor the counts' sums are
    thread-safe (unlocked, a 10-topic event's write units came out between 22 and 44 from run to run)."""
    lock = threading.RLock()  # re-entered by the hooks' own size lookups
    make_api_call = botocore.client.BaseClient._make_api_call

    def one_at_a_time(self: Any, operation: str, params: dict) -> Any:
        with lock:
            return make_api_call(self, operation, params)

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", one_at_a_time):
        yield


@contextmanager
def world() -> Iterator[World]:
    saved = dict(os.environ)
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION})
    os.environ.update(
        {
            "AWS_REGION": REGION,
            "POWERTOOLS_SERVICE_NAME": "bench",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    try:
        # The handlers' metrics (printed as EMF lines) would drown the figures.
        # Delivery's signed @connections client bypasses botocore's hooks (and moto): its boto3
        # twin makes the same calls, counted.
        boto3_posts = mock.patch.object(aws, "connections_gateway", _boto3_connections_client)
        with mock_aws(), boto3_posts, _one_request_at_a_time(), redirect_stdout(io.StringIO()):
            boto3.setup_default_session()
            lifecycle.reset()
            yield World(Meter())
    finally:
        lifecycle.reset()
        os.environ.clear()
        os.environ.update(saved)


def _boto3_connections_client(endpoint_url: str, concurrency: int = 10) -> Any:
    return aws.connections_management(endpoint_url, concurrency, retries=False)


# --- the operations ----------------------------------------------------------------------------------


def _event(topics: list[str]) -> dict[str, Any]:
    return {"type": "bench.event", "audience": topics, "data": {"text": "x" * 200}}


def _measure(w: World, action: Callable[[], Any], per: float = 1) -> dict[str, Any]:
    with w.meter.measuring() as counts:
        action()
    return counts.as_dict(per)


def measure() -> dict[str, dict[str, Any]]:
    """Requests and capacity per operation (see the module's docstring), keyed by operation name."""
    result: dict[str, dict[str, Any]] = {}
    with world() as w:
        # Warm every function once (the token secret is read on the first verification only).
        first = w.connect("warm", ["group:warm"])
        w.publish([_event(["group:warm"])])
        w.read_events(w.token("warm", ["group:warm"]))
        w.disconnect(first)

        result["connect"] = _measure(w, lambda: w.connect("user-a", ["group:a", "user:user-a"]))
        lone = w.connect("user-b", ["group:b"])
        result["disconnect"] = _measure(w, lambda: w.disconnect(lone))

        w.connect("user-c", ["group:c"])  # the audience of event_to_1, the reader of page_read

        for n in TOPIC_COUNTS:
            topics = [f"group:quiet-{n}-{i}" for i in range(n)]
            result[f"event_{n}_topics"] = _measure(w, lambda t=topics: w.publish([_event(t)]))

        audience = [w.connect(f"fan-{i}", ["group:stage"]) for i in range(100)]
        result["event_to_100"] = _measure(w, lambda: w.publish([_event(["group:stage"])]))
        result["event_to_1"] = _measure(w, lambda: w.publish([_event(["group:c"])]))
        delivery = _difference(result["event_to_100"], result["event_to_1"], 99)
        result["delivery_per_connection"] = delivery
        result["batch_10_events_one_topic"] = _measure(
            w, lambda: w.publish([_event(["group:stage"]) for _ in range(10)])
        )
        for connection_id in audience:
            w.disconnect(connection_id)

        reader = w.token("user-c", ["group:c"])
        w.publish([_event(["group:c"]) for _ in range(20)])
        result["page_read"] = _measure(w, lambda: w.read_events(reader, limit="10"))
        short = _measure(w, lambda: w.read_events(reader, since="now", wait="2"))
        long = _measure(w, lambda: w.read_events(reader, since="now", wait="6"))
        result["long_poll_second"] = _difference(long, short, 4)

    for size in MAINTENANCE_SIZES:
        with world() as w:
            w.maintain()  # warm
            for i in range(size):
                w.connect(f"u-{i}", [f"group:{i % 10}", f"user:u-{i}"])
            result[f"maintenance_{size}_connections"] = _measure(w, w.maintain)
    result |= measure_connection_checks(CHECKED_CONNECTIONS)
    result["connection_hour"] = connection_hour(result)
    return result


def measure_connection_checks(size: int) -> dict[str, dict[str, Any]]:
    """Maintenance over `size` connections connected longer than the stale threshold: a run with none of them
    due a check (checked lately), the same run with all of them due, and the difference per connection.

    Their users' presence lastSeen (the latest connect) is moved back too, as it is for every connection
    older than the threshold: presence repair then reads every one's record each run (what a steady
    state costs, not the 1 in 12 sample of users connected lately that `maintenance_<n>_connections` sees).
    The checks' rate limit (maintenance_connection_checks_per_second) is raised for the measurement: it
    only sleeps, and counts nothing. Both runs draw the same random numbers (the retention report samples
    from a random place), so their difference is the checks alone.
    """
    with world() as w:
        os.environ["CONNECTION_CHECKS_PER_SECOND"] = "5000"
        w.maintain()  # warm
        users = [f"u-{i}" for i in range(size)]
        connections = [w.connect(user, [f"group:{i % 10}", f"user:{user}"]) for i, user in enumerate(users)]
        w.last_seen(STALE_SECONDS + 60, users=users)
        random.seed(CHECKED_CONNECTIONS)
        with w.meter.measuring() as counts:
            summary = w.maintain()
        assert summary["connections_checked"] == 0, summary
        settled = counts.as_dict()
        w.last_seen(STALE_SECONDS + 60, connection_ids=connections)
        random.seed(CHECKED_CONNECTIONS)
        with w.meter.measuring() as counts:
            summary = w.maintain()
        assert (summary["connections_checked"], summary["connections_alive"]) == (size, size), summary
        due = counts.as_dict()
    return {
        f"maintenance_{size}_settled": settled,
        f"maintenance_{size}_due": due,
        "maintenance_check_per_connection": _difference(due, settled, size),
    }


def _combined(parts: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """The sum of operations' counts, each times its weight."""
    requests: Counter = Counter()
    for counts, weight in parts:
        for name, n in counts["requests"].items():
            requests[name] += n * weight
    keys = [k for k in parts[0][0] if k != "requests"]
    return {
        "requests": {n: round(v, 3) for n, v in sorted(requests.items()) if round(v, 3)},
        **{k: round(sum(counts[k] * weight for counts, weight in parts), 3) for k in keys},
    }


def _difference(more: dict[str, Any], fewer: dict[str, Any], per: float) -> dict[str, Any]:
    return _combined([(more, 1 / per), (fewer, -1 / per)])


def connection_hour(result: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The standing cost of one idle connection for an hour: maintenance's checks of it
    (CONNECTION_CHECKS_PER_HOUR), its share of every maintenance run (the scans and presence repair, on the
    steady-state table of CHECKED_CONNECTIONS), and a connect and a disconnect every two hours. Its pings
    are answered by the gateway: no AWS request the harness could count."""
    return _combined(
        [
            (result["maintenance_check_per_connection"], CONNECTION_CHECKS_PER_HOUR),
            (result[f"maintenance_{CHECKED_CONNECTIONS}_settled"], MAINTENANCE_RUNS_PER_HOUR / CHECKED_CONNECTIONS),
            (result["connect"], 1 / CONNECTION_HOURS),
            (result["disconnect"], 1 / CONNECTION_HOURS),
        ]
    )


def render(counts: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'operation':<30} {'dynamodb':>9} {'rcu':>8} {'wcu':>8} {'sqs':>6} {'execute-api':>11}  requests"]
    for name, c in counts.items():
        detail = ", ".join(f"{k} {v:g}" for k, v in c["requests"].items())
        lines.append(
            f"{name:<30} {c['dynamodb']:>9g} {c['rcu']:>8g} {c['wcu']:>8g} {c['sqs']:>6g} {c['execute-api']:>11g}  "
            f"{detail}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args()
    counts = measure()
    print(json.dumps(counts, indent=2, default=_plain) if args.json else render(counts))


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else str(value)


if __name__ == "__main__":
    main()
