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
                 "list_placeholders": ["clinicIds"],
                 "data": ["doctorId", "name"]}]}]

- `kinds`: change kinds the rule reacts to (default: all three, or INSERT and
  MODIFY with `becomes`).
- `when` (optional; absent: every change of those kinds):
  `{"attribute": a}` fires when `a` differs between the old and new image
  (appearing on INSERT and disappearing on REMOVE count);
  `{"attribute": a, "becomes": {"S"|"N"|"BOOL": v}}` fires when the new value
  equals v and the old one did not (absent counts as "did not").
- `audience`: topic templates over the item's top-level attributes. A string
  or number attribute fills one topic.
- `list_placeholders`: the attributes of `audience` that may hold a list or set
  of strings and numbers, filling one topic per element (several in one
  template: every combination). A list anywhere else skips the rule, so an
  item can only fan out where the rule says it may.
- `data`: top-level attributes copied into the event's data (none by default,
  so nothing the table holds leaks unless named).

Everything is validated at cold start: a bad rule raises ConfigError naming it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, InstanceOf, ValidationError, model_validator

from realtime.core.contract import EVENT_TYPE_PATTERN, MAX_AUDIENCE_TOPICS
from realtime.core.errors import ConfigError
from realtime.core.templates import RuleModel, TopicTemplate, explain, json_list, name_of, path, unique_texts

ENVIRONMENT_VARIABLE = "DB_CHANGE_SOURCES"
CHANGE_KINDS = ("INSERT", "MODIFY", "REMOVE")
MAX_DATA_ATTRIBUTES = 100

NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
# Top-level attribute names usable in rules (DynamoDB allows more; these are safe in templates and patterns).
ATTRIBUTE_PATTERN = r"[A-Za-z0-9_.-]{1,255}"
STREAM_ARN_PATTERN = r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}/stream/\S+"
_ATTRIBUTE = re.compile(ATTRIBUTE_PATTERN)


