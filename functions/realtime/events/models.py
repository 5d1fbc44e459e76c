"""Wire formats: the producer message (SQS body) and the delivered event frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from realtime.core.contract import EVENT_ID_PATTERN, EVENT_TYPE_PATTERN, MAX_AUDIENCE_TOPICS, TOPIC_PATTERN
from realtime.core.encoding import compact_json

Topic = Annotated[str, StringConstraints(pattern=TOPIC_PATTERN)]


class ProducerMessage(BaseModel):
    """What producers send to the events queue (and what the publisher SDK builds)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN)]
    data: dict[str, Any]
    audience: Annotated[list[Topic], Field(min_length=1, max_length=MAX_AUDIENCE_TOPICS)] | None = None
    id: Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)] | None = None
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


@dataclass(frozen=True)
class Event:
    """The delivered frame: sent as is over WebSocket and returned by `GET /events`."""

    id: str
    type: str
    topic: str
    seq: int
    data: dict[str, Any]
    occurred_at: str
    published_at: str

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
