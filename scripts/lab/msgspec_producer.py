"""The producer message as a msgspec Struct: the candidate scripts/lab/dependency_choice.py measures
against pydantic's `realtime.events.producer.ProducerMessage` (same fields and constraints)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from realtime.core.contract import EVENT_ID_PATTERN, EVENT_TYPE_PATTERN, MAX_AUDIENCE_TOPICS, TOPIC_PATTERN

Topic = Annotated[str, msgspec.Meta(pattern=TOPIC_PATTERN)]


class ProducerMessage(msgspec.Struct, forbid_unknown_fields=True, rename={"occurred_at": "occurredAt"}):
    type: Annotated[str, msgspec.Meta(pattern=EVENT_TYPE_PATTERN)]
    data: dict[str, Any]
    audience: Annotated[list[Topic], msgspec.Meta(min_length=1, max_length=MAX_AUDIENCE_TOPICS)] | None = None
    id: Annotated[str, msgspec.Meta(pattern=EVENT_ID_PATTERN)] | None = None
    occurred_at: str | None = None


decode = msgspec.json.Decoder(ProducerMessage).decode
