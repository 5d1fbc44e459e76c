"""How many sockets the module's default throttles, and the account's default quotas, sustain.

    .venv/bin/python -m scripts.lab.capacity [--sockets 1000000]

Reads the module's defaults from terraform/variables.tf, sizes the WebSocket
throttles from them as terraform/websocket.tf does (`derived_throttles`; the
Terraform test terraform/tests/throttles.tftest.hcl pins the same figures), and computes
for every limit the largest socket count it sustains when each client pings
every 60 s (both clients' default on a visible page; a hidden page pings every
8 minutes, so this is the busiest case) and 1% of the sockets reconnect each
minute. Then, at --sockets, which of the account's default quotas binds first.

The gateway answers pings itself (a MOCK integration): a ping counts against
the ping route's and the stage's throttles and the account's requests/s, but
invokes no function, so Lambda carries only the connects and disconnects
beside the other functions' fixed shares. Maintenance's GetConnection checks
(at most maintenance_connection_checks_per_second) count against the account's
requests/s as well; how many sockets they check on time (every stale threshold
plus schedule period) is reported apart: falling behind refuses nothing, it
only checks each connection less often.

The stage throttle is counted as one budget that pings and connects share, the
stricter reading of "default route settings" (API Gateway applies them to each
route without settings of its own), so the figure holds either way. Quotas are
AWS's defaults per account and Region (sources in docs/scaling.md); Lambda
durations are estimates, like scripts/lab/cost_model.py's.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

from scripts.module_defaults import runs_per_hour

VARIABLES_TF = Path(__file__).resolve().parents[2] / "terraform" / "variables.tf"

# The load: what one socket asks of the gateway.
PING_INTERVAL_SECONDS = 60  # pingIntervalMs (browser, visible page) and ping_interval (Python): the clients' default
RECONNECT_FRACTION_PER_MINUTE = 0.01

# API Gateway, "Amazon API Gateway quotas": 10,000 requests/s (burst 5,000) per account and Region across
# HTTP, REST and WebSocket APIs and the WebSocket callback (@connections) API.
API_GATEWAY_REQUESTS_PER_SECOND = 10_000
API_GATEWAY_BURST = 5_000
# "Quotas for configuring and running a WebSocket in API Gateway": 500 new connections/s per account and
# Region, across all WebSocket APIs.
NEW_CONNECTIONS_PER_SECOND = 500
# "Lambda quotas": 1,000 concurrent executions per account and Region (new accounts start lower).
LAMBDA_CONCURRENT_EXECUTIONS = 1_000

# terraform/websocket.tf's sizing: 1.5x the expected load; $connect never under half the new-connection
# quota (a dropped deployment comes back in N / 250 s); unknown actions ($default) get a fixed budget.
HEADROOM = 1.5
DEFAULT_ROUTE = (50, 25)  # burst, rate

# Seconds of one invocation (warm, default memory): estimates. Pings invoke nothing.
CONNECT_SECONDS = 0.1
DISCONNECT_SECONDS = 0.05  # a socket that reconnects also disconnects
LONG_POLL_SECONDS = 20  # GET /events' longest wait
PRESENCE_READ_SECONDS = 0.1
PRESENCE_CHECKS_CONCURRENCY = 5  # terraform/presence.tf's mapping maximum
MAINTENANCE_CONCURRENCY = 1
# Maintenance's GetConnection checks: CHECKS_IN_FLIGHT at a time (realtime.connections.sweep), each about
# GET_CONNECTION_SECONDS (an estimate, the sweep's own), so at most about 800 a second whatever the setting.
CHECKS_IN_FLIGHT = 16
GET_CONNECTION_SECONDS = 0.02


@dataclass(frozen=True)
class Throttle:
    burst_limit: int
    rate_limit: int


@dataclass(frozen=True)
class Throttles:
    routes: dict[str, Throttle]
    stage: Throttle


@dataclass(frozen=True)
class Limit:
    """A capacity that sockets use `per_socket` of each, after `fixed` that does not grow with sockets."""

    name: str
    capacity: float
    per_socket: float
    fixed: float = 0.0
    account_quota: bool = False

    def ceiling(self) -> int:
        """The most sockets it sustains."""
        return math.floor((self.capacity - self.fixed) / self.per_socket)

    def load(self, sockets: int) -> float:
        """Use at `sockets`, as a fraction of the capacity."""
        return (self.fixed + sockets * self.per_socket) / self.capacity


def _unquoted(value: Any) -> Any:
    """hcl2 keeps the quotes of quoted keys and string literals."""
    if isinstance(value, dict):
        return {key.strip('"'): _unquoted(item) for key, item in value.items()}
    return value.strip('"') if isinstance(value, str) else value


def declared_defaults(path: Path = VARIABLES_TF) -> dict[str, Any]:
    """variables.tf's defaults: name -> default (None for null)."""
    with path.open() as handle:
        blocks = {name.strip('"'): block for item in hcl2.load(handle)["variable"] for name, block in item.items()}
    return {name: _unquoted(block.get("default")) for name, block in blocks.items()}


