"""Wire formats: the producer message (SQS body) and the delivered event frame."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from realtime.topics import TOPIC_REGEX

EVENT_TYPE_REGEX = r"^[a-z0-9_.-]{1,64}$"
# Printable ASCII without spaces, so ids are safe inside keys, logs and URLs.
EVENT_ID_REGEX = r"^[!-~]{1,128}$"
MAX_AUDIENCE_TOPICS = 100

Topic = Annotated[str, StringConstraints(pattern=TOPIC_REGEX)]


class ProducerMessage(BaseModel):
    """What producers send to the events queue (and what the publisher SDK builds)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Annotated[str, StringConstraints(pattern=EVENT_TYPE_REGEX)]
    data: dict[str, Any]
    audience: Annotated[list[Topic], Field(min_length=1, max_length=MAX_AUDIENCE_TOPICS)] | None = None
    id: Annotated[str, StringConstraints(pattern=EVENT_ID_REGEX)] | None = None
    occurred_at: AwareDatetime | None = Field(default=None, alias="occurredAt")

    @field_validator("audience")
    @classmethod
    def _audience_unique(cls, audience: list[str] | None) -> list[str] | None:
        if audience is not None and len(set(audience)) != len(audience):
            raise ValueError("audience topics must be unique")
        return audience

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _occurred_at_is_text(cls, value: object) -> object:
        # Numbers would be read as epoch seconds; the contract says ISO 8601 text.
        if value is not None and not isinstance(value, str):
            raise ValueError("occurredAt must be an ISO 8601 date-time string with a time zone")
        return value


def format_timestamp(moment: datetime) -> str:
    """UTC, millisecond precision, `Z` suffix: 2026-11-26T10:00:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compact_json(value: Any) -> str:
    # ensure_ascii=False keeps non-ASCII text at its UTF-8 size, which is what the size limit counts.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class Event(BaseModel):
    """The delivered frame: sent as is over WebSocket and returned by `GET /events`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: str
    type: str
    topic: str
    seq: int
    data: dict[str, Any]
    occurred_at: str = Field(alias="occurredAt")
    published_at: str = Field(alias="publishedAt")

    def to_json(self) -> str:
        return compact_json(
            {
                "id": self.id,
                "type": self.type,
                "topic": self.topic,
                "seq": self.seq,
                "data": self.data,
                "occurredAt": self.occurred_at,
                "publishedAt": self.published_at,
            }
        )
