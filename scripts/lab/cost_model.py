"""What events and connections cost at on-demand list prices, from the counted requests.

    .venv/bin/python -m scripts.lab.cost_model [--counts counts.json] [--monthly]

Takes `scripts.lab.request_counts.measure()`'s counts (measured afresh without
--counts) and renders markdown: the cost of a million events for audiences of
1, 100 and 10,000 connections, beside the same for the common Scan-per-message
design (each event Scans every connection record and posts to its audience),
whose cost per event grows with the total number of connections; and the cost
of a million idle connection-minutes and an idle connection's requests an hour,
on a visible page (pings every 60 s) and a hidden one (every 8 minutes), beside
0.2's (pings every 30 s, each invoking ws-ping: BEFORE_*).

Since 0.3 the gateway answers `ping` itself: a ping and its pong are two
billed messages and nothing else. Maintenance checks each live connection
every stale threshold plus schedule period (GetConnection, then a write):
GetConnection is counted as one billed message, an ASSUMPTION (AWS bills
WebSocket "messages sent and received" and does not say whether @connections
calls are billed; the rendered text says so).

Prices: us-east-1, on-demand, as listed on AWS's pricing pages (PRICES_AS_OF);
check them before relying on the figures. Lambda time is not counted by the
harness: it is estimated from DURATION_MS (warm invocations on arm64 at the
module's default memory sizes), the least certain input here.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from scripts.module_defaults import (
    CONNECTION_CHECK_SECONDS,
    CONNECTION_CHECKS_PER_HOUR,
    MAINTENANCE_RUNS_PER_HOUR,
    PING_INTERVAL_SECONDS,
    VARIABLES,
)

PRICES_AS_OF = "2026-12-01"
PRICES = {
    # API Gateway WebSocket: messages (sent and received, per 32 KB) and connection minutes (first 1 billion tier).
    "websocket_message": 1.00 / 1e6,
    "connection_minute": 0.25 / 1e6,
    # DynamoDB on-demand (standard table class): a read request unit reads 4 KB strongly consistent,
    # or twice that eventually consistent; a write request unit writes 1 KB.
    "read_unit": 0.125 / 1e6,
    "write_unit": 0.625 / 1e6,
    # SQS standard queue, per request (per 64 KB chunk of payload), after the free tier.
    "sqs_request": 0.40 / 1e6,
    # Lambda on arm64: per request and per GB-second.
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,
}
# Estimated warm duration (ms) of one invocation of each function, at its default memory (MB);
# fanout gets process-events' memory size. ws-ping is 0.2's (BEFORE_*).
_MEMORY_MB = VARIABLES["lambda_memory_size"]
_PIPELINE_MEMORY_MB = VARIABLES["process_events_memory_size"]
DURATION_MS = {"ws-ping": (8, _MEMORY_MB), "ws-connect": (40, _MEMORY_MB), "ws-disconnect": (30, _MEMORY_MB)}
DURATION_MS |= {"process-events": (60, _PIPELINE_MEMORY_MB), "fanout": (400, _PIPELINE_MEMORY_MB)}
DURATION_MS |= {"maintenance-per-1000": (2000, _MEMORY_MB)}
# A check holds the maintenance run for its share of the rate limit (not an invocation of its own).
DURATION_MS |= {"maintenance-check": (1000 / VARIABLES["maintenance_connection_checks_per_second"], _MEMORY_MB)}
EVENTS_PER_BATCH = VARIABLES["process_events_batch_size"]
# Connections process-events posts itself; beyond, pages of FANOUT_PAGE_SIZE through the fanout queue.
FANOUT_THRESHOLD = VARIABLES["fanout_threshold"]
FANOUT_PAGE_SIZE = VARIABLES["fanout_page_size"]
AUDIENCES = (1, 100, 10_000)
TOTAL_CONNECTIONS = (1_000, 10_000, 100_000)
# The Scan-per-message design: one connection item of about this many bytes per connection.
SCAN_ITEM_BYTES = 150

# Targets per million idle connection-minutes (USD), by page visibility: tests/tooling/test_cost_model.py
# holds the module's defaults to them.
TARGETS = {"visible": 2.50, "hidden": 0.75}
PAGES = {"visible": "visible page", "hidden": "hidden page"}

# 0.2, before the gateway answered pings: both clients pinged every 30 s, every ping invoked ws-ping
# (DURATION_MS), which wrote lastSeen at most every half stale threshold. An idle connection's hour as
# scripts.lab.request_counts counted it then (`make bench`, docs/benchmarks/results.json as of commit
# 3065e9a): 120 pings (25 GetItem, 48 UpdateItem), maintenance's share at 1,000 connections, a connect
# and a disconnect every 2 h.
BEFORE_VERSION = "0.2"
BEFORE_PING_SECONDS = 30
BEFORE_CONNECTION_HOUR: dict[str, Any] = {
    "requests": {
        "dynamodb:BatchGetItem": 0.228,
        "dynamodb:BatchWriteItem": 1.0,
        "dynamodb:DescribeTable": 0.024,
        "dynamodb:GetItem": 26.0,
        "dynamodb:PutItem": 0.5,
        "dynamodb:Scan": 0.06,
        "dynamodb:UpdateItem": 50.0,
        "sqs:SendMessage": 1.0,
    },
    "rcu": 15.636,
    "wcu": 54.0,
    "sqs": 1.0,
    "dynamodb": 77.812,
    "execute-api": 0.0,
}


@dataclass(frozen=True)
class Cost:
    gateway: float = 0.0
    lambda_: float = 0.0
    dynamodb: float = 0.0
    sqs: float = 0.0

    @property
    def total(self) -> float:
        return self.gateway + self.lambda_ + self.dynamodb + self.sqs

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(a + b for a, b in zip(self._parts(), other._parts(), strict=True)))

    def __mul__(self, factor: float) -> Cost:
        return Cost(*(a * factor for a in self._parts()))

    def _parts(self) -> tuple[float, float, float, float]:
        return (self.gateway, self.lambda_, self.dynamodb, self.sqs)


def billed_messages(counts: dict[str, Any]) -> float:
    """@connections calls billed as WebSocket messages: posts, and GetConnection (an ASSUMPTION: AWS does not
    say whether it is billed; counted as a message so as not to understate)."""
    requests = counts["requests"]
    return requests.get("execute-api:PostToConnection", 0) + requests.get("execute-api:GetConnection", 0)


def of_counts(counts: dict[str, Any]) -> Cost:
    """AWS requests and capacity of one operation, priced (Lambda apart)."""
    return Cost(
        gateway=billed_messages(counts) * PRICES["websocket_message"],
        dynamodb=counts["rcu"] * PRICES["read_unit"] + counts["wcu"] * PRICES["write_unit"],
        sqs=counts["sqs"] * PRICES["sqs_request"],
    )


def invocations(function: str, count: float) -> Cost:
    ms, mb = DURATION_MS[function]
    return Cost(lambda_=count * (PRICES["lambda_request"] + ms / 1000 * mb / 1024 * PRICES["lambda_gb_second"]))


def per_event(counts: dict[str, dict[str, Any]], audience: int) -> Cost:
    """One event to one topic with `audience` connections, stored and delivered."""
    stored = of_counts(counts["event_1_topics"])
    delivered = of_counts(counts["delivery_per_connection"]) * audience
    # The producer's SendMessage, and Lambda's receive and delete of the batch it is in.
    queue = Cost(sqs=(1 + 2 / EVENTS_PER_BATCH) * PRICES["sqs_request"])
    pages = max(0, -(-(audience - FANOUT_THRESHOLD) // FANOUT_PAGE_SIZE)) if audience > FANOUT_THRESHOLD else 0
    # Each fan-out page: a job sent, received and deleted, and one fanout invocation.
    fanout = Cost(sqs=3 * pages * PRICES["sqs_request"]) + invocations("fanout", pages)
    return stored + delivered + queue + fanout + invocations("process-events", 1 / EVENTS_PER_BATCH)


def scan_per_event(audience: int, total: int) -> Cost:
    """The common design: one Lambda per event that Scans every connection, then posts to the audience."""
    scanned_units = max(1, -(-total * SCAN_ITEM_BYTES // 4096)) * 0.5  # eventually consistent
    return Cost(
        gateway=audience * PRICES["websocket_message"],
        dynamodb=scanned_units * PRICES["read_unit"],
        sqs=(1 + 2 / EVENTS_PER_BATCH) * PRICES["sqs_request"],
    ) + invocations("process-events", 1 / EVENTS_PER_BATCH)


@dataclass(frozen=True)
class IdleMinute:
    """An idle connection's minute, by what it pays for (USD)."""

    connection: float = 0.0  # the gateway's connection-minute
    pings: float = 0.0  # each ping and its pong: two billed messages
    checks: float = 0.0  # maintenance's GetConnection, assumed billed as a message
    dynamodb: float = 0.0
    sqs: float = 0.0
    lambda_: float = 0.0

    @property
    def total(self) -> float:
        return sum(getattr(self, part.name) for part in fields(self))

    def __mul__(self, factor: float) -> IdleMinute:
        return IdleMinute(*(getattr(self, part.name) * factor for part in fields(self)))


