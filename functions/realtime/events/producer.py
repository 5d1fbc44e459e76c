"""The producer message: what producers send to the events queue, validated with pydantic.

Apart from realtime.events.models so that only the functions that read producer
messages (process-events) load pydantic at cold start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from realtime.core.contract import EVENT_ID_PATTERN, EVENT_TYPE_PATTERN, MAX_AUDIENCE_TOPICS, TOPIC_PATTERN

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
    def _occurred_at_is_a_time(cls, value: object) -> object:
        # Parsed here, not by pydantic: it would read numbers, and number strings, as epoch seconds.
        if value is None:
            return None
        problem = "occurredAt must be an ISO 8601 date-time string with a time zone, e.g. 2026-11-26T10:00:00Z"
        if not isinstance(value, str):
            raise ValueError(problem)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(problem) from None
        if moment.tzinfo is None:
            raise ValueError(problem)
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("occurredAt is outside the years 1 to 9999 in UTC") from None
        return moment
