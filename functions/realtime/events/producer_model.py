"""The producer message as a pydantic model: the reference for what is valid, and the words for what is not.

realtime.events.producer validates messages with msgspec and imports this
module only for a message msgspec refuses: pydantic then says what is wrong,
in the words the refused-input corpus pins (docs/refused-inputs.md), so a
producer reads the same errors whichever library found them first.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from realtime.core.contract import EVENT_ID_PATTERN, EVENT_TYPE_PATTERN, MAX_AUDIENCE_TOPICS, TOPIC_PATTERN
from realtime.core.encoding import aware_datetime
from realtime.core.errors import PermanentError

MAX_REPORTED_ERRORS = 5

Topic = Annotated[str, StringConstraints(pattern=TOPIC_PATTERN)]


class ProducerMessageModel(BaseModel):
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
        return aware_datetime(value, "occurredAt")


def validate(raw: object) -> ProducerMessageModel:
    """`raw` validated by the model, or PermanentError("invalid_message") listing its problems (up to
    MAX_REPORTED_ERRORS)."""
    try:
        return ProducerMessageModel.model_validate(raw)
    except ValidationError as error:
        raise PermanentError("invalid_message", field_errors(error)) from None


def field_errors(error: ValidationError) -> str:
    details = error.errors(include_url=False)
    parts = [
        f"{'.'.join(str(p) for p in d['loc']) or 'message'}: {d['msg'].removeprefix('Value error, ')}" for d in details
    ]
    if len(parts) > MAX_REPORTED_ERRORS:
        parts = [*parts[:MAX_REPORTED_ERRORS], f"and {len(parts) - MAX_REPORTED_ERRORS} more"]
    return "; ".join(parts)
