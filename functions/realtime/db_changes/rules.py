"""A db-change source as the functions read it (`ChangeSource`, its rules), and the checks of what a
source may say that both of its validators make: realtime.db_changes.sources (every cold start) and
realtime.db_changes.sources_model (pydantic, the words for a refused source)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

from realtime.core.contract import EVENT_TYPE_PATTERN
from realtime.core.templates import TopicTemplate

ENVIRONMENT_VARIABLE = "DB_CHANGE_SOURCES"
CHANGE_KINDS = ("INSERT", "MODIFY", "REMOVE")
MAX_DATA_ATTRIBUTES = 100

NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
# Top-level attribute names usable in rules (DynamoDB allows more; these are safe in templates and patterns).
ATTRIBUTE_PATTERN = r"[A-Za-z0-9_.-]{1,255}"
STREAM_ARN_PATTERN = r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}/stream/\S+"
EVENT_TYPE_RULE_PATTERN = EVENT_TYPE_PATTERN[1:-1]
ATTRIBUTE = re.compile(ATTRIBUTE_PATTERN)
ATTRIBUTE_HINT = "name a top-level attribute ([A-Za-z0-9_.-])"
Kind = Literal["INSERT", "MODIFY", "REMOVE"]


def typed_value(raw: dict[str, Any]) -> tuple[str, str | Decimal | bool]:
    """`{"S": null, "N": null, "BOOL": true}` (Terraform writes every key) -> ("BOOL", True)."""
    given = {k: v for k, v in raw.items() if v is not None}
    if len(given) != 1 or next(iter(given)) not in ("S", "N", "BOOL"):
        raise ValueError(f'must set exactly one of S, N, BOOL (e.g. {{"BOOL": true}}), got {raw!r}')
    kind, value = next(iter(given.items()))
    if kind == "S" and isinstance(value, str):
        return "S", value
    if kind == "BOOL" and isinstance(value, bool):
        return "BOOL", value
    if kind == "N" and isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return "N", number
    raise ValueError(f"{kind} has the wrong type: {value!r} (S: string, N: number, BOOL: true/false)")


def distinct[T](items: list[T]) -> list[T]:
    if len(set(items)) != len(items):
        raise ValueError(f"lists an attribute twice: {list(items)}")
    return items


def default_kinds(kinds: frozenset[str] | None, becomes: bool) -> frozenset[str]:
    if kinds is None:
        return frozenset(("INSERT", "MODIFY") if becomes else CHANGE_KINDS)
    if becomes and "REMOVE" in kinds:
        raise ValueError("a 'becomes' trigger cannot fire on REMOVE (a removed item has no new value); drop REMOVE")
    return kinds


def unused_placeholders(audience: list[TopicTemplate], list_placeholders: list[str]) -> None:
    used = {name for template in audience for name in template.fields}
    unused = [name for name in list_placeholders if name not in used]
    if unused:
        raise ValueError(f"list_placeholders names {unused}, which no audience template uses")


def duplicate_rule_names(names: list[str]) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"rule names must be unique within a source (they are part of each event id): {duplicates}")


# --- the sources as the functions read them ------------------------------------------------------


class TypedValue(msgspec.Struct, frozen=True):
    """A DynamoDB scalar as the rule states it: type tag and value (N as Decimal)."""

    type: Literal["S", "N", "BOOL"]
    value: str | Decimal | bool


class Trigger(msgspec.Struct, frozen=True):
    attribute: str
    becomes: TypedValue | None = None


class ChangeRule(msgspec.Struct, frozen=True):
    source: str  # the source's name
    name: str
    event_type: str
    kinds: frozenset[str]
    when: Trigger | None
    audience: list[TopicTemplate]
    list_placeholders: list[str]
    data: list[str]

    @property
    def label(self) -> str:
        return f"{self.source}/{self.name}"


class ChangeSource(msgspec.Struct, frozen=True):
    name: str
    stream_arn: str
    rules: list[ChangeRule]
