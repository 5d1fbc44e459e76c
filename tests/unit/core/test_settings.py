"""Settings: one model per function, read and checked in full, naming the variable that is wrong."""

import pytest
from realtime import services
from realtime.core import lifecycle
from realtime.core.errors import ConfigError
from realtime.core.settings import (
    EventsApiSettings,
    MaintenanceSettings,
    ProcessEventsSettings,
    TokenSettings,
    WsDisconnectSettings,
    load,
    variables,
)

PROCESS_EVENTS = {
    "CONNECTIONS_TABLE": "connections",
    "EVENTS_TABLE": "events",
    "CONNECTIONS_ENDPOINT": "https://example.execute-api.us-east-1.amazonaws.com/live",
    "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
    "EVENT_TYPE_RULES": "[]",
    "EVENT_RETENTION_SECONDS": "604800",
    "MAX_DATA_BYTES": "32768",
    "DELIVERY_CONCURRENCY": "32",
    "DELIVERY_MAX_ATTEMPTS": "5",
    "DELIVERY_ORDER_WAIT_MS": "5000",
    "EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/events",
    "FANOUT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/fanout",
    "FANOUT_THRESHOLD": "500",
    "SUBSCRIPTION_SHARDS": '{"all":16}',
    "POSTS_PER_SECOND": "195",
}


def test_a_full_environment_gives_typed_values():
    settings = load(ProcessEventsSettings, PROCESS_EVENTS)

    assert settings.events_table == "events"
    assert (settings.event_retention_seconds, settings.max_data_bytes, settings.delivery_concurrency) == (
        604800,
        32768,
        32,
    )
    assert settings.presence is None  # presence is off: none of its variables is set


@pytest.mark.parametrize("missing", sorted(PROCESS_EVENTS))
def test_every_missing_variable_is_named(missing):
    environment = {k: v for k, v in PROCESS_EVENTS.items() if k != missing}

    with pytest.raises(ConfigError, match=f"{missing} is required but not set"):
        load(ProcessEventsSettings, environment)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DELIVERY_CONCURRENCY", "lots", "DELIVERY_CONCURRENCY must be an integer, got 'lots'"),
        ("DELIVERY_CONCURRENCY", "0", "DELIVERY_CONCURRENCY must be between 1 and 256, got 0"),
        ("MAX_DATA_BYTES", "122881", "MAX_DATA_BYTES must be between 1 and 122880"),
        ("EVENT_RETENTION_SECONDS", "60", "EVENT_RETENTION_SECONDS must be between 86400"),
    ],
)
def test_malformed_values_are_refused_naming_the_variable(name, value, message):
    with pytest.raises(ConfigError, match=message):
        load(ProcessEventsSettings, PROCESS_EVENTS | {name: value})


def test_a_section_is_all_or_nothing():
    base = {"CONNECTIONS_TABLE": "connections"}
    presence = {"PRESENCE_TABLE": "presence", "PRESENCE_CHECKS_QUEUE_URL": "https://q", "PRESENCE_GRACE_SECONDS": "5"}

    assert load(WsDisconnectSettings, base).presence is None
    assert load(WsDisconnectSettings, base | presence).presence.grace_seconds == 5
    with pytest.raises(ConfigError, match="PRESENCE_CHECKS_QUEUE_URL is required"):
        load(WsDisconnectSettings, base | {"PRESENCE_TABLE": "presence", "PRESENCE_GRACE_SECONDS": "5"})


def test_booleans_are_spelled_out():
    environment = {
        "CONNECTIONS_TABLE": "c",
        "EVENTS_TABLE": "e",
        "CONNECTIONS_ENDPOINT": "https://e",
        "STALE_CONNECTION_SECONDS": "180",
        "MAINTENANCE_SCAN_ITEMS": "200000",
        "CONNECTION_CHECKS_PER_SECOND": "100",
        "PRESENCE_TABLE": "p",
        "PRESENCE_CHECKS_QUEUE_URL": "https://q",
        "PRESENCE_GRACE_SECONDS": "5",
        "PRESENCE_EVENTS_QUEUE_URL": "https://e",
    }
    assert load(MaintenanceSettings, environment | {"GROUP_PRESENCE_ENABLED": "true"}).presence.group_presence
    with pytest.raises(ConfigError, match="GROUP_PRESENCE_ENABLED must be 'true' or 'false', got 'yes'"):
        load(MaintenanceSettings, environment | {"GROUP_PRESENCE_ENABLED": "yes"})


