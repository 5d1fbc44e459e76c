"""Turning one DynamoDB Streams record into producer messages, following the rules.

A record is matched against every rule of its stream. Each matching rule gives
one event whose id is derived from the record (`db-` + a hash of the stream
ARN, the record's eventID and the rule name), so a retried or replayed record
gives the same id and the events store keeps a single copy.

A rule that cannot be applied to a record (an audience attribute is missing or
cannot name a topic, or the stream lacks the image the rule reads) is skipped
with a reason: retrying the record could never change that. A record whose
rules would give more topics than the per-record cap gives no event at all: it
is refused, with a reason, before any topic is built.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from boto3.dynamodb.types import TypeDeserializer

from realtime.core.contract import MAX_AUDIENCE_TOPICS, QUEUE_MESSAGE_BYTES
from realtime.core.encoding import compact_json, format_timestamp
from realtime.core.templates import InvalidTopic, TopicTemplate
from realtime.db_changes.rules import ChangeRule, TypedValue
from realtime.db_changes.sources import ChangeSources

EVENT_ID_PREFIX = "db-"
_deserializer = TypeDeserializer()
_MISSING = object()


class MissingImageError(Exception):
    """The record lacks an image a rule needs: the stream's view type is too narrow."""


class StreamChange(msgspec.Struct, frozen=True):
    """The parts of a DynamoDB Streams record the rules look at; images stay in DynamoDB JSON."""

    source_arn: str
    record_id: str  # the record's eventID, unique per stream
    sequence_number: str
    kind: str  # INSERT, MODIFY or REMOVE
    old_image: Mapping[str, Any] | None
    new_image: Mapping[str, Any] | None
    created_at: datetime | None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StreamChange:
        stream = record.get("dynamodb") or {}
        created = stream.get("ApproximateCreationDateTime")
        return cls(
            source_arn=record.get("eventSourceARN", ""),
            record_id=record.get("eventID", ""),
            sequence_number=str(stream.get("SequenceNumber", "")),
            kind=record.get("eventName", ""),
            old_image=stream.get("OldImage"),
            new_image=stream.get("NewImage"),
            created_at=datetime.fromtimestamp(float(created), UTC) if created is not None else None,
        )

    @property
    def image(self) -> Mapping[str, Any] | None:
        """The item the event is about: as it is now, or as it was before a REMOVE."""
        return self.old_image if self.kind == "REMOVE" else self.new_image


def derive_event_id(source_arn: str, record_id: str, rule_name: str) -> str:
    digest = hashlib.sha256("\n".join((source_arn, record_id, rule_name)).encode("utf-8")).hexdigest()
    return f"{EVENT_ID_PREFIX}{digest[:40]}"


# --- DynamoDB JSON to plain values ---------------------------------------------------------------


def to_python(attribute: Mapping[str, Any]) -> Any:
    """One attribute value in DynamoDB JSON to Python (N as Decimal, sets as sets).

    Binary stays the base64 text the stream carries: boto3's deserializer wants raw bytes.
    """
    if "B" in attribute:
        return attribute["B"]
    if "BS" in attribute:
        return set(attribute["BS"])
    if "M" in attribute:
        return {key: to_python(value) for key, value in attribute["M"].items()}
    if "L" in attribute:
        return [to_python(value) for value in attribute["L"]]
    return _deserializer.deserialize(attribute)


def to_json_value(value: Any) -> Any:
    """A deserialized value as JSON can carry it: Decimal to a number, sets to sorted lists."""
    if isinstance(value, Decimal):
        # Integral values stay exact; others become floats (what a browser's JSON.parse gives anyway).
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(to_json_value(item) for item in value)
    if isinstance(value, list):
        return [to_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json_value(item) for key, item in value.items()}
    return value


def _typed(attribute: Any) -> tuple[str, Any]:
    """(type tag, value) so that `true` and `1`, or "1" and 1, never compare equal."""
    if attribute is _MISSING:
        return ("", _MISSING)
    kind = next(iter(attribute), "")
    return (kind, to_python(attribute))


def _number_text(number: Decimal) -> str:
    return str(int(number)) if number == number.to_integral_value() else format(number.normalize(), "f")


