"""Rules that turn application-table changes (DynamoDB Streams records) into events.

DB_CHANGE_SOURCES is a JSON list, one entry per stream (the module writes it
from its `db_changes_sources` input):

    [{"name": "clinic",
      "stream_arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000",
      "rules": [{"name": "doctor-online",
                 "event_type": "doctor.online",
                 "kinds": ["INSERT", "MODIFY"],
                 "when": {"attribute": "online", "becomes": {"BOOL": true}},
                 "audience": ["presence:{doctorId}", "group:{clinicIds}"],
                 "data": ["doctorId", "name"]}]}]

- `kinds`: change kinds the rule reacts to (default: all three, or INSERT and
  MODIFY with `becomes`).
- `when` (optional; absent: every change of those kinds):
  `{"attribute": a}` fires when `a` differs between the old and new image
  (appearing on INSERT and disappearing on REMOVE count);
  `{"attribute": a, "becomes": {"S"|"N"|"BOOL": v}}` fires when the new value
  equals v and the old one did not (absent counts as "did not").
- `audience`: topic templates over the item's top-level attributes. A string
  or number attribute fills one topic; a list or set of them fills one topic
  per element.
- `data`: top-level attributes copied into the event's data (none by default,
  so nothing the table holds leaks unless named).

Everything is validated at cold start: a bad rule raises ConfigError naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from realtime.config import ConfigError
from realtime.models import EVENT_TYPE_REGEX, MAX_AUDIENCE_TOPICS
from realtime.topics import is_valid_topic

ENVIRONMENT_VARIABLE = "DB_CHANGE_SOURCES"
CHANGE_KINDS = ("INSERT", "MODIFY", "REMOVE")
VALUE_TYPES = ("S", "N", "BOOL")
MAX_DATA_ATTRIBUTES = 100

NAME_REGEX = r"[a-z0-9][a-z0-9_-]{0,63}"
# Top-level attribute names usable in rules (DynamoDB allows more; these are safe in templates and patterns).
ATTRIBUTE_REGEX = r"[A-Za-z0-9_.-]{1,255}"
STREAM_ARN_REGEX = r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}/stream/\S+"

_NAME = re.compile(NAME_REGEX)
_ATTRIBUTE = re.compile(ATTRIBUTE_REGEX)
_STREAM_ARN = re.compile(STREAM_ARN_REGEX)
_EVENT_TYPE = re.compile(EVENT_TYPE_REGEX)
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

_SOURCE_KEYS = {"name", "stream_arn", "rules"}
_RULE_KEYS = {"name", "event_type", "kinds", "when", "audience", "data"}
_WHEN_KEYS = {"attribute", "becomes"}


@dataclass(frozen=True)
class TypedValue:
    """A DynamoDB scalar as the rule states it: type tag and value (N as Decimal)."""

    type: str
    value: str | Decimal | bool


@dataclass(frozen=True)
class Trigger:
    attribute: str
    becomes: TypedValue | None = None


@dataclass(frozen=True)
class AudienceTemplate:
    text: str
    attributes: tuple[str, ...]  # placeholders in order of appearance


@dataclass(frozen=True)
class ChangeRule:
    source: str
    name: str
    event_type: str
    kinds: frozenset[str]
    when: Trigger | None
    audience: tuple[AudienceTemplate, ...]
    data: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.source}/{self.name}"


@dataclass(frozen=True)
class ChangeSource:
    name: str
    stream_arn: str
    rules: tuple[ChangeRule, ...]


class _Where:
    """Where a problem is, for error messages: `DB_CHANGE_SOURCES[0] (source 'clinic') rule 'x'`."""

    def __init__(self, text: str) -> None:
        self.text = text

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.text}: {message}")


def _object(raw: object, allowed: set[str], where: _Where, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise where.error(f"{what} must be an object, got {raw!r}")
    unknown = set(raw) - allowed
    if unknown:
        raise where.error(f"unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    return raw


def _attribute(raw: object, where: _Where, what: str) -> str:
    if not isinstance(raw, str) or not _ATTRIBUTE.fullmatch(raw):
        raise where.error(f"{what} must be an attribute name of 1-255 characters [A-Za-z0-9_.-], got {raw!r}")
    return raw


def _typed_value(raw: object, where: _Where) -> TypedValue:
    given = {k: v for k, v in raw.items() if v is not None} if isinstance(raw, dict) else None
    if not given or len(given) != 1 or next(iter(given)) not in VALUE_TYPES:
        raise where.error(f'when.becomes must set exactly one of S, N, BOOL (e.g. {{"BOOL": true}}), got {raw!r}')
    kind, value = next(iter(given.items()))
    if kind == "S" and isinstance(value, str):
        return TypedValue("S", value)
    if kind == "BOOL" and isinstance(value, bool):
        return TypedValue("BOOL", value)
    if kind == "N" and isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return TypedValue("N", number)
    raise where.error(f"when.becomes.{kind} has the wrong type: {value!r} (S: string, N: number, BOOL: true/false)")


def _kinds(raw: object, becomes: bool, where: _Where) -> frozenset[str]:
    if raw is None:
        return frozenset(("INSERT", "MODIFY") if becomes else CHANGE_KINDS)
    if not isinstance(raw, list) or not raw or any(k not in CHANGE_KINDS for k in raw) or len(set(raw)) != len(raw):
        raise where.error(f"kinds must be a non-empty list of distinct INSERT, MODIFY, REMOVE, got {raw!r}")
    if becomes and "REMOVE" in raw:
        raise where.error("a 'becomes' trigger cannot fire on REMOVE (a removed item has no new value); drop REMOVE")
    return frozenset(raw)


def _template(raw: object, where: _Where) -> AudienceTemplate:
    if not isinstance(raw, str):
        raise where.error(f"audience templates must be strings, got {raw!r}")
    attributes = tuple(PLACEHOLDER.findall(raw))
    for attribute in attributes:
        if not _ATTRIBUTE.fullmatch(attribute):
            raise where.error(
                f"placeholder {{{attribute}}} in {raw!r} must name a top-level attribute ([A-Za-z0-9_.-])"
            )
    # Any value an attribute may take must still leave a valid topic around it.
    if not is_valid_topic(PLACEHOLDER.sub("x", raw)):
        raise where.error(
            f"audience template {raw!r} does not form a topic (all, user:<id>, group:<name> or presence:<id>)"
        )
    return AudienceTemplate(raw, attributes)


def _names(raw: object, where: _Where, what: str, maximum: int) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > maximum:
        raise where.error(f"{what} must be a list of at most {maximum} attribute names, got {raw!r}")
    names = tuple(_attribute(item, where, f"each {what} entry") for item in raw)
    if len(set(names)) != len(names):
        raise where.error(f"{what} lists an attribute twice: {list(names)}")
    return names


def _parse_rule(source: str, index: int, raw: object, where: _Where) -> ChangeRule:
    name = raw.get("name") if isinstance(raw, dict) else None
    where = _Where(f"{where.text} rule {name!r}" if isinstance(name, str) else f"{where.text} rules[{index}]")
    rule = _object(raw, _RULE_KEYS, where, "a rule")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise where.error(f"name must be 1-64 characters [a-z0-9_-] starting with a letter or digit, got {name!r}")
    event_type = rule.get("event_type")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        raise where.error(f"event_type must be 1-64 characters [a-z0-9_.-], got {event_type!r}")

    when = None
    if rule.get("when") is not None:
        raw_when = _object(rule["when"], _WHEN_KEYS, where, "when")
        attribute = _attribute(raw_when.get("attribute"), where, "when.attribute")
        becomes = raw_when.get("becomes")
        when = Trigger(attribute, None if becomes is None else _typed_value(becomes, where))

    audience = rule.get("audience")
    if not isinstance(audience, list) or not 1 <= len(audience) <= MAX_AUDIENCE_TOPICS:
        raise where.error(f"audience must be a list of 1-{MAX_AUDIENCE_TOPICS} topic templates, got {audience!r}")
    templates = tuple(_template(t, where) for t in audience)
    if len({t.text for t in templates}) != len(templates):
        raise where.error("audience lists a template twice")

    data = rule.get("data")
    return ChangeRule(
        source=source,
        name=name,
        event_type=event_type,
        kinds=_kinds(rule.get("kinds"), when is not None and when.becomes is not None, where),
        when=when,
        audience=templates,
        data=() if data is None else _names(data, where, "data", MAX_DATA_ATTRIBUTES),
    )


def _parse_source(index: int, raw: object) -> ChangeSource:
    name = raw.get("name") if isinstance(raw, dict) else None
    where = _Where(f"{ENVIRONMENT_VARIABLE}[{index}]" + (f" (source {name!r})" if isinstance(name, str) else ""))
    source = _object(raw, _SOURCE_KEYS, where, "a source")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise where.error(f"name must be 1-64 characters [a-z0-9_-] starting with a letter or digit, got {name!r}")
    stream_arn = source.get("stream_arn")
    if not isinstance(stream_arn, str) or not _STREAM_ARN.fullmatch(stream_arn):
        raise where.error(
            f"stream_arn must be a DynamoDB stream ARN (...:table/<name>/stream/<label>), got {stream_arn!r}"
        )
    raw_rules = source.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise where.error("rules must be a non-empty list")
    rules = tuple(_parse_rule(name, i, r, where) for i, r in enumerate(raw_rules))
    names = [rule.name for rule in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise where.error(f"rule names must be unique within a source (they are part of each event id): {duplicates}")
    return ChangeSource(name, stream_arn, rules)


class ChangeSources:
    """Every configured stream with its rules, looked up by the record's eventSourceARN."""

    def __init__(self, sources: list[ChangeSource]) -> None:
        self.sources = tuple(sources)
        self._by_arn = {source.stream_arn: source for source in sources}

    @classmethod
    def from_json(cls, text: str) -> ChangeSources:
        """Parse and validate everything up front, so a bad rule fails the cold start, not a record."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{ENVIRONMENT_VARIABLE} is not valid JSON: {error}") from None
        if not isinstance(raw, list):
            raise ConfigError(f"{ENVIRONMENT_VARIABLE} must be a JSON list of sources")
        sources = [_parse_source(index, source) for index, source in enumerate(raw)]
        for field in ("name", "stream_arn"):
            values = [getattr(source, field) for source in sources]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise ConfigError(f"{ENVIRONMENT_VARIABLE}: two sources share the {field} {duplicates}")
        return cls(sources)

    def for_stream(self, stream_arn: str) -> ChangeSource | None:
        return self._by_arn.get(stream_arn)
