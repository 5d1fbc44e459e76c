"""What events and connections cost at on-demand list prices, from the counted requests.

    python -m scripts.lab.cost_model [--counts counts.json]

Takes `scripts.lab.request_counts.measure()`'s counts (measured afresh without
--counts) and renders markdown: the cost of a million events for audiences of
1, 100 and 10,000 connections, and of a million connection-minutes, beside the
same for the common Scan-per-message design (each event Scans every connection
record and posts to its audience), whose cost per event grows with the total
number of connections.

Prices: us-east-1, on-demand, as listed on AWS's pricing pages (PRICES_AS_OF);
check them before relying on the figures. Lambda time is not counted by the
harness: it is estimated from DURATION_MS (warm invocations on arm64 at the
module's default memory sizes), the least certain input here.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.module_defaults import MAINTENANCE_RUNS_PER_HOUR, VARIABLES

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
# fanout gets process-events' memory size.
_MEMORY_MB = VARIABLES["lambda_memory_size"]
_PIPELINE_MEMORY_MB = VARIABLES["process_events_memory_size"]
DURATION_MS = {"ws-ping": (8, _MEMORY_MB), "ws-connect": (40, _MEMORY_MB), "ws-disconnect": (30, _MEMORY_MB)}
DURATION_MS |= {"process-events": (60, _PIPELINE_MEMORY_MB), "fanout": (400, _PIPELINE_MEMORY_MB)}
DURATION_MS |= {"maintenance-per-1000": (2000, _MEMORY_MB)}
EVENTS_PER_BATCH = VARIABLES["process_events_batch_size"]
# Connections process-events posts itself; beyond, pages of FANOUT_PAGE_SIZE through the fanout queue.
FANOUT_THRESHOLD = VARIABLES["fanout_threshold"]
FANOUT_PAGE_SIZE = VARIABLES["fanout_page_size"]
PING_SECONDS = 30
AUDIENCES = (1, 100, 10_000)
TOTAL_CONNECTIONS = (1_000, 10_000, 100_000)
# The Scan-per-message design: one connection item of about this many bytes per connection.
SCAN_ITEM_BYTES = 150


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


def of_counts(counts: dict[str, Any]) -> Cost:
    """AWS requests and capacity of one operation, priced (Lambda apart)."""
    posts = counts["requests"].get("execute-api:PostToConnection", 0)
    return Cost(
        gateway=posts * PRICES["websocket_message"],
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


def per_connection_minute(counts: dict[str, dict[str, Any]]) -> Cost:
    """An idle connection for a minute: the gateway's minute, its pings (a message in, a pong out, an
    invocation), and a minute's share of the counted connection-hour (storage writes, maintenance, connects)."""
    pings = 60 / PING_SECONDS
    hour = of_counts(counts["connection_hour"]) * (1 / 60)
    gateway = Cost(gateway=PRICES["connection_minute"] + 2 * pings * PRICES["websocket_message"])
    connects = (invocations("ws-connect", 1) + invocations("ws-disconnect", 1)) * (1 / 120)
    maintenance = invocations("maintenance-per-1000", 1) * (MAINTENANCE_RUNS_PER_HOUR / 1000 / 60)
    return gateway + hour + invocations("ws-ping", pings) + connects + maintenance


def scan_per_connection_minute() -> Cost:
    """The common design's connection: the gateway's minute and the same pings, a put and a delete per 2 h."""
    pings = 60 / PING_SECONDS
    return Cost(
        gateway=PRICES["connection_minute"] + 2 * pings * PRICES["websocket_message"],
        dynamodb=2 * PRICES["write_unit"] / 120,
    ) + invocations("ws-ping", pings)


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 else f"${value:,.4f}"


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
    minute, theirs = per_connection_minute(counts) * 1e6, scan_per_connection_minute() * 1e6
    lines += [
        "",
        f"Cost per million connection-minutes (idle, pinging every {PING_SECONDS} s; connects every 2 h; "
        "maintenance every 5 min):",
        "",
        "| design | gateway | Lambda | DynamoDB | SQS | total |",
        "|---|---:|---:|---:|---:|---:|",
        f"| this module | {_money(minute.gateway)} | {_money(minute.lambda_)} | {_money(minute.dynamodb)} | "
        f"{_money(minute.sqs)} | **{_money(minute.total)}** |",
        f"| Scan per message | {_money(theirs.gateway)} | {_money(theirs.lambda_)} | {_money(theirs.dynamodb)} | "
        f"{_money(theirs.sqs)} | **{_money(theirs.total)}** |",
        "",
        "The Scan design's cost per event grows with the total number of connections (every event reads every "
        "connection record); this module's does not: it reads the event's topics' subscribers only. The Scan "
        "design also stores nothing (no history for GET /events, no per-topic seqs, no deduplication) and keeps "
        "no presence: below a few thousand connections, that is what this module's extra cents per event and "
        "per connection-minute buy.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=Path, help="counts as JSON (scripts.lab.request_counts --json)")
    args = parser.parse_args()
    if args.counts:
        counts = json.loads(args.counts.read_text())
    else:
        from scripts.lab.request_counts import measure

        counts = measure()
    print(render(counts))


if __name__ == "__main__":
    main()