# --- matching ------------------------------------------------------------------------------------


def _value_equals(attribute: Any, expected: TypedValue) -> bool:
    kind, value = _typed(attribute)
    return kind == expected.type and value == expected.value


def rule_matches(rule: ChangeRule, change: StreamChange) -> bool:
    """Whether the rule fires on this change. Raises MissingImageError if an image it reads is absent."""
    if change.kind not in rule.kinds:
        return False
    if rule.when is None:
        return True
    if change.kind == "MODIFY" and (change.old_image is None or change.new_image is None):
        raise MissingImageError("comparing old and new values needs a NEW_AND_OLD_IMAGES stream")
    if change.kind != "REMOVE" and change.new_image is None:
        raise MissingImageError("the record has no NewImage (stream view type KEYS_ONLY or OLD_IMAGE)")
    if change.kind == "REMOVE" and change.old_image is None:
        raise MissingImageError("the record has no OldImage (stream view type KEYS_ONLY or NEW_IMAGE)")
    attribute = rule.when.attribute
    old = (change.old_image or {}).get(attribute, _MISSING)
    new = (change.new_image or {}).get(attribute, _MISSING)
    if rule.when.becomes is None:
        return _typed(old) != _typed(new)
    return _value_equals(new, rule.when.becomes) and not _value_equals(old, rule.when.becomes)


# --- audience and data ---------------------------------------------------------------------------


