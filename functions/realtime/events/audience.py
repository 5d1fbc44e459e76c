"""Event-type rules: the default audience of an event that names none.

EVENT_TYPE_RULES is a JSON list such as
    [{"type": "order.*", "audience": ["user:{data.userId}", "group:ops"]}]
`type` is an fnmatch pattern (case-sensitive); the first matching rule wins.
`{data.a.b}` in a template is replaced by that field of the event's data.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, InstanceOf, ValidationError

from realtime.core.contract import MAX_AUDIENCE_TOPICS
from realtime.core.errors import ConfigError, PermanentError
from realtime.core.rule_model import RuleModel
from realtime.core.templates import InvalidTopic, TopicTemplate, explain, json_list, path, unique_texts

ENVIRONMENT_VARIABLE = "EVENT_TYPE_RULES"
_DATA_FIELD = re.compile(r"data(\.[A-Za-z0-9_-]+)+")

DataTemplate = Annotated[
    InstanceOf[TopicTemplate],
    BeforeValidator(lambda text: TopicTemplate.parse(text, _DATA_FIELD, "look like {data.field}")),
]


class EventTypeRule(RuleModel):
    type: Annotated[str, Field(min_length=1, max_length=64)]  # an fnmatch pattern over event types
    audience: Annotated[
        list[DataTemplate], Field(min_length=1, max_length=MAX_AUDIENCE_TOPICS), AfterValidator(unique_texts)
    ]

    def matches(self, event_type: str) -> bool:
        return fnmatch.fnmatchcase(event_type, self.type)

    def audience_for(self, event_type: str, data: Mapping[str, Any]) -> list[str]:
        def values(field: str) -> list[str]:
            return [_field_value(field, event_type, data)]

        topics: list[str] = []
        for template in self.audience:
            try:
                topics += template.render(values)
            except InvalidTopic as error:
                raise PermanentError("invalid_audience", f"event type {event_type!r}: {error}") from None
        return list(dict.fromkeys(topics))


def _field_value(field: str, event_type: str, data: Mapping[str, Any]) -> str:
    value: Any = data
    for key in field.split(".")[1:]:
        if not isinstance(value, Mapping) or key not in value:
            raise PermanentError(
                "audience_field_missing", f"event type {event_type!r}: field {field} of its audience is missing"
            )
        value = value[key]
    # bool is an int subclass, but `user:True` is never meant.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PermanentError(
            "invalid_audience", f"event type {event_type!r}: field {field} of its audience must be a string or integer"
        )
    return str(value)


class EventTypeRules:
    def __init__(self, rules: list[EventTypeRule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_json(cls, text: str) -> EventTypeRules:
        """Parse and validate all rules up front, so a bad rule fails the cold start, not an event."""
        raw = json_list(text, ENVIRONMENT_VARIABLE, "rules")
        return cls([_parse_rule(index, item) for index, item in enumerate(raw)])

    def audience_for(self, event_type: str, data: Mapping[str, Any]) -> list[str] | None:
        """The default audience of an event, or None if no rule matches its type."""
        for rule in self.rules:
            if rule.matches(event_type):
                return rule.audience_for(event_type, data)
        return None


def _parse_rule(index: int, raw: object) -> EventTypeRule:
    where = f"{ENVIRONMENT_VARIABLE}[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object with 'type' and 'audience', got {raw!r}")
    try:
        return EventTypeRule.model_validate(raw)
    except ValidationError as error:
        location, problem = explain(error)
        if location:
            where += f".{path(location)}"
        if location[:1] != ("type",) and isinstance(raw.get("type"), str):
            where += f" (type {raw['type']!r})"
        raise ConfigError(f"{where}: {problem}") from None
