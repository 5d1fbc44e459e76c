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

msgspec and the checks of realtime.db_changes.rules validate the sources:
importing pydantic and building its validators cost db-changes about 70 ms at
every cold start (scripts/lab/cold_start.py). The pydantic models (realtime.db_changes.sources_model)
stay the reference and the voice: a source refused here is validated again by
them, which say what is wrong in the words the refused-input corpus pins, and
are imported only then. The two accept the same sources (tests/unit/db_changes/
test_sources_validators.py compares them on generated ones); should this path ever refuse
a source that pydantic accepts, pydantic's reading of it is used.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from realtime.core.contract import MAX_AUDIENCE_TOPICS
from realtime.core.errors import ConfigError
from realtime.core.templates import TopicTemplate, json_list, unique_texts
from realtime.db_changes.rules import (
    ATTRIBUTE,
    ATTRIBUTE_HINT,
    ATTRIBUTE_PATTERN,
    ENVIRONMENT_VARIABLE,
    EVENT_TYPE_RULE_PATTERN,
    MAX_DATA_ATTRIBUTES,
    NAME_PATTERN,
    STREAM_ARN_PATTERN,
    ChangeRule,
    ChangeSource,
    Kind,
    Trigger,
    TypedValue,
    default_kinds,
    distinct,
    duplicate_rule_names,
    typed_value,
    unused_placeholders,
)


class Refused(ValueError):
    """A source this path does not accept: pydantic's model says why (or accepts it after all)."""


# --- their JSON, as msgspec checks it ------------------------------------------------------------


def _whole(pattern: str) -> str:
    """Matched by msgspec (re.search) as pydantic's validators match it (re.fullmatch)."""
    return rf"^(?:{pattern})\Z"


_Name = Annotated[str, msgspec.Meta(pattern=_whole(NAME_PATTERN))]
_Attribute = Annotated[str, msgspec.Meta(pattern=_whole(ATTRIBUTE_PATTERN))]


class _TriggerJson(msgspec.Struct, forbid_unknown_fields=True):
    attribute: _Attribute
    becomes: dict[str, Any] | None = None


class _RuleJson(msgspec.Struct, forbid_unknown_fields=True):
    name: _Name
    event_type: Annotated[str, msgspec.Meta(pattern=_whole(EVENT_TYPE_RULE_PATTERN))]
    audience: Annotated[list[Any], msgspec.Meta(min_length=1, max_length=MAX_AUDIENCE_TOPICS)]
    kinds: Annotated[list[Kind], msgspec.Meta(min_length=1)] | None = None
    when: _TriggerJson | None = None
    list_placeholders: list[_Attribute] = []
    data: Annotated[list[_Attribute], msgspec.Meta(max_length=MAX_DATA_ATTRIBUTES)] = []


class _SourceJson(msgspec.Struct, forbid_unknown_fields=True):
    name: _Name
    stream_arn: Annotated[str, msgspec.Meta(pattern=_whole(STREAM_ARN_PATTERN))]
    rules: Annotated[list[_RuleJson], msgspec.Meta(min_length=1)]


def _rule(source: str, raw: _RuleJson) -> ChangeRule:
    if raw.kinds is not None and len(set(raw.kinds)) != len(raw.kinds):
        raise Refused("kinds listed twice")
    when = becomes = None
    if raw.when is not None:
        if raw.when.becomes is not None:
            if "type" in raw.when.becomes:
                raise Refused("the model's own form of a typed value")  # pydantic reads it, or says why not
            becomes = TypedValue(*typed_value(raw.when.becomes))
        when = Trigger(raw.when.attribute, becomes)
    audience = unique_texts([TopicTemplate.parse(text, ATTRIBUTE, ATTRIBUTE_HINT) for text in raw.audience])
    unused_placeholders(audience, distinct(raw.list_placeholders))
    kinds = default_kinds(None if raw.kinds is None else frozenset(raw.kinds), becomes is not None)
    return ChangeRule(
        source, raw.name, raw.event_type, kinds, when, list(audience), raw.list_placeholders, distinct(raw.data)
    )


def _source(raw: object) -> ChangeSource:
    """The source, or Refused / ValueError / msgspec.ValidationError."""
    source = msgspec.convert(raw, _SourceJson)
    duplicate_rule_names([rule.name for rule in source.rules])
    return ChangeSource(source.name, source.stream_arn, [_rule(source.name, rule) for rule in source.rules])


def parse_source(index: int, raw: object) -> ChangeSource:
    """Validate one source; the error names the source and, inside a rule, the rule and its field."""
    try:
        return _source(raw)
    except (msgspec.ValidationError, ValueError):
        pass
    from realtime.db_changes.sources_model import validate  # pydantic: only for a source refused above

    return validate(index, raw)  # raises ConfigError in pydantic's words, or accepts it


class ChangeSources:
    """Every configured stream with its rules, looked up by the record's eventSourceARN."""

    def __init__(self, sources: list[ChangeSource]) -> None:
        self.sources = tuple(sources)
        self._by_arn = {source.stream_arn: source for source in sources}

    @classmethod
    def from_json(cls, text: str) -> ChangeSources:
        """Parse and validate everything up front, so a bad rule fails the cold start, not a record."""
        raw = json_list(text, ENVIRONMENT_VARIABLE, "sources")
        sources = [parse_source(index, source) for index, source in enumerate(raw)]
        for field in ("name", "stream_arn"):
            values = [getattr(source, field) for source in sources]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise ConfigError(f"{ENVIRONMENT_VARIABLE}: two sources share the {field} {duplicates}")
        return cls(sources)

    def for_stream(self, stream_arn: str) -> ChangeSource | None:
        return self._by_arn.get(stream_arn)