class RuleSkipped(Exception):
    """The rule matched but cannot give an event for this item; `code` names the reason."""

    def __init__(self, code: str, reason: str, attribute: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.attribute = attribute


def _topic_texts(attribute_value: Mapping[str, Any]) -> list[str] | None:
    """The topic parts an attribute gives: strings and numbers, alone or in a list or set; None if neither."""
    kind, value = next(iter(attribute_value.items()), ("", None))
    if kind == "S":
        return [value]
    if kind == "N":
        return [_number_text(Decimal(value))]
    if kind == "SS":
        return sorted(value)
    if kind == "NS":
        return [_number_text(number) for number in sorted(Decimal(item) for item in value)]
    if kind == "L":
        texts: list[str] = []
        for item in value:
            if not isinstance(item, Mapping) or next(iter(item), "") not in ("S", "N"):
                return None
            texts += _topic_texts(item) or []
        return texts
    return None


class TooManyTopics(Exception):
    """The rule's audience would be larger than what is left of the record's topic budget."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} topics")
        self.count = count


def _topic_values(template: TopicTemplate, attribute: str, image: Mapping[str, Any], may_be_list: bool) -> list[str]:
    """The distinct topic parts the attribute gives (several only for a declared list placeholder)."""
    if attribute not in image:
        raise RuleSkipped(
            "attribute_missing",
            f"audience template {template.text!r} needs attribute {attribute!r}, which the item does not have",
            attribute,
        )
    if not may_be_list and next(iter(image[attribute]), "") in ("L", "SS", "NS"):
        raise RuleSkipped(
            "undeclared_list",
            f"attribute {attribute!r} of audience template {template.text!r} holds a list or set; name it in the "
            "rule's list_placeholders for one topic per element",
            attribute,
        )
    texts = _topic_texts(image[attribute])
    if texts is None:
        raise RuleSkipped(
            "attribute_not_a_topic",
            f"attribute {attribute!r} of audience template {template.text!r} must be a string or a number "
            "(or, named in list_placeholders, a list or set of them)",
            attribute,
        )
    return list(dict.fromkeys(texts))


def audience_for(rule: ChangeRule, image: Mapping[str, Any], limit: int) -> list[str]:
    """Every topic the rule's templates give for the item: one per combination of list elements.

    Raises TooManyTopics, before building any, when that would be more than `limit`.
    """
    values: dict[str, list[str]] = {}
    for template in rule.audience:
        for attribute in template.fields:
            if attribute not in values:
                values[attribute] = _topic_values(template, attribute, image, attribute in rule.list_placeholders)
    count = sum(math.prod(len(values[attribute]) for attribute in template.fields) for template in rule.audience)
    if count > limit:
        raise TooManyTopics(count)
    topics: list[str] = []
    for template in rule.audience:
        try:
            topics += template.render(values.__getitem__)
        except InvalidTopic as error:
            raise RuleSkipped("invalid_topic", str(error)) from None
    return list(dict.fromkeys(topics))


def project(image: Mapping[str, Any], attributes: tuple[str, ...]) -> dict[str, Any]:
    """The named attributes of the item, as JSON values; absent ones are left out."""
    return {name: to_json_value(to_python(image[name])) for name in attributes if name in image}


# --- translation ---------------------------------------------------------------------------------


class OutgoingMessage(msgspec.Struct, frozen=True):
    event_id: str
    rule: str
    body: str  # a producer message (docs/design.md), JSON


class SkippedRule(msgspec.Struct, frozen=True):
    rule: str
    code: str
    reason: str
    attribute: str | None = None


class Refusal(msgspec.Struct, frozen=True):
    """Why a record gives no event at all (it goes to the failures queue with this reason)."""

    code: str
    reason: str


class Translation(msgspec.Struct):
    change: StreamChange
    messages: list[OutgoingMessage] = msgspec.field(default_factory=list)
    skipped: list[SkippedRule] = msgspec.field(default_factory=list)
    matched: int = 0
    refused: Refusal | None = None


class ChangeTranslator:
    def __init__(self, sources: ChangeSources, max_topics_per_record: int) -> None:
        self._sources = sources
        self._max_topics = max_topics_per_record

    def translate(self, record: Mapping[str, Any]) -> Translation:
        change = StreamChange.from_record(record)
        translation = Translation(change)
        source = self._sources.for_stream(change.source_arn)
        if source is None:
            translation.skipped.append(
                SkippedRule("-", "unknown_stream", f"no rules for stream {change.source_arn!r} (DB_CHANGE_SOURCES)")
            )
            return translation
        topics_given = 0
        for rule in source.rules:
            try:
                if not rule_matches(rule, change):
                    continue
                translation.matched += 1
                image = change.image
                if image is None:
                    raise MissingImageError(f"the {change.kind} record carries no item image (view type KEYS_ONLY?)")
                topics = audience_for(rule, image, self._max_topics - topics_given)
                topics_given += len(topics)
                translation.messages.extend(self._messages(rule, change, image, topics))
            except MissingImageError as error:
                translation.skipped.append(SkippedRule(rule.label, "image_missing", str(error)))
            except RuleSkipped as skipped:
                translation.skipped.append(SkippedRule(rule.label, skipped.code, skipped.reason, skipped.attribute))
            except TooManyTopics as error:
                earlier = f", after {topics_given} from the rules before it" if topics_given else ""
                reason = (
                    f"rule {rule.label} gives {error.count} topics{earlier}: a record may give at most "
                    f"{self._max_topics} (db_changes_max_topics_per_record)"
                )
                translation.messages.clear()
                translation.refused = Refusal("too_many_topics", reason)
                break
        return translation

    @staticmethod
    def _messages(
        rule: ChangeRule, change: StreamChange, image: Mapping[str, Any], topics: list[str]
    ) -> list[OutgoingMessage]:
        if not topics:
            raise RuleSkipped("empty_audience", "the audience attributes are empty lists: nobody to tell")
        event_id = derive_event_id(change.source_arn, change.record_id, rule.name)
        message: dict[str, Any] = {"type": rule.event_type, "data": project(image, rule.data), "id": event_id}
        if change.created_at is not None:
            message["occurredAt"] = format_timestamp(change.created_at)
        # More topics than one message may carry: same id in every part, and the store keeps
        # one copy per (topic, id), exactly as if it had been one message; process-events
        # delivers every part (docs/design.md, "One id in one batch").
        parts = [
            OutgoingMessage(
                event_id, rule.label, compact_json({**message, "audience": topics[i : i + MAX_AUDIENCE_TOPICS]})
            )
            for i in range(0, len(topics), MAX_AUDIENCE_TOPICS)
        ]
        largest = max(len(part.body.encode("utf-8")) for part in parts)
        if largest > QUEUE_MESSAGE_BYTES:
            raise RuleSkipped(
                "too_large",
                f"the event is {largest} bytes, over the queue's {QUEUE_MESSAGE_BYTES}: project fewer attributes",
            )
        return parts
