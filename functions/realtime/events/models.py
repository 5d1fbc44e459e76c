"""Wire formats: the producer message (SQS body), the stored event, and the WebSocket frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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


@dataclass(frozen=True)
class Event:
    """An event on one topic: each item of `GET /events`, stored as is; with `seqs`, a WebSocket frame."""

    id: str
    type: str
    topic: str
    seq: int
    data: dict[str, Any]
    occurred_at: str
    published_at: str
    seqs: Mapping[str, int] | None = None  # frames only: every topic that reaches the connection, sorted

    def to_json(self) -> str:
        head: dict[str, Any] = {"id": self.id, "type": self.type, "topic": self.topic, "seq": self.seq}
        if self.seqs is not None:
            head["seqs"] = dict(self.seqs)
        return compact_json(
            {**head, "data": self.data, "occurredAt": self.occurred_at, "publishedAt": self.published_at}
        )


@dataclass(frozen=True)
class Publication:
    """A stored event as delivery sees it: its content and its seq on each of its topics."""

    id: str
    type: str
    data: dict[str, Any]
    occurred_at: str
    published_at: str
    seqs: Mapping[str, int]

    def frame(self, topics: Sequence[str]) -> bytes:
        """The one frame a connection reached through `topics` (sorted, a subset of the event's) receives.

        `topic` and `seq` are the first of them, so a client that only reads
        those still sees a valid event; `seqs` lists them all.
        """
        first = topics[0]
        return (
            Event(
                id=self.id,
                type=self.type,
                topic=first,
                seq=self.seqs[first],
                data=self.data,
                occurred_at=self.occurred_at,
                published_at=self.published_at,
                seqs={topic: self.seqs[topic] for topic in topics},
            )
            .to_json()
            .encode("utf-8")
        )

    def to_message(self) -> dict[str, Any]:
        """As a fan-out job carries it."""
        return {
            "id": self.id,
            "type": self.type,
            "data": self.data,
            "occurredAt": self.occurred_at,
            "publishedAt": self.published_at,
            "seqs": dict(self.seqs),
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Publication:
        return cls(
            id=message["id"],
            type=message["type"],
            data=message["data"],
            occurred_at=message["occurredAt"],
            published_at=message["publishedAt"],
            seqs={str(topic): int(seq) for topic, seq in message["seqs"].items()},
        )
