"""What both rule engines share: topic templates, strict typed rule models, and their error messages.

Event-type rules (`realtime.events.audience`) and db-change rules
(`realtime.db_changes.sources`) both give an event its audience from templates
such as `user:{data.userId}` or `group:{clinicIds}`. A template is text with
`{field}` placeholders: each engine says what a field may name and how to look
its values up; a field with several values (a list) gives one topic per value,
and several such fields give every combination.

Rules are validated once, at cold start; a bad rule fails the function's start
with a ConfigError that names the rule and the field, in pydantic's words
(realtime.core.rule_model).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from realtime.core.contract import is_topic
from realtime.core.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import ValidationError

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class InvalidTopic(ValueError):
    """A template rendered to text that is not a topic."""

    def __init__(self, template: str, topic: str) -> None:
        super().__init__(f"audience template {template!r} gave {topic!r}, which is not a valid topic")
        self.template = template
        self.topic = topic


class TopicTemplate(msgspec.Struct, frozen=True):
    text: str
    fields: tuple[str, ...]  # placeholders in order of appearance

    @classmethod
    def parse(cls, text: object, field: re.Pattern[str], field_hint: str) -> TopicTemplate:
        """Check a template once: every placeholder names a field, and any value leaves a valid topic around it."""
        if not isinstance(text, str):
            raise ValueError(f"audience templates must be strings, got {text!r}")
        fields = tuple(PLACEHOLDER.findall(text))
        for name in fields:
            if not field.fullmatch(name):
                raise ValueError(f"placeholder {{{name}}} in {text!r} must {field_hint}")
        if not is_topic(PLACEHOLDER.sub("x", text)):
            raise ValueError(
                f"audience template {text!r} does not form a topic (all, user:<id>, group:<name> or presence:<id>)"
            )
        return cls(text, fields)

    def render(self, values: Callable[[str], Sequence[str]]) -> Iterator[str]:
        """Every topic the template gives: one per combination of its fields' values.

        `values(field)` returns the field's values as text (or raises the engine's
        own error); InvalidTopic is raised for a value that breaks the topic grammar.
        """
        choices = [values(name) for name in self.fields]
        for combination in itertools.product(*choices):
            parts = iter(combination)
            topic = PLACEHOLDER.sub(lambda _match, parts=parts: next(parts), self.text)
            if not is_topic(topic):
                raise InvalidTopic(self.text, topic)
            yield topic


def unique_texts(templates: Sequence[TopicTemplate]) -> Sequence[TopicTemplate]:
    if len({template.text for template in templates}) != len(templates):
        raise ValueError("lists a template twice")
    return templates


def json_list(text: str, variable: str, items: str) -> list[Any]:
    """The JSON list an environment variable holds, or ConfigError naming the variable."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{variable} is not valid JSON: {error}") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{variable} must be a JSON list of {items}")
    return raw


def explain(error: ValidationError) -> tuple[tuple[int | str, ...], str]:
    """The first problem of a failed validation: where (a pydantic location) and what, in plain words."""
    details = error.errors(include_url=False)
    extra = [d for d in details if d["type"] == "extra_forbidden"]
    if extra:
        where = extra[0]["loc"][:-1]
        names = sorted(str(d["loc"][-1]) for d in extra if d["loc"][:-1] == where)
        return where, f"unknown keys {names}"
    first = details[0]
    return first["loc"], str(first["msg"]).removeprefix("Value error, ")


def path(location: Sequence[int | str]) -> str:
    """`('when', 'becomes', 'BOOL')` -> `when.becomes.BOOL`; list indexes as `[0]`."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def name_of(raw: Any) -> str | None:
    """A rule's or source's own name, for error messages, when it has a usable one."""
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) else None