def test_variables_lists_sections_too():
    assert set(variables(EventsApiSettings)) == {
        "EVENTS_TABLE",
        "MAX_TOPICS_PER_TOKEN",
        "TOKEN_MODE",
        "TOKEN_SECRET_SSM_PARAMETER",
        "TOKEN_SECRET_ARN",
        "TOKEN_JWKS_URL",
        "TOKEN_ISSUER",
        "TOKEN_AUDIENCE",
        "TOKEN_MAX_LIFETIME_SECONDS",
        "PRESENCE_TABLE",
        "MAX_PRESENCE_USERS",
    }


TOKEN_CHECKS = {
    "TOKEN_ISSUER": "https://issuer.example/",
    "TOKEN_AUDIENCE": "realtime",
    "TOKEN_MAX_LIFETIME_SECONDS": "86400",
}


def test_hs256_needs_exactly_one_secret_source():
    with pytest.raises(ConfigError, match="exactly one of TOKEN_SECRET_SSM_PARAMETER or TOKEN_SECRET_ARN"):
        load(TokenSettings, TOKEN_CHECKS | {"TOKEN_MODE": "hs256"})
    with pytest.raises(ConfigError, match="exactly one of"):
        load(
            TokenSettings,
            TOKEN_CHECKS | {"TOKEN_MODE": "hs256", "TOKEN_SECRET_SSM_PARAMETER": "/p", "TOKEN_SECRET_ARN": "arn:x"},
        )

    settings = load(TokenSettings, TOKEN_CHECKS | {"TOKEN_MODE": "hs256", "TOKEN_SECRET_SSM_PARAMETER": "/p"})
    assert (settings.mode, settings.secret_ssm_parameter, settings.secret_arn) == ("hs256", "/p", None)
    assert (settings.issuer, settings.audience, settings.max_lifetime_seconds) == (
        "https://issuer.example/",
        "realtime",
        86400,
    )


@pytest.mark.parametrize("mode", ["hs256", "jwks"])
@pytest.mark.parametrize("missing", sorted(TOKEN_CHECKS))
def test_both_modes_need_issuer_audience_and_a_max_lifetime(mode, missing):
    source = {"hs256": {"TOKEN_SECRET_SSM_PARAMETER": "/p"}, "jwks": {"TOKEN_JWKS_URL": "https://issuer.example/j"}}
    environment = {"TOKEN_MODE": mode} | source[mode] | TOKEN_CHECKS
    del environment[missing]

    with pytest.raises(ConfigError, match=f"environment variable {missing} is required"):
        load(TokenSettings, environment)


def test_jwks_needs_its_url():
    with pytest.raises(ConfigError, match="TOKEN_JWKS_URL"):
        load(TokenSettings, TOKEN_CHECKS | {"TOKEN_MODE": "jwks"})


def test_unknown_token_mode():
    with pytest.raises(ConfigError, match="TOKEN_MODE must be 'hs256' or 'jwks'"):
        load(TokenSettings, TOKEN_CHECKS | {"TOKEN_MODE": "rs256"})


def test_a_function_reads_its_settings_once_per_container(monkeypatch):
    monkeypatch.setenv("CONNECTIONS_TABLE", "first")
    first = services.ws_disconnect()
    monkeypatch.setenv("CONNECTIONS_TABLE", "second")
    assert services.ws_disconnect() is first

    lifecycle.reset()
    assert services.ws_disconnect() is not first


def test_a_function_with_a_missing_variable_fails_on_its_first_invocation(monkeypatch):
    monkeypatch.delenv("CONNECTIONS_TABLE", raising=False)

    with pytest.raises(ConfigError, match="CONNECTIONS_TABLE"):
        services.ws_disconnect()