def derived_throttles(expected_connections: int, ping_interval_seconds: float) -> Throttles:
    """The throttles terraform/websocket.tf derives when neither route nor stage throttles are given."""
    pings = expected_connections / ping_interval_seconds
    reconnects = expected_connections * RECONNECT_FRACTION_PER_MINUTE / 60
    ping_rate = min(API_GATEWAY_REQUESTS_PER_SECOND, math.ceil(pings * HEADROOM))
    connect_floor = NEW_CONNECTIONS_PER_SECOND // 2
    connect_rate = min(NEW_CONNECTIONS_PER_SECOND, max(connect_floor, math.ceil(reconnects * HEADROOM)))
    routes = {
        "$connect": Throttle(min(NEW_CONNECTIONS_PER_SECOND, 2 * connect_rate), connect_rate),
        "ping": Throttle(min(API_GATEWAY_BURST, math.ceil(ping_rate / 2)), ping_rate),
        "$default": Throttle(*DEFAULT_ROUTE),
    }
    return Throttles(routes, _stage_over(routes))


def _stage_over(routes: dict[str, Throttle]) -> Throttle:
    return Throttle(
        min(API_GATEWAY_BURST, sum(t.burst_limit for t in routes.values())),
        min(API_GATEWAY_REQUESTS_PER_SECOND, sum(t.rate_limit for t in routes.values())),
    )


def module_throttles(defaults: dict[str, Any]) -> Throttles:
    """The WebSocket throttles a module with these input values gets: explicit inputs win, as in websocket.tf."""
    derived = derived_throttles(defaults["expected_connections"], defaults["websocket_ping_interval_seconds"])
    given = defaults["websocket_route_throttling"]
    routes = derived.routes if given is None else {key: Throttle(**value) for key, value in given.items()}
    budget = _stage_over(derived.routes | routes)
    stage = Throttle(
        defaults["websocket_throttling_burst_limit"] or budget.burst_limit,
        defaults["websocket_throttling_rate_limit"] or budget.rate_limit,
    )
    return Throttles(routes, stage)


def limits(defaults: dict[str, Any], ping_interval_seconds: float = PING_INTERVAL_SECONDS) -> list[Limit]:
    """Every limit a socket's keepalives and reconnects meet: the module's throttles, then the account's quotas."""
    throttles = module_throttles(defaults)
    pings = 1 / ping_interval_seconds
    connects = RECONNECT_FRACTION_PER_MINUTE / 60
    found = []
    if "ping" in throttles.routes:
        found.append(Limit("the ping route's throttle", throttles.routes["ping"].rate_limit, pings))
    if "$connect" in throttles.routes:
        found.append(Limit("the $connect route's throttle", throttles.routes["$connect"].rate_limit, connects))
    found.append(Limit("the WebSocket stage's throttle", throttles.stage.rate_limit, pings + connects))

    # GetConnection, at most this many a second whatever the socket count (counted in full: the bound).
    checks = checks_per_second(defaults)
    http = defaults["http_route_throttling"] or {}
    other_functions = (
        http.get("GET /events", {}).get("rate_limit", 0) * LONG_POLL_SECONDS
        + http.get("GET /presence", {}).get("rate_limit", 0) * PRESENCE_READ_SECONDS
        + defaults["process_events_maximum_concurrency"]
        + defaults["fanout_maximum_concurrency"]
        + PRESENCE_CHECKS_CONCURRENCY
        + MAINTENANCE_CONCURRENCY
    )
    found += [
        Limit("API Gateway's requests/s per account", API_GATEWAY_REQUESTS_PER_SECOND, pings + connects, checks, True),
        Limit("API Gateway's new WebSocket connections/s per account", NEW_CONNECTIONS_PER_SECOND, connects, 0, True),
        Limit(
            "Lambda's concurrent executions per account",
            LAMBDA_CONCURRENT_EXECUTIONS,
            connects * (CONNECT_SECONDS + DISCONNECT_SECONDS),
            other_functions,
            True,
        ),
    ]
    return found


