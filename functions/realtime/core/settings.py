"""One validated settings model per function, read from the environment once per container.

The module sets each function's variables from `local.function_environment` (terraform/lambda.tf:
each function's own variables from its feature file, plus section locals that mirror the sections
below, such as token.tf and presence.tf); tests check that every variable a model below reads is set
for its function and that nothing else is. Python holds no defaults: the module's
inputs are the only place they live. A missing or malformed variable raises
ConfigError naming it when the function's objects are first built, whatever path
that invocation takes.

A settings model is a frozen msgspec Struct whose fields are variables (`text`,
`integer`, `boolean`) or sections (`section`): a group of variables that is
either wholly present or, when optional, wholly absent (presence turned off).
Each field's declaration is its default, read by `load`: models are only built by it.
(Structs, not dataclasses: a frozen dataclass costs about 0.8 ms to define on Python 3.12,
a Struct a tenth of that, and every function defines these at its cold start.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import msgspec

from realtime.core.contract import MAX_DATA_BYTES, MAX_PRESENCE_USERS, MAX_TOPICS_PER_TOKEN
from realtime.core.errors import ConfigError

Environment = Mapping[str, str]
MAX_FANOUT_PAGE = 10_000  # connections a Query page (and an invocation) may hold
MAX_SESSIONS_PER_USER = 1000


# --- declaring variables -------------------------------------------------------------------------


class Variable(msgspec.Struct, frozen=True):
    name: str
    parse: Callable[[str, str], Any]  # (name, raw text) -> value, or ConfigError
    optional: bool = False


class Section(msgspec.Struct, frozen=True):
    model: type
    optional: bool = False


def _text(_name: str, raw: str) -> str:
    return raw


def _integer(minimum: int, maximum: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(f"environment variable {name} must be between {minimum} and {maximum}, got {value}")
        return value

    return parse


def _boolean(name: str, raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ConfigError(f"environment variable {name} must be 'true' or 'false', got {raw!r}")
    return raw == "true"


def text(name: str, *, optional: bool = False) -> Any:
    return Variable(name, _text, optional)


def integer(name: str, minimum: int, maximum: int) -> Any:
    return Variable(name, _integer(minimum, maximum))


def boolean(name: str) -> Any:
    return Variable(name, _boolean)


def section(model: type, *, optional: bool = False) -> Any:
    """A nested model; an optional one is None when none of its variables is set."""
    return Section(model, optional)


# --- reading them --------------------------------------------------------------------------------


def declarations(model: type) -> dict[str, Variable | Section]:
    """Field name -> what it reads, in the model's field order."""
    names, declared = model.__struct_fields__, model.__struct_defaults__  # type: ignore[attr-defined]
    if len(names) != len(declared) or not all(isinstance(d, Variable | Section) for d in declared):
        raise TypeError(f"every field of {model.__name__} must be declared with text, integer, boolean or section")
    return dict(zip(names, declared, strict=True))


def variables(model: type) -> Iterator[str]:
    """Every variable the model may read, sections included."""
    for declared in declarations(model).values():
        if isinstance(declared, Variable):
            yield declared.name
        else:
            yield from variables(declared.model)


