"""The producer message: what producers send to the events queue, and its validation.

msgspec validates every message: its import and its calls cost a fraction of
pydantic's (make bench, "Dependencies"), and process-events pays the import at
every cold start. The pydantic model (realtime.events.producer_model) stays the
reference and the voice: a message msgspec refuses is validated again by it,
which says what is wrong in the words the refused-input corpus pins, and is
imported only then. The two accept the same messages (tests/unit/events/
test_producer.py compares them on generated ones); should msgspec ever refuse a
message that pydantic accepts, pydantic's reading of it is used.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from realtime.core.contract import EVENT_ID_PATTERN, EVENT_TYPE_PATTERN, MAX_AUDIENCE_TOPICS, TOPIC_PATTERN
from realtime.core.encoding import aware_datetime


def whole_text(pattern: str) -> str:
    """A contract pattern as pydantic's Rust regex reads it, for Python's re: its final `$` matches
    at the very end of the text only, where Python's would also match before a final newline."""
    return pattern.removesuffix("$") + r"\Z"


Topic = Annotated[str, msgspec.Meta(pattern=whole_text(TOPIC_PATTERN))]


class ProducerMessage(msgspec.Struct, forbid_unknown_fields=True):
    """What producers send to the events queue (and what the publisher SDK builds)."""

    type: Annotated[str, msgspec.Meta(pattern=whole_text(EVENT_TYPE_PATTERN))]
    data: dict[str, Any]
    audience: Annotated[list[Topic], msgspec.Meta(min_length=1, max_length=MAX_AUDIENCE_TOPICS)] | None = None
    id: Annotated[str, msgspec.Meta(pattern=whole_text(EVENT_ID_PATTERN))] | None = None
    # Parsed in __post_init__ rather than by either library: pydantic would read numbers, and number strings, as
    # epoch seconds. A datetime once validated.
    occurred_at: Any = msgspec.field(default=None, name="occurredAt")

    def __post_init__(self) -> None:
        if self.audience is not None and len(set(self.audience)) != len(self.audience):
            raise ValueError("audience topics must be unique")
        self.occurred_at = aware_datetime(self.occurred_at, "occurredAt")


def parse_producer_message(raw: object) -> ProducerMessage:
    """A decoded queue message as a ProducerMessage, or PermanentError("invalid_message") saying why not."""
    try:
        return msgspec.convert(raw, ProducerMessage)
    except msgspec.ValidationError:
        pass
    from realtime.events.producer_model import validate  # pydantic: only for a message msgspec refused

    model = validate(raw)  # raises PermanentError in pydantic's words, or accepts what msgspec did not
    return ProducerMessage(
        type=model.type, data=model.data, audience=model.audience, id=model.id, occurred_at=model.occurred_at
    )