def _idle_minute(hour: dict[str, Any], ping_seconds: float, lambda_per_minute: Cost) -> IdleMinute:
    """The gateway's minute, the pings' messages, and a minute's share of an idle connection-hour's counts."""
    return IdleMinute(
        connection=PRICES["connection_minute"],
        pings=2 * 60 / ping_seconds * PRICES["websocket_message"],
        checks=billed_messages(hour) / 60 * PRICES["websocket_message"],
        dynamodb=(hour["rcu"] * PRICES["read_unit"] + hour["wcu"] * PRICES["write_unit"]) / 60,
        sqs=hour["sqs"] * PRICES["sqs_request"] / 60,
        lambda_=lambda_per_minute.lambda_,
    )


def _connects_and_runs_per_minute() -> Cost:
    """Lambda per idle minute in both designs: a connect and a disconnect every 2 h, and a share of the
    maintenance runs (estimated per 1,000 connections a run)."""
    connects = (invocations("ws-connect", 1) + invocations("ws-disconnect", 1)) * (1 / 120)
    return connects + invocations("maintenance-per-1000", 1) * (MAINTENANCE_RUNS_PER_HOUR / 1000 / 60)


def per_connection_minute(counts: dict[str, dict[str, Any]], ping_seconds: float) -> IdleMinute:
    """An idle connection for a minute now: the gateway's minute, its pings (answered by the gateway: two
    messages, no invocation), and a minute's share of the counted connection-hour (maintenance's checks,
    its runs, a connect and a disconnect every 2 h). The checks hold the maintenance run for their share
    of its rate limit: Lambda time, no invocation of their own."""
    hour = counts["connection_hour"]
    checks = hour["requests"].get("execute-api:GetConnection", 0) / 60
    lambda_ = _connects_and_runs_per_minute() + Cost(lambda_=checks * _seconds_cost("maintenance-check"))
    return _idle_minute(hour, ping_seconds, lambda_)


