"""Settings from environment variables, read once per container.

Each setting is read lazily, so a handler only needs the variables it uses and
importing a module needs none. A missing or malformed variable raises
ConfigError naming it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_CONNECTION_TTL_SECONDS = 7200  # API Gateway closes every WebSocket after 2 h
DEFAULT_EVENT_RETENTION_SECONDS = 7 * 24 * 3600
DEFAULT_MAX_DATA_BYTES = 64 * 1024
# PostToConnection accepts at most 128 KiB; leave room for the frame's envelope.
MAX_DATA_BYTES_LIMIT = 120 * 1024
DEFAULT_DELIVERY_CONCURRENCY = 16
DEFAULT_PRESENCE_GRACE_SECONDS = 5
MAX_PRESENCE_GRACE_SECONDS = 900  # the longest SQS DelaySeconds
DEFAULT_STALE_CONNECTION_SECONDS = 180  # clients ping every 30 s
DEFAULT_MAX_PRESENCE_USERS = 50
MAX_PRESENCE_USERS_LIMIT = 100  # one BatchGetItem


class ConfigError(RuntimeError):
    """The function's configuration (environment) is missing or invalid."""


_container_caches: list[Any] = []  # functools.cache wrappers


def per_container[T](factory: Callable[[], T]) -> Callable[[], T]:
    """Cache a zero-argument factory for the life of the Lambda container.

    Used for settings, AWS clients and the objects built on them. `reset()`
    clears every such cache (tests change the environment between cases).
    """
    cached = functools.cache(factory)
    _container_caches.append(cached)
    return cached


def reset() -> None:
    """Forget every per-container value, so the next use reads the environment again."""
    for cached in _container_caches:
        cached.cache_clear()


def _optional(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _required(name: str) -> str:
    value = _optional(name)
    if value is None:
        raise ConfigError(f"environment variable {name} is required but not set")
    return value


def _integer(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = _optional(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"environment variable {name} must be between {minimum} and {maximum}, got {value}")
    return value


@per_container
def connections_table() -> str:
    return _required("CONNECTIONS_TABLE")


@per_container
def events_table() -> str:
    return _required("EVENTS_TABLE")


@per_container
def connections_endpoint() -> str:
    return _required("CONNECTIONS_ENDPOINT")


@per_container
def dlq_url() -> str:
    return _required("DLQ_URL")


@per_container
def event_type_rules_json() -> str:
    return _optional("EVENT_TYPE_RULES") or "[]"


@per_container
def db_change_sources_json() -> str:
    return _required("DB_CHANGE_SOURCES")


@per_container
def connection_ttl_seconds() -> int:
    return _integer("CONNECTION_TTL_SECONDS", DEFAULT_CONNECTION_TTL_SECONDS, 60, 7 * 24 * 3600)


@per_container
def event_retention_seconds() -> int:
    return _integer("EVENT_RETENTION_SECONDS", DEFAULT_EVENT_RETENTION_SECONDS, 60, 366 * 24 * 3600)


@per_container
def max_data_bytes() -> int:
    return _integer("MAX_DATA_BYTES", DEFAULT_MAX_DATA_BYTES, 1, MAX_DATA_BYTES_LIMIT)


@per_container
def delivery_concurrency() -> int:
    return _integer("DELIVERY_CONCURRENCY", DEFAULT_DELIVERY_CONCURRENCY, 1, 256)


@per_container
def presence_table() -> str:
    return _required("PRESENCE_TABLE")


@per_container
def presence_configured() -> bool:
    """Whether this function tracks presence (functions without PRESENCE_TABLE leave it to maintenance)."""
    return _optional("PRESENCE_TABLE") is not None


@per_container
def presence_checks_queue_url() -> str:
    return _required("PRESENCE_CHECKS_QUEUE_URL")


@per_container
def events_queue_url() -> str:
    return _required("EVENTS_QUEUE_URL")


@per_container
def presence_grace_seconds() -> int:
    return _integer("PRESENCE_GRACE_SECONDS", DEFAULT_PRESENCE_GRACE_SECONDS, 0, MAX_PRESENCE_GRACE_SECONDS)


@per_container
def group_presence_enabled() -> bool:
    raw = (_optional("GROUP_PRESENCE_ENABLED") or "false").lower()
    if raw not in ("true", "false"):
        raise ConfigError(f"environment variable GROUP_PRESENCE_ENABLED must be 'true' or 'false', got {raw!r}")
    return raw == "true"


@per_container
def stale_connection_seconds() -> int:
    return _integer("STALE_CONNECTION_SECONDS", DEFAULT_STALE_CONNECTION_SECONDS, 30, 24 * 3600)


@per_container
def max_presence_users() -> int:
    return _integer("MAX_PRESENCE_USERS", DEFAULT_MAX_PRESENCE_USERS, 1, MAX_PRESENCE_USERS_LIMIT)


@dataclass(frozen=True)
class TokenSettings:
    mode: Literal["hs256", "jwks"]
    secret_ssm_parameter: str | None = None
    secret_arn: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None


@per_container
def token_settings() -> TokenSettings:
    mode = _required("TOKEN_MODE").lower()
    issuer = _optional("TOKEN_ISSUER")
    audience = _optional("TOKEN_AUDIENCE")
    if mode == "hs256":
        parameter = _optional("TOKEN_SECRET_SSM_PARAMETER")
        secret_arn = _optional("TOKEN_SECRET_ARN")
        if (parameter is None) == (secret_arn is None):
            raise ConfigError("TOKEN_MODE=hs256 needs exactly one of TOKEN_SECRET_SSM_PARAMETER or TOKEN_SECRET_ARN")
        return TokenSettings(
            mode="hs256",
            secret_ssm_parameter=parameter,
            secret_arn=secret_arn,
            issuer=issuer,
            audience=audience,
        )
    if mode == "jwks":
        return TokenSettings(
            mode="jwks",
            jwks_url=_required("TOKEN_JWKS_URL"),
            issuer=_required("TOKEN_ISSUER"),
            audience=_required("TOKEN_AUDIENCE"),
        )
    raise ConfigError(f"environment variable TOKEN_MODE must be 'hs256' or 'jwks', got {mode!r}")