def load[M](model: type[M], environ: Environment | None = None) -> M:
    """Read and check every variable of the model at once. Raises ConfigError naming the first problem."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, declared in declarations(model).items():
        if isinstance(declared, Variable):
            raw = environ.get(declared.name, "").strip()
            if raw:
                values[name] = declared.parse(declared.name, raw)
            elif declared.optional:
                values[name] = None
            else:
                raise ConfigError(f"environment variable {declared.name} is required but not set")
            continue
        absent = not any(environ.get(variable, "").strip() for variable in variables(declared.model))
        values[name] = None if declared.optional and absent else load(declared.model, environ)
    settings = model(**values)
    check = getattr(settings, "check", None)
    if check is not None:
        check()
    return settings


# --- sections ------------------------------------------------------------------------------------


class TokenSettings(msgspec.Struct, frozen=True):
    """How tokens are verified: a shared HS256 secret (SSM or Secrets Manager), or keys from a JWKS URL.

    Issuer and audience are checked in both modes: a token another service got from the same
    issuer, or signed with the same secret, is not one of ours.
    """

    mode: Literal["hs256", "jwks"] = text("TOKEN_MODE")
    issuer: str = text("TOKEN_ISSUER")
    audience: str = text("TOKEN_AUDIENCE")
    max_lifetime_seconds: int = integer("TOKEN_MAX_LIFETIME_SECONDS", 60, 30 * 86400)
    secret_ssm_parameter: str | None = text("TOKEN_SECRET_SSM_PARAMETER", optional=True)
    secret_arn: str | None = text("TOKEN_SECRET_ARN", optional=True)
    jwks_url: str | None = text("TOKEN_JWKS_URL", optional=True)

    def check(self) -> None:
        if self.mode == "hs256":
            if (self.secret_ssm_parameter is None) == (self.secret_arn is None):
                raise ConfigError(
                    "TOKEN_MODE=hs256 needs exactly one of TOKEN_SECRET_SSM_PARAMETER or TOKEN_SECRET_ARN"
                )
        elif self.mode == "jwks":
            if self.jwks_url is None:
                raise ConfigError("TOKEN_MODE=jwks needs environment variable TOKEN_JWKS_URL")
        else:
            raise ConfigError(f"environment variable TOKEN_MODE must be 'hs256' or 'jwks', got {self.mode!r}")


class PresenceTable(msgspec.Struct, frozen=True):
    table: str = text("PRESENCE_TABLE")


class AnnouncingPresence(PresenceTable, frozen=True):
    """Sends presence events, to presence:<user> and optionally the user's groups.

    They go to the presence-events queue, which only the module's functions may
    send to: producers cannot forge or suppress them.
    """

    presence_events_queue_url: str = text("PRESENCE_EVENTS_QUEUE_URL")
    group_presence: bool = boolean("GROUP_PRESENCE_ENABLED")


class EndingSessions(PresenceTable, frozen=True):
    """Ends sessions; the last one schedules the delayed offline check."""

    checks_queue_url: str = text("PRESENCE_CHECKS_QUEUE_URL")
    grace_seconds: int = integer("PRESENCE_GRACE_SECONDS", 0, 900)  # 900: the longest SQS DelaySeconds


class StoringPresence(EndingSessions, frozen=True):
    """process-events: also consumes the presence-events queue, and trusts only what comes from it."""

    presence_events_queue_url: str = text("PRESENCE_EVENTS_QUEUE_URL")  # failed records are made visible sooner
    presence_events_queue_arn: str = text("PRESENCE_EVENTS_QUEUE_ARN")  # the eventSourceARN of its records


class RepairingPresence(EndingSessions, frozen=True):
    """maintenance: ends orphaned sessions, decides overdue checks, re-sends unconfirmed events.

    It announces too, with AnnouncingPresence's variables (a Struct's bases with fields are one line)."""

    presence_events_queue_url: str = text("PRESENCE_EVENTS_QUEUE_URL")
    group_presence: bool = boolean("GROUP_PRESENCE_ENABLED")


class ReadingPresence(PresenceTable, frozen=True):
    max_users: int = integer("MAX_PRESENCE_USERS", 1, MAX_PRESENCE_USERS)


# --- one model per function ----------------------------------------------------------------------


class WsConnectSettings(msgspec.Struct, frozen=True):
    connections_table: str = text("CONNECTIONS_TABLE")
    connection_ttl_seconds: int = integer("CONNECTION_TTL_SECONDS", 300, 86400)
    max_sessions_per_user: int = integer("MAX_SESSIONS_PER_USER", 1, MAX_SESSIONS_PER_USER)
    max_topics_per_token: int = integer("MAX_TOPICS_PER_TOKEN", 1, MAX_TOPICS_PER_TOKEN)
    token: TokenSettings = section(TokenSettings)
    presence: AnnouncingPresence | None = section(AnnouncingPresence, optional=True)


class WsDisconnectSettings(msgspec.Struct, frozen=True):
    connections_table: str = text("CONNECTIONS_TABLE")
    presence: EndingSessions | None = section(EndingSessions, optional=True)


class ProcessEventsSettings(msgspec.Struct, frozen=True):
    connections_table: str = text("CONNECTIONS_TABLE")
    events_table: str = text("EVENTS_TABLE")
    events_queue_url: str = text("EVENTS_QUEUE_URL")  # failed records are made visible again sooner
    connections_endpoint: str = text("CONNECTIONS_ENDPOINT")
    dlq_url: str = text("DLQ_URL")
    event_type_rules: str = text("EVENT_TYPE_RULES")  # JSON, parsed by realtime.events.audience
    event_retention_seconds: int = integer("EVENT_RETENTION_SECONDS", 86400, 365 * 86400)
    max_data_bytes: int = integer("MAX_DATA_BYTES", 1, MAX_DATA_BYTES)
    delivery_concurrency: int = integer("DELIVERY_CONCURRENCY", 1, 256)
    delivery_max_attempts: int = integer("DELIVERY_MAX_ATTEMPTS", 1, 20)
    # How long inline posts wait for the topic's batch before to have posted (realtime.events.turns); 0: no turns.
    delivery_order_wait_ms: int = integer("DELIVERY_ORDER_WAIT_MS", 0, 10_000)
    fanout_threshold: int = integer("FANOUT_THRESHOLD", 1, MAX_FANOUT_PAGE)
    fanout_queue_url: str = text("FANOUT_QUEUE_URL")
    subscription_shards: str = text("SUBSCRIPTION_SHARDS")  # JSON, parsed by realtime.connections.layout
    # This invocation's share of the module's post budget (delivery_posts_per_second).
    posts_per_second: int = integer("POSTS_PER_SECOND", 1, 1_000_000)
    presence: StoringPresence | None = section(StoringPresence, optional=True)


class FanoutSettings(msgspec.Struct, frozen=True):
    connections_table: str = text("CONNECTIONS_TABLE")
    events_table: str = text("EVENTS_TABLE")  # jobs refer to stored events: read back from here
    connections_endpoint: str = text("CONNECTIONS_ENDPOINT")
    fanout_queue_url: str = text("FANOUT_QUEUE_URL")
    fanout_page_size: int = integer("FANOUT_PAGE_SIZE", 1, MAX_FANOUT_PAGE)
    subscription_shards: str = text("SUBSCRIPTION_SHARDS")  # JSON, parsed by realtime.connections.layout
    # This invocation's share of the module's post budget (delivery_posts_per_second).
    posts_per_second: int = integer("POSTS_PER_SECOND", 1, 1_000_000)
    fanout_concurrency: int = integer("FANOUT_CONCURRENCY", 1, 256)
    delivery_max_attempts: int = integer("DELIVERY_MAX_ATTEMPTS", 1, 20)
    presence: EndingSessions | None = section(EndingSessions, optional=True)


class EventsApiSettings(msgspec.Struct, frozen=True):
    events_table: str = text("EVENTS_TABLE")
    max_topics_per_token: int = integer("MAX_TOPICS_PER_TOKEN", 1, MAX_TOPICS_PER_TOKEN)
    token: TokenSettings = section(TokenSettings)
    presence: ReadingPresence | None = section(ReadingPresence, optional=True)


class PresenceChecksSettings(msgspec.Struct, frozen=True):
    presence: AnnouncingPresence = section(AnnouncingPresence)


class MaintenanceSettings(msgspec.Struct, frozen=True):
    connections_table: str = text("CONNECTIONS_TABLE")
    events_table: str = text("EVENTS_TABLE")  # sampled for items past retention
    connections_endpoint: str = text("CONNECTIONS_ENDPOINT")
    stale_connection_seconds: int = integer("STALE_CONNECTION_SECONDS", 60, 7200)
    # Items each of its scans (connections, presence) reads a run, from where the last run stopped.
    scan_items_per_run: int = integer("MAINTENANCE_SCAN_ITEMS", 1000, 10_000_000)
    # GetConnection checks (and expired tokens' closes) started a second, shared with delivery's @connections quota.
    connection_checks_per_second: int = integer("CONNECTION_CHECKS_PER_SECOND", 1, 5000)
    presence: RepairingPresence | None = section(RepairingPresence, optional=True)


class DbChangesSettings(msgspec.Struct, frozen=True):
    events_queue_url: str = text("EVENTS_QUEUE_URL")
    sources: str = text("DB_CHANGE_SOURCES")  # JSON, parsed by realtime.db_changes.sources
    failures_queue_url: str = text("FAILURES_QUEUE_URL")  # where refused records go, with their reason
    max_topics_per_record: int = integer("MAX_TOPICS_PER_RECORD", 1, 1000)


# The module's function names (local.functions, terraform/lambda.tf) and the model each one reads.
FUNCTION_SETTINGS: dict[str, type] = {
    "ws-connect": WsConnectSettings,
    "ws-disconnect": WsDisconnectSettings,
    "process-events": ProcessEventsSettings,
    "fanout": FanoutSettings,
    "events-api": EventsApiSettings,
    "presence-checks": PresenceChecksSettings,
    "maintenance": MaintenanceSettings,
    "db-changes": DbChangesSettings,
}

# Read by Powertools itself on every function, not by these models.
COMMON_VARIABLES = ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL")