def before_connection_minute() -> IdleMinute:
    """The same minute in 0.2: pings every 30 s, each invoking ws-ping; the connection-hour counted then."""
    pings = 60 / BEFORE_PING_SECONDS
    lambda_ = _connects_and_runs_per_minute() + invocations("ws-ping", pings)
    return _idle_minute(BEFORE_CONNECTION_HOUR, BEFORE_PING_SECONDS, lambda_)


def _seconds_cost(function: str) -> float:
    ms, mb = DURATION_MS[function]
    return ms / 1000 * mb / 1024 * PRICES["lambda_gb_second"]


def scan_per_connection_minute(ping_seconds: float) -> IdleMinute:
    """The common design's connection: the gateway's minute and the same pings (answered by the gateway
    too), a put and a delete per 2 h; no liveness checks (a dead connection is found when a post fails)."""
    return IdleMinute(
        connection=PRICES["connection_minute"],
        pings=2 * 60 / ping_seconds * PRICES["websocket_message"],
        dynamodb=2 * PRICES["write_unit"] / 120,
    )


def idle_costs(counts: dict[str, dict[str, Any]]) -> dict[str, IdleMinute]:
    """Per million idle connection-minutes: each page visibility now (PING_INTERVAL_SECONDS), and 0.2's."""
    found = {page: per_connection_minute(counts, PING_INTERVAL_SECONDS[page]) * 1e6 for page in PAGES}
    return found | {"before": before_connection_minute() * 1e6}


def requests_per_connection_hour(hour: dict[str, Any], ping_seconds: float, pinged_invocations: bool) -> dict:
    """What an idle connection asks for in an hour: billed ping and pong messages, Lambda invocations (the
    maintenance runs apart: MAINTENANCE_RUNS_PER_HOUR whatever the connection count), DynamoDB requests
    and units, GetConnection calls."""
    pings = 3600 / ping_seconds
    return {
        "pings and pongs (billed messages)": 2 * pings,
        "Lambda invocations": (pings if pinged_invocations else 0) + 2 / 2,  # a connect and a disconnect per 2 h
        "DynamoDB requests": hour["dynamodb"],
        "DynamoDB read / write units": (hour["rcu"], hour["wcu"]),
        "GetConnection": hour["requests"].get("execute-api:GetConnection", 0),
    }


def _money(value: float) -> str:
    """Dollars to the cent, or to the hundredth of a cent below one; "" for nothing at all."""
    if not value:
        return ""
    return f"${value:,.2f}" if value >= 0.01 else f"${value:,.4f}"


