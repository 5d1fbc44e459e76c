"""The module's defaults that the tests and the lab tools rely on, in one place.

`VARIABLES` are module inputs with their defaults as terraform/variables.tf
declares them; tests/tooling/test_module_defaults.py fails when one of them
drifts from variables.tf, and checks the figures derived from them below
(maintenance runs and connection checks per hour, ping intervals). `FUNCTION_ENVIRONMENT` is what the functions'
environment carries for them by default, written as terraform/main.tf's
`function_environment` writes it (strings, days as seconds, JSON); the unit
tests start from it and the lab tools (cold starts, request counts) run the
handlers with it.
"""

from __future__ import annotations

import json
import re
from typing import Any

VARIABLES: dict[str, Any] = {
    # The functions' tunables.
    "connection_ttl_seconds": 7500,
    "event_retention_days": 7,
    "max_event_data_bytes": 32768,
    "delivery_concurrency": 32,
    "delivery_max_attempts": 5,
    "delivery_order_wait_ms": 5000,
    "fanout_threshold": 500,
    "fanout_page_size": 1000,
    "fanout_concurrency": 64,
    "max_sessions_per_user": 10,
    "max_topics_per_token": 100,
    "event_type_rules": [],
    "subscription_shards": {"all": 16},
    "stale_connection_threshold_seconds": 300,
    "maintenance_scan_items_per_run": 200000,
    "maintenance_connection_checks_per_second": 250,
    "db_changes_max_topics_per_record": 100,
    # Batching, memory and schedule: what the cost model prices.
    "process_events_batch_size": 10,
    "process_events_memory_size": 512,
    "lambda_memory_size": 256,
    "maintenance_schedule_expression": "rate(5 minutes)",
    # What the WebSocket throttles are sized from (scripts/lab/capacity.py computes what they sustain).
    "expected_connections": 100000,
    "websocket_ping_interval_seconds": 60,
}
# An attribute of the `token` object input: `max_lifetime_seconds = optional(number, 86400)`.
TOKEN_MAX_LIFETIME_SECONDS = 86400

FUNCTION_ENVIRONMENT: dict[str, str] = {
    "CONNECTION_TTL_SECONDS": str(VARIABLES["connection_ttl_seconds"]),
    "EVENT_RETENTION_SECONDS": str(VARIABLES["event_retention_days"] * 86400),
    "MAX_DATA_BYTES": str(VARIABLES["max_event_data_bytes"]),
    "DELIVERY_CONCURRENCY": str(VARIABLES["delivery_concurrency"]),
    "DELIVERY_MAX_ATTEMPTS": str(VARIABLES["delivery_max_attempts"]),
    "FANOUT_THRESHOLD": str(VARIABLES["fanout_threshold"]),
    "FANOUT_PAGE_SIZE": str(VARIABLES["fanout_page_size"]),
    "FANOUT_CONCURRENCY": str(VARIABLES["fanout_concurrency"]),
    "DELIVERY_ORDER_WAIT_MS": str(VARIABLES["delivery_order_wait_ms"]),
    # delivery_posts_per_second's default (terraform/fanout.tf): 10,000 - 100,000 / 60 - 250 - 250 = 7,833 over
    # 2 x 10 process-events and 20 fanout invocations.
    "POSTS_PER_SECOND": "195",
    "MAX_SESSIONS_PER_USER": str(VARIABLES["max_sessions_per_user"]),
    "MAX_TOPICS_PER_TOKEN": str(VARIABLES["max_topics_per_token"]),
    "EVENT_TYPE_RULES": json.dumps(VARIABLES["event_type_rules"]),
    "SUBSCRIPTION_SHARDS": json.dumps(VARIABLES["subscription_shards"], separators=(",", ":")),
    "STALE_CONNECTION_SECONDS": str(VARIABLES["stale_connection_threshold_seconds"]),
    "MAINTENANCE_SCAN_ITEMS": str(VARIABLES["maintenance_scan_items_per_run"]),
    "CONNECTION_CHECKS_PER_SECOND": str(VARIABLES["maintenance_connection_checks_per_second"]),
    "MAX_TOPICS_PER_RECORD": str(VARIABLES["db_changes_max_topics_per_record"]),
    "TOKEN_MAX_LIFETIME_SECONDS": str(TOKEN_MAX_LIFETIME_SECONDS),
}

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours)\)")


def runs_per_hour(schedule: str) -> float:
    """How often an EventBridge `rate(...)` schedule runs in an hour."""
    match = _RATE.fullmatch(schedule)
    if match is None:
        raise ValueError(f"not a rate(N minutes|hours) schedule: {schedule!r}")
    count, unit = int(match[1]), match[2]
    return (60 if unit.startswith("minute") else 1) / count


MAINTENANCE_RUNS_PER_HOUR = runs_per_hour(VARIABLES["maintenance_schedule_expression"])

MAINTENANCE_PERIOD_SECONDS = 3600 / MAINTENANCE_RUNS_PER_HOUR

# Maintenance checks (GetConnection, then one write moving lastSeen) each live connection whose lastSeen is
# older than the stale threshold: pings are answered by the gateway and write nothing, so a connection is due
# a threshold after its connect or its last check, and the next run finds it at most a schedule period later.
CONNECTION_CHECK_SECONDS = VARIABLES["stale_connection_threshold_seconds"] + MAINTENANCE_PERIOD_SECONDS
CONNECTION_CHECKS_PER_HOUR = 3600 / CONNECTION_CHECK_SECONDS

# The clients' default ping intervals: on a visible page (browser `pingIntervalMs`, Python `ping_interval`)
# what websocket_ping_interval_seconds defaults to (its description: "60 is both clients' default"); on a
# hidden page (browser `hiddenPingIntervalMs`) 8 minutes, inside API Gateway's 10-minute idle timeout.
PING_INTERVAL_SECONDS = {"visible": VARIABLES["websocket_ping_interval_seconds"], "hidden": 480}
IDLE_TIMEOUT_SECONDS = 600  # "Quotas for configuring and running a WebSocket in API Gateway": 10 minutes idle