def _matching(pattern: str, requirement: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {requirement}, got {value!r}")
        return value

    return AfterValidator(check)


def _distinct[T](items: Sequence[T]) -> Sequence[T]:
    if len(set(items)) != len(items):
        raise ValueError(f"lists an attribute twice: {list(items)}")
    return items


Name = Annotated[str, _matching(NAME_PATTERN, "1-64 characters [a-z0-9_-] starting with a letter or digit")]
Attribute = Annotated[str, _matching(ATTRIBUTE_PATTERN, "an attribute name of 1-255 characters [A-Za-z0-9_.-]")]
EventType = Annotated[str, _matching(EVENT_TYPE_PATTERN[1:-1], "1-64 characters [a-z0-9_.-]")]
StreamArn = Annotated[
    str,
    _matching(
        STREAM_ARN_PATTERN, "a DynamoDB stream ARN (arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>)"
    ),
]
AttributeTemplate = Annotated[
    InstanceOf[TopicTemplate],
    BeforeValidator(lambda text: TopicTemplate.parse(text, _ATTRIBUTE, "name a top-level attribute ([A-Za-z0-9_.-])")),
]
Kind = Literal["INSERT", "MODIFY", "REMOVE"]


class TypedValue(RuleModel):
    """A DynamoDB scalar as the rule states it: type tag and value (N as Decimal)."""

    type: Literal["S", "N", "BOOL"]
    value: str | Decimal | bool

    @model_validator(mode="before")
    @classmethod
    def _from_terraform(cls, raw: Any) -> Any:
        """`{"S": null, "N": null, "BOOL": true}` (Terraform writes every key) -> type BOOL, value true."""
        if not isinstance(raw, dict) or "type" in raw:
            return raw
        given = {k: v for k, v in raw.items() if v is not None}
        if len(given) != 1 or next(iter(given)) not in ("S", "N", "BOOL"):
            raise ValueError(f'must set exactly one of S, N, BOOL (e.g. {{"BOOL": true}}), got {raw!r}')
        kind, value = next(iter(given.items()))
        if kind == "S" and isinstance(value, str):
            return {"type": "S", "value": value}
        if kind == "BOOL" and isinstance(value, bool):
            return {"type": "BOOL", "value": value}
        if kind == "N" and isinstance(value, str | int | float) and not isinstance(value, bool):
            try:
                number = Decimal(str(value))
            except InvalidOperation:
                number = None
            if number is not None and number.is_finite():
                return {"type": "N", "value": number}
        raise ValueError(f"{kind} has the wrong type: {value!r} (S: string, N: number, BOOL: true/false)")


class Trigger(RuleModel):
    attribute: Attribute
    becomes: TypedValue | None = None


class ChangeRule(RuleModel):
    source: str = ""  # the source's name, filled in by ChangeSource
    name: Name
    event_type: EventType
    kinds: Annotated[frozenset[Kind], Field(min_length=1)] | None = None
    when: Trigger | None = None
    audience: Annotated[
        list[AttributeTemplate],
        Field(min_length=1, max_length=MAX_AUDIENCE_TOPICS),
        AfterValidator(unique_texts),
    ]
    list_placeholders: Annotated[list[Attribute], Field(default_factory=list), AfterValidator(_distinct)]
    data: Annotated[
        list[Attribute], Field(default_factory=list, max_length=MAX_DATA_ATTRIBUTES), AfterValidator(_distinct)
    ]

    @model_validator(mode="before")
    @classmethod
    def _distinct_kinds(cls, raw: Any) -> Any:
        kinds = raw.get("kinds") if isinstance(raw, dict) else None
        if isinstance(kinds, list) and len(set(map(str, kinds))) != len(kinds):
            raise ValueError(f"kinds must list distinct INSERT, MODIFY, REMOVE, got {kinds!r}")
        return raw

    @model_validator(mode="after")
    def _default_kinds(self) -> ChangeRule:
        becomes = self.when is not None and self.when.becomes is not None
        if self.kinds is None:
            # Frozen: set the default the one time it is derived.
            object.__setattr__(self, "kinds", frozenset(("INSERT", "MODIFY") if becomes else CHANGE_KINDS))
        elif becomes and "REMOVE" in self.kinds:
            raise ValueError("a 'becomes' trigger cannot fire on REMOVE (a removed item has no new value); drop REMOVE")
        return self

    @model_validator(mode="after")
    def _list_placeholders_are_placeholders(self) -> ChangeRule:
        used = {name for template in self.audience for name in template.fields}
        unused = [name for name in self.list_placeholders if name not in used]
        if unused:
            raise ValueError(f"list_placeholders names {unused}, which no audience template uses")
        return self

    @property
    def label(self) -> str:
        return f"{self.source}/{self.name}"


class ChangeSource(RuleModel):
    name: Name
    stream_arn: StreamArn
    rules: Annotated[list[ChangeRule], Field(min_length=1)]

    @model_validator(mode="after")
    def _rules_know_their_source(self) -> ChangeSource:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"rule names must be unique within a source (they are part of each event id): {duplicates}"
            )
        object.__setattr__(self, "rules", [rule.model_copy(update={"source": self.name}) for rule in self.rules])
        return self


class ChangeSources:
    """Every configured stream with its rules, looked up by the record's eventSourceARN."""

    def __init__(self, sources: list[ChangeSource]) -> None:
        self.sources = tuple(sources)
        self._by_arn = {source.stream_arn: source for source in sources}

    @classmethod
    def from_json(cls, text: str) -> ChangeSources:
        """Parse and validate everything up front, so a bad rule fails the cold start, not a record."""
        raw = json_list(text, ENVIRONMENT_VARIABLE, "sources")
        sources = [_parse_source(index, source) for index, source in enumerate(raw)]
        for field in ("name", "stream_arn"):
            values = [getattr(source, field) for source in sources]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise ConfigError(f"{ENVIRONMENT_VARIABLE}: two sources share the {field} {duplicates}")
        return cls(sources)

    def for_stream(self, stream_arn: str) -> ChangeSource | None:
        return self._by_arn.get(stream_arn)


def _parse_source(index: int, raw: object) -> ChangeSource:
    """Validate one source; the error names the source and, inside a rule, the rule and its field."""
    where = f"{ENVIRONMENT_VARIABLE}[{index}]"
    if (name := name_of(raw)) is not None:
        where += f" (source {name!r})"
    try:
        return ChangeSource.model_validate(raw)
    except ValidationError as error:
        location, problem = explain(error)
    if location[:1] == ("rules",) and len(location) > 1 and isinstance(location[1], int):
        rule_index = location[1]
        rule_name = name_of(raw["rules"][rule_index]) if isinstance(raw, dict) else None
        where += f" rule {rule_name!r}" if rule_name is not None else f" rules[{rule_index}]"
        location = location[2:]
    raise ConfigError(f"{where}: {path(location)}: {problem}" if location else f"{where}: {problem}")