def render_idle(counts: dict[str, dict[str, Any]]) -> list[str]:
    """The idle connection: its cost per million minutes and its requests an hour, now and in 0.2."""
    costs = idle_costs(counts)
    visible, hidden = PING_INTERVAL_SECONDS["visible"], PING_INTERVAL_SECONDS["hidden"]
    columns = [
        (f"{BEFORE_VERSION}: pings every {BEFORE_PING_SECONDS} s, each invoking ws-ping", costs["before"]),
        *((f"now, {PAGES[page]}: pings every {PING_INTERVAL_SECONDS[page]} s", costs[page]) for page in PAGES),
        (
            f"Scan per message, {PAGES['visible']}: pings every {visible} s",
            scan_per_connection_minute(visible) * 1e6,
        ),
    ]
    rows = [
        ("connection-minutes ($0.25 per million)", "connection"),
        ("pings and pongs (2 billed messages each)", "pings"),
        ("GetConnection (assumed billed as a message)", "checks"),
        ("DynamoDB", "dynamodb"),
        ("SQS", "sqs"),
        ("Lambda", "lambda_"),
    ]
    check_minutes = CONNECTION_CHECK_SECONDS / 60
    lines = [
        f"Cost per million idle connection-minutes (reasoned: counted requests at list prices; a connect and a "
        f"disconnect every 2 h; maintenance every {3600 / MAINTENANCE_RUNS_PER_HOUR / 60:g} min, checking each "
        f"live connection every {check_minutes:g} min):",
        "",
        "| | " + " | ".join(name for name, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
        *(
            f"| {label} | " + " | ".join(_money(getattr(cost, part)) or "-" for _, cost in columns) + " |"
            for label, part in rows
        ),
        "| **total** | " + " | ".join(f"**{_money(cost.total)}**" for _, cost in columns) + " |",
        "| target | - | " + " | ".join(f"at most {_money(TARGETS[page])}" for page in PAGES) + " | - |",
        "",
        f"The gateway now answers `ping` itself (a MOCK integration): no invocation, no table write; the "
        f"clients ping every {visible} s on a visible page and every {hidden} s ({hidden // 60} min) on a hidden "
        f"one, inside API Gateway's 10-minute idle timeout. A live connection's record is kept fresh by "
        f"maintenance instead: GetConnection, then one write moving lastSeen, every stale threshold plus "
        f"schedule period ({CONNECTION_CHECK_SECONDS:g} s). ASSUMPTION: GetConnection is counted as one billed "
        f'message; AWS\'s pricing page bills WebSocket "messages sent and received" and does not say whether '
        f"@connections GetConnection calls are billed (if not, subtract "
        f"{_money(costs['visible'].checks)} from both pages' figures). DynamoDB per million minutes now: "
        + ", ".join(f"{name} {_money(value)}" for name, value in dynamodb_parts(counts).items())
        + f". The {BEFORE_VERSION} column is computed from that release's counted connection-hour "
        f"(cost_model.BEFORE_CONNECTION_HOUR) at today's prices.",
        "",
        "Requests per idle connection-hour (maintenance's own invocations apart: "
        f"{MAINTENANCE_RUNS_PER_HOUR:g} an hour whatever the connection count):",
        "",
    ]
    hours = {
        f"{BEFORE_VERSION}, pings every {BEFORE_PING_SECONDS} s": requests_per_connection_hour(
            BEFORE_CONNECTION_HOUR, BEFORE_PING_SECONDS, pinged_invocations=True
        ),
        **{
            f"now, {PAGES[page]}, pings every {PING_INTERVAL_SECONDS[page]} s": requests_per_connection_hour(
                counts["connection_hour"], PING_INTERVAL_SECONDS[page], pinged_invocations=False
            )
            for page in PAGES
        },
    }
    names = list(next(iter(hours.values())))
    lines += [
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        *(
            f"| {label} | " + " | ".join(_figure(figures[name]) for name in names) + " |"
            for label, figures in hours.items()
        ),
    ]
    return lines


def dynamodb_parts(counts: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The idle connection-hour's DynamoDB cost per million minutes, by where it comes from."""
    (settled,) = [name for name in counts if name.startswith("maintenance_") and name.endswith("_settled")]
    size = int(settled.split("_")[1])
    parts = {
        "maintenance's writes (lastSeen of the connections found alive)": [
            (counts["maintenance_check_per_connection"], CONNECTION_CHECKS_PER_HOUR)
        ],
        "maintenance runs' reads (scans; presence repair reading each user's records in 1 run in 12, a "
        "consistent read unit each)": [(counts[settled], MAINTENANCE_RUNS_PER_HOUR / size)],
        "a connect and a disconnect every 2 h": [(counts["connect"], 0.5), (counts["disconnect"], 0.5)],
    }
    return {
        name: sum((c["rcu"] * PRICES["read_unit"] + c["wcu"] * PRICES["write_unit"]) * weight for c, weight in weighted)
        / 60
        * 1e6
        for name, weighted in parts.items()
    }


def _figure(value: float | tuple[float, ...]) -> str:
    if isinstance(value, tuple):
        return " / ".join(_figure(v) for v in value)
    return f"{value:,.3g}" if value < 100 else f"{value:,.0f}"


def render(counts: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"Prices: us-east-1 on-demand list prices as of {PRICES_AS_OF} (check them): WebSocket "
        f"$1.00 per million messages and $0.25 per million connection-minutes; DynamoDB $0.625 per million "
        f"write and $0.125 per million read request units; SQS $0.40 per million requests; Lambda arm64 "
        f"$0.20 per million requests and $0.0000133334 per GB-second (durations estimated, not measured).",
        "",
        f"Cost per million events (one topic; batches of {EVENTS_PER_BATCH}):",
        "",
        "| audience | gateway | Lambda | DynamoDB | SQS | total | "
        + " | ".join(f"Scan design, {n:,} connections" for n in TOTAL_CONNECTIONS)
        + " |",
        "|---:|---:|---:|---:|---:|---:|" + "---:|" * len(TOTAL_CONNECTIONS),
    ]
    for audience in AUDIENCES:
        ours = per_event(counts, audience) * 1e6
        cells = [
            _money((scan_per_event(audience, total) * 1e6).total) if total >= audience else "-"
            for total in TOTAL_CONNECTIONS
        ]
        lines.append(
            f"| {audience:,} | {_money(ours.gateway)} | {_money(ours.lambda_)} | {_money(ours.dynamodb)} | "
            f"{_money(ours.sqs)} | **{_money(ours.total)}** | " + " | ".join(cells) + " |"
        )
    lines += ["", *render_idle(counts)]
    lines += [
        "",
        "The Scan design's cost per event grows with the total number of connections (every event reads every "
        "connection record); this module's does not: it reads the event's topics' subscribers only. The Scan "
        "design also stores nothing (no history for GET /events, no per-topic seqs, no deduplication) and keeps "
        "no presence: below a few thousand connections, that is what this module's extra cents per event and "
        "per connection-minute buy.",
    ]
    return "\n".join(lines)


MONTH_MINUTES = 30 * 24 * 60
MONTHLY_SOCKETS = (1_000, 100_000, 1_000_000)
MONTHLY_EVENTS_PER_SECOND = (10, 1_000)
TARGETED_AUDIENCE = 2  # a user's topic: about 2 live sockets


def monthly(counts: dict[str, dict[str, Any]], sockets: int, events_per_second: float) -> dict[str, float]:
    """A 30-day month of `sockets` connected all month, idle but for targeted events: the events' cost, and
    the sockets' (connection-minutes, keepalives, checks, ...) on visible pages, hidden pages and in 0.2."""
    events = per_event(counts, TARGETED_AUDIENCE).total * events_per_second * MONTH_MINUTES * 60
    idle = idle_costs(counts)
    return {"events": events} | {name: cost.total / 1e6 * sockets * MONTH_MINUTES for name, cost in idle.items()}


def render_monthly(counts: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"Monthly cost (30 days; every socket connected all month; targeted events, {TARGETED_AUDIENCE} sockets "
        "each; presence on; list prices as above):",
        "",
        "| sockets | events/s | events | total, visible pages (60 s pings) | of which sockets | "
        "total, hidden pages (480 s) | of which sockets | total in 0.2 (30 s pings) | of which sockets |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sockets in MONTHLY_SOCKETS:
        for rate in MONTHLY_EVENTS_PER_SECOND:
            month = monthly(counts, sockets, rate)
            designs = ("visible", "hidden", "before")
            cells = [f"${month['events'] + month[name]:,.0f} | ${month[name]:,.0f}" for name in designs]
            lines.append(f"| {sockets:,} | {rate:,} | ${month['events']:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=Path, help="counts as JSON (scripts.lab.request_counts --json)")
    parser.add_argument("--monthly", action="store_true", help="also a month's cost at 1k, 100k and 1M sockets")
    args = parser.parse_args()
    if args.counts:
        counts = json.loads(args.counts.read_text())
    else:
        from scripts.lab.request_counts import measure

        counts = measure()
    print(render(counts))
    if args.monthly:
        print()
        print(render_monthly(counts))


if __name__ == "__main__":
    main()
