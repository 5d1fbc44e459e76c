"""Event-type rules: the default audience of an event that names none.

EVENT_TYPE_RULES is a JSON list such as
    [{"type": "order.*", "audience": ["user:{data.userId}", "group:ops"]}]
`type` is an fnmatch pattern (case-sensitive); the first matching rule wins.
`{data.a.b}` in a template is replaced by that field of the event's data.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from realtime.config import ConfigError
from realtime.errors import PermanentError
from realtime.models import MAX_AUDIENCE_TOPICS
from realtime.topics import is_valid_topic

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FIELD_PATH = re.compile(r"data(\.[A-Za-z0-9_-]+)+")


@dataclass(frozen=True)
class EventTypeRule:
    type_pattern: str
    audience: tuple[str, ...]

    def matches(self, event_type: str) -> bool:
        return fnmatch.fnmatchcase(event_type, self.type_pattern)


def _check_template(template: object, where: str) -> str:
    if not isinstance(template, str):
        raise ConfigError(f"{where}: audience templates must be strings, got {template!r}")
    for field in _PLACEHOLDER.findall(template):
        if not _FIELD_PATH.fullmatch(field):
            raise ConfigError(f"{where}: placeholder {{{field}}} in {template!r} must look like {{data.field}}")
    # Any value a field may take must still leave a valid topic around it.
    sample = _PLACEHOLDER.sub("x", template)
    if not is_valid_topic(sample):
        raise ConfigError(f"{where}: template {template!r} does not form a topic (user:, group:, presence: or all)")
    return template


def _parse_rule(index: int, raw: object) -> EventTypeRule:
    where = f"EVENT_TYPE_RULES[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object with 'type' and 'audience', got {raw!r}")
    unknown = set(raw) - {"type", "audience"}
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}")
    pattern = raw.get("type")
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"{where}.type must be a non-empty fnmatch pattern string")
    audience = raw.get("audience")
    if not isinstance(audience, list) or not 1 <= len(audience) <= MAX_AUDIENCE_TOPICS:
        raise ConfigError(f"{where}.audience must be a list of 1..{MAX_AUDIENCE_TOPICS} topic templates")
    where = f"{where} (type {pattern!r})"
    return EventTypeRule(pattern, tuple(_check_template(t, where) for t in audience))


class EventTypeRules:
    def __init__(self, rules: Sequence[EventTypeRule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_json(cls, text: str) -> EventTypeRules:
        """Parse and validate all rules up front, so a bad rule fails the cold start, not an event."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"EVENT_TYPE_RULES is not valid JSON: {error}") from None
        if not isinstance(raw, list):
            raise ConfigError("EVENT_TYPE_RULES must be a JSON list of rules")
        return cls([_parse_rule(index, rule) for index, rule in enumerate(raw)])

    def audience_for(self, event_type: str, data: Mapping[str, Any]) -> list[str] | None:
        """The default audience of an event, or None if no rule matches its type."""
        for rule in self.rules:
            if rule.matches(event_type):
                topics = (_render(template, event_type, data) for template in rule.audience)
                return list(dict.fromkeys(topics))
        return None


def _field_value(path: str, template: str, event_type: str, data: Mapping[str, Any]) -> str:
    value: Any = data
    for key in path.split(".")[1:]:
        if not isinstance(value, Mapping) or key not in value:
            raise PermanentError(
                "audience_field_missing",
                f"event type {event_type!r}: field {path} used by audience template {template!r} is missing",
            )
        value = value[key]
    # bool is an int subclass, but `user:True` is never meant.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PermanentError(
            "invalid_audience",
            f"event type {event_type!r}: field {path} used by audience template {template!r} "
            f"must be a string or an integer",
        )
    return str(value)


def _render(template: str, event_type: str, data: Mapping[str, Any]) -> str:
    topic = _PLACEHOLDER.sub(lambda m: _field_value(m.group(1), template, event_type, data), template)
    if not is_valid_topic(topic):
        raise PermanentError(
            "invalid_audience",
            f"event type {event_type!r}: audience template {template!r} gave {topic!r}, which is not a valid topic",
        )
    return topic
