"""DB_CHANGE_SOURCES as pydantic models: the reference for what a source may say, and the words for
what is wrong with one.

realtime.db_changes.sources validates the sources without pydantic and imports
this module only for a source it refused: pydantic then says what is wrong, in
the words the refused-input corpus pins (docs/refused-inputs.md). Both make
the checks of realtime.db_changes.rules, and both give a rules.ChangeSource.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, InstanceOf, ValidationError, model_validator

from realtime.core.contract import MAX_AUDIENCE_TOPICS
from realtime.core.errors import ConfigError
from realtime.core.rule_model import RuleModel
from realtime.core.templates import TopicTemplate, explain, name_of, path, unique_texts
from realtime.db_changes import rules


def _matching(pattern: str, requirement: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {requirement}, got {value!r}")
        return value

    return AfterValidator(check)


def _distinct[T](items: Sequence[T]) -> Sequence[T]:
    return rules.distinct(list(items))


Name = Annotated[str, _matching(rules.NAME_PATTERN, "1-64 characters [a-z0-9_-] starting with a letter or digit")]
Attribute = Annotated[str, _matching(rules.ATTRIBUTE_PATTERN, "an attribute name of 1-255 characters [A-Za-z0-9_.-]")]
EventType = Annotated[str, _matching(rules.EVENT_TYPE_RULE_PATTERN, "1-64 characters [a-z0-9_.-]")]
STREAM_ARN_REQUIREMENT = "a DynamoDB stream ARN (arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>)"
StreamArn = Annotated[str, _matching(rules.STREAM_ARN_PATTERN, STREAM_ARN_REQUIREMENT)]
AttributeTemplate = Annotated[
    InstanceOf[TopicTemplate],
    BeforeValidator(lambda text: TopicTemplate.parse(text, rules.ATTRIBUTE, rules.ATTRIBUTE_HINT)),
]


class TypedValue(RuleModel):
    type: Literal["S", "N", "BOOL"]
    value: str | Decimal | bool

    @model_validator(mode="before")
    @classmethod
    def _from_terraform(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "type" in raw:
            return raw
        kind, value = rules.typed_value(raw)
        return {"type": kind, "value": value}


class Trigger(RuleModel):
    attribute: Attribute
    becomes: TypedValue | None = None


class ChangeRule(RuleModel):
    source: str = ""  # the source's name, filled in by ChangeSource
    name: Name
    event_type: EventType
    kinds: Annotated[frozenset[rules.Kind], Field(min_length=1)] | None = None
    when: Trigger | None = None
    audience: Annotated[
        list[AttributeTemplate],
        Field(min_length=1, max_length=MAX_AUDIENCE_TOPICS),
        AfterValidator(unique_texts),
    ]
    list_placeholders: Annotated[list[Attribute], Field(default_factory=list), AfterValidator(_distinct)]
    data: Annotated[
        list[Attribute], Field(default_factory=list, max_length=rules.MAX_DATA_ATTRIBUTES), AfterValidator(_distinct)
    ]

    @model_validator(mode="before")
    @classmethod
    def _distinct_kinds(cls, raw: Any) -> Any:
        kinds = raw.get("kinds") if isinstance(raw, dict) else None
        if isinstance(kinds, list) and len(set(map(str, kinds))) != len(kinds):
            raise ValueError(f"kinds must list rules.distinct INSERT, MODIFY, REMOVE, got {kinds!r}")
        return raw

    @model_validator(mode="after")
    def _default_kinds(self) -> ChangeRule:
        becomes = self.when is not None and self.when.becomes is not None
        # Frozen: set the default the one time it is derived.
        object.__setattr__(self, "kinds", rules.default_kinds(self.kinds, becomes))
        return self

    @model_validator(mode="after")
    def _list_placeholders_are_placeholders(self) -> ChangeRule:
        rules.unused_placeholders(self.audience, self.list_placeholders)
        return self


class ChangeSource(RuleModel):
    name: Name
    stream_arn: StreamArn
    rules: Annotated[list[ChangeRule], Field(min_length=1)]

    @model_validator(mode="after")
    def _rules_know_their_source(self) -> ChangeSource:
        rules.duplicate_rule_names([rule.name for rule in self.rules])
        object.__setattr__(self, "rules", [rule.model_copy(update={"source": self.name}) for rule in self.rules])
        return self


def validate(index: int, raw: object) -> rules.ChangeSource:
    """The source as pydantic reads it, or ConfigError naming the source and, inside a rule, the rule and its field."""
    where = f"{rules.ENVIRONMENT_VARIABLE}[{index}]"
    if (name := name_of(raw)) is not None:
        where += f" (source {name!r})"
    try:
        return read(ChangeSource.model_validate(raw))
    except ValidationError as error:
        location, problem = explain(error)
    if location[:1] == ("rules",) and len(location) > 1 and isinstance(location[1], int):
        rule_index = location[1]
        rule_name = name_of(raw["rules"][rule_index]) if isinstance(raw, dict) else None
        where += f" rule {rule_name!r}" if rule_name is not None else f" rules[{rule_index}]"
        location = location[2:]
    raise ConfigError(f"{where}: {path(location)}: {problem}" if location else f"{where}: {problem}")


def read(model: ChangeSource) -> rules.ChangeSource:
    """The model's reading of a source, as the functions read it."""
    return rules.ChangeSource(model.name, model.stream_arn, [_read_rule(model.name, rule) for rule in model.rules])


def _read_rule(source: str, rule: ChangeRule) -> rules.ChangeRule:
    when = None
    if rule.when is not None:
        becomes = rule.when.becomes
        when = rules.Trigger(
            rule.when.attribute, None if becomes is None else rules.TypedValue(becomes.type, becomes.value)
        )
    return rules.ChangeRule(
        source,
        rule.name,
        rule.event_type,
        frozenset(rule.kinds or ()),
        when,
        list(rule.audience),
        list(rule.list_placeholders),
        list(rule.data),
    )
