"""The module's defaults do not cap the product below 100,000 sockets: computed from variables.tf's
defaults, with every client pinging every 60 s (a visible page; the gateway answers pings itself) and 1%
of the sockets reconnecting each minute, no throttle and no default account quota refuses a keepalive,
a connect or a reconnect."""

from __future__ import annotations

import dataclasses

import pytest

from scripts.lab import capacity
from scripts.lab.capacity import Limit, Throttle, declared_defaults, derived_throttles, limits

DEFAULTS = declared_defaults()
TARGET_SOCKETS = 100_000


def test_the_websocket_throttles_are_derived_by_default():
    assert DEFAULTS["expected_connections"] == TARGET_SOCKETS
    assert DEFAULTS["websocket_ping_interval_seconds"] == capacity.PING_INTERVAL_SECONDS
    for name in ("websocket_route_throttling", "websocket_throttling_rate_limit", "websocket_throttling_burst_limit"):
        assert DEFAULTS[name] is None, f"{name} has a fixed default: it no longer follows expected_connections"


def test_the_defaults_sustain_100000_sockets():
    most, binding = capacity.sustained_sockets(limits(DEFAULTS))
    print(f"\nthe defaults sustain {most:,} sockets; {binding.name} binds first")
    assert most >= TARGET_SOCKETS


@pytest.mark.parametrize("limit", limits(DEFAULTS), ids=lambda limit: limit.name)
def test_nothing_refuses_a_keepalive_or_reconnect_at_100000_sockets(limit):
    assert limit.load(TARGET_SOCKETS) <= 1, f"{limit.name} is at {limit.load(TARGET_SOCKETS):.0%} at 100,000 sockets"


def test_a_ping_throttle_of_500_per_second_would_cap_the_product_at_15000():
    """Issue 21's defaults (ping 500/s, clients pinging every 30 s), so the computation is seen to fail
    what it should."""
    old = DEFAULTS | {"websocket_route_throttling": {"ping": {"burst_limit": 250, "rate_limit": 500}}}
    most, binding = capacity.sustained_sockets(limits(old, ping_interval_seconds=30))
    assert (most, binding.name) == (15_000, "the ping route's throttle")


def test_the_defaults_sustain_150000_sockets_at_the_ping_throttle():
    """2,500 pings/s (100,000 / 60 s x 1.5) at one ping a minute each."""
    most, binding = capacity.sustained_sockets(limits(DEFAULTS))
    assert (most, binding.name) == (150_000, "the ping route's throttle")


def test_an_explicit_stage_throttle_is_counted():
    most, binding = capacity.sustained_sockets(limits(DEFAULTS | {"websocket_throttling_rate_limit": 1000}))
    assert binding.name == "the WebSocket stage's throttle"
    assert most < TARGET_SOCKETS


def test_the_first_quota_to_bind_at_1m_is_api_gateways_requests_per_second():
    found = limits(DEFAULTS)
    quota = capacity.first_binding_quota(found)
    print(f"\nat 1,000,000 sockets {quota.name} binds first, at {quota.ceiling():,} sockets:")
    for limit in found:
        print(f"  {limit.name}: {limit.load(1_000_000):.0%}")
    assert quota.name == "API Gateway's requests/s per account"
    assert quota.load(1_000_000) > 1
    assert TARGET_SOCKETS < quota.ceiling() < 1_000_000


def test_the_reconnects_fit_lambdas_default_concurrency_beside_delivery():
    """At the $connect throttle's full rate, with the other functions at their bounds."""
    assert capacity.lambda_at_full_throttle(DEFAULTS) <= capacity.LAMBDA_CONCURRENT_EXECUTIONS


def test_pings_invoke_no_function():
    """The gateway answers `ping` (MOCK): Lambda's load per socket is its reconnects alone."""
    (lambda_limit,) = [limit for limit in limits(DEFAULTS) if limit.name.startswith("Lambda")]
    reconnects = capacity.RECONNECT_FRACTION_PER_MINUTE / 60
    invocation = capacity.CONNECT_SECONDS + capacity.DISCONNECT_SECONDS
    assert lambda_limit.per_socket == pytest.approx(reconnects * invocation)
    assert lambda_limit.per_socket == limits(DEFAULTS, ping_interval_seconds=1)[-1].per_socket


def test_maintenances_checks_count_against_the_account_requests():
    (account,) = [limit for limit in limits(DEFAULTS) if limit.name == "API Gateway's requests/s per account"]
    assert account.fixed == DEFAULTS["maintenance_connection_checks_per_second"] == 250


def test_maintenance_checks_each_live_connection_every_10_minutes_at_the_expected_sockets():
    """A connection is due a stale threshold (300 s) after its last check, and the next run (5 min) checks
    it; at 250 GetConnection/s (100,000 / 600 s x 1.5) that keeps 150,000 sockets on time. Past that each
    is checked less often: nothing is refused, a missed $disconnect is found later (every 4,000 s at 1M)."""
    assert capacity.check_period_seconds(DEFAULTS) == 600
    assert capacity.checked_on_time(DEFAULTS) == 150_000 >= 1.5 * TARGET_SOCKETS
    assert capacity.check_interval_seconds(DEFAULTS, TARGET_SOCKETS) == 600
    assert capacity.check_interval_seconds(DEFAULTS, 1_000_000) == 4_000
    slower = DEFAULTS | {"maintenance_connection_checks_per_second": 100}  # 0.2's default
    assert capacity.checked_on_time(slower) == 60_000


def test_the_checks_in_flight_cap_the_checks_at_about_800_per_second():
    """16 GetConnection at a time (the sweep's CHECKS_IN_FLIGHT) at about 20 ms each, whatever the setting:
    about 480,000 sockets checked every 10 minutes at most."""
    from realtime.connections import sweep

    assert capacity.CHECKS_IN_FLIGHT == sweep.CHECKS_IN_FLIGHT
    most = DEFAULTS | {"maintenance_connection_checks_per_second": 5000}
    assert capacity.checks_per_second(most) == 800
    assert capacity.checked_on_time(most) == 480_000


# The same figures as terraform/tests/throttles.tftest.hcl pins in the plan: the Python sizing is
# websocket.tf's. Keep both in step.
@pytest.mark.parametrize(
    ("expected", "interval", "routes", "stage"),
    [
        (100_000, 60, {"$connect": (500, 250), "ping": (1250, 2500), "$default": (50, 25)}, (1800, 2775)),
        (1_000, 60, {"$connect": (500, 250), "ping": (13, 25), "$default": (50, 25)}, (563, 300)),
        (2_000_000, 300, {"$connect": (500, 500), "ping": (5000, 10000), "$default": (50, 25)}, (5000, 10000)),
    ],
)
def test_the_sizing_is_websocket_tfs(expected, interval, routes, stage):
    throttles = derived_throttles(expected, interval)
    assert {key: dataclasses.astuple(t) for key, t in throttles.routes.items()} == routes
    assert dataclasses.astuple(throttles.stage) == stage


def test_explicit_route_throttles_win_and_the_stage_covers_them():
    given = {"ping": {"burst_limit": 5000, "rate_limit": 9000}}
    inputs = DEFAULTS | {"expected_connections": 1_000_000, "websocket_route_throttling": given}
    throttles = capacity.module_throttles(inputs)
    assert throttles.routes == {"ping": Throttle(5000, 9000)}
    assert throttles.stage == Throttle(5000, 9275)


def test_a_limit_sustains_what_is_left_after_its_fixed_use():
    limit = Limit("example", capacity=1000, per_socket=0.01, fixed=500)
    assert limit.ceiling() == 50_000
    assert limit.load(50_000) == 1