def sustained_sockets(found: list[Limit]) -> tuple[int, Limit]:
    """The most sockets every limit sustains, and the limit that sets it."""
    binding = min(found, key=Limit.ceiling)
    return binding.ceiling(), binding


def first_binding_quota(found: list[Limit]) -> Limit:
    """The account quota that more sockets reach first (the module's throttles grow with expected_connections)."""
    return min((limit for limit in found if limit.account_quota), key=Limit.ceiling)


def lambda_at_full_throttle(defaults: dict[str, Any]) -> float:
    """Concurrent executions when the $connect route runs at its throttle's rate (pings invoke nothing)."""
    throttles = module_throttles(defaults)
    lambda_limit = next(limit for limit in limits(defaults) if limit.name.startswith("Lambda"))
    connect = throttles.routes.get("$connect", Throttle(0, 0)).rate_limit * (CONNECT_SECONDS + DISCONNECT_SECONDS)
    return connect + lambda_limit.fixed


def check_period_seconds(defaults: dict[str, Any]) -> float:
    """How often maintenance checks a live connection when it keeps up: its lastSeen is due a stale
    threshold after the last check, and the next run (a schedule period later at most) checks it."""
    period = 3600 / runs_per_hour(defaults["maintenance_schedule_expression"])
    return defaults["stale_connection_threshold_seconds"] + period


def checks_per_second(defaults: dict[str, Any]) -> float:
    """The most GetConnection checks maintenance makes a second: its limit, or what its checks in flight allow."""
    return min(defaults["maintenance_connection_checks_per_second"], CHECKS_IN_FLIGHT / GET_CONNECTION_SECONDS)


def checked_on_time(defaults: dict[str, Any]) -> int:
    """The most sockets maintenance checks every check_period_seconds."""
    return math.floor(checks_per_second(defaults) * check_period_seconds(defaults))


def check_interval_seconds(defaults: dict[str, Any], sockets: int) -> float:
    """How often each live connection is checked at `sockets`: past checked_on_time, the checks' rate sets it."""
    return max(check_period_seconds(defaults), sockets / checks_per_second(defaults))


def report(defaults: dict[str, Any], sockets: int, ping_interval_seconds: float = PING_INTERVAL_SECONDS) -> str:
    found = limits(defaults, ping_interval_seconds)
    most, binding = sustained_sockets(found)
    quota = first_binding_quota(found)
    expected = defaults["expected_connections"]
    checks = defaults["maintenance_connection_checks_per_second"]
    rate = checks_per_second(defaults)
    lines = [
        f"Defaults (terraform/variables.tf): expected_connections {expected:,}, pings every "
        f"{ping_interval_seconds:g} s (answered by the gateway: no function), "
        f"{RECONNECT_FRACTION_PER_MINUTE:.0%} of the sockets reconnecting a minute, "
        f"maintenance's GetConnection checks at most {checks:,}/s (counted in full against the account's requests/s).",
        "",
        f"| limit | capacity | sockets it sustains | use at {sockets:,} sockets |",
        "|---|---:|---:|---:|",
        *(
            f"| {limit.name} | {limit.capacity:,.0f} | {limit.ceiling():,} | {limit.load(sockets):.0%} |"
            for limit in found
        ),
        "",
        f"The defaults sustain {most:,} sockets ({binding.name} binds).",
        f"At {sockets:,} sockets the first account quota to bind is {quota.name} "
        f"(at {quota.ceiling():,} sockets; {quota.load(sockets):.0%} of it at {sockets:,}).",
        f"Lambda at the $connect throttle's full rate (pings invoke nothing): "
        f"{lambda_at_full_throttle(defaults):,.0f} of {LAMBDA_CONCURRENT_EXECUTIONS:,} concurrent executions.",
        f"Maintenance checks each live connection every {check_period_seconds(defaults):,.0f} s up to "
        f"{checked_on_time(defaults):,} sockets ({rate:,.0f} GetConnection/s); "
        f"past that, every sockets / {rate:,.0f} s: "
        + ", ".join(f"{check_interval_seconds(defaults, n):,.0f} s at {n:,}" for n in sorted({expected, sockets}))
        + " (refuses nothing; a missed $disconnect is found that much later).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1_000_000, help="the socket count to name the binding quota at")
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=PING_INTERVAL_SECONDS,
        help="the clients' ping interval in seconds (the throttles stay sized from websocket_ping_interval_seconds)",
    )
    args = parser.parse_args()
    print(report(declared_defaults(), args.sockets, args.ping_interval))


if __name__ == "__main__":
    main()
