"""Wire formats: the stored event and the WebSocket frame (the producer message: realtime.events.producer)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from realtime.core.contract import MAX_AUDIENCE_TOPICS, MAX_SEQ
from realtime.core.encoding import compact_json

EVENT_KEY_LENGTH = 22  # base64url characters: 132 bits of SHA-256
EVENT_KEY = re.compile(rf"[A-Za-z0-9_-]{{{EVENT_KEY_LENGTH}}}")


def event_key(idempotency_key: str) -> str:
    """The opaque `key` of a stored event: unique per (producer namespace, id), as storage is.

    Clients dedupe on it. A hash, so the producer's IAM id inside the
    idempotency key never reaches a browser; the same on every topic of the
    event and in every frame of it, whichever function builds them.
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:EVENT_KEY_LENGTH]


class Event(msgspec.Struct, frozen=True):
    """An event on one topic: each item of `GET /events`, stored as is; with `seqs`, a WebSocket frame."""

    id: str
    type: str
    topic: str
    seq: int
    data: dict[str, Any]
    occurred_at: str
    published_at: str
    seqs: Mapping[str, int] | None = None  # frames only: every topic that reaches the connection, sorted
    key: str | None = None  # see event_key; None for events stored before keys existed

    def to_json(self) -> str:
        head: dict[str, Any] = {"id": self.id}
        if self.key is not None:
            head["key"] = self.key
        head |= {"type": self.type, "topic": self.topic, "seq": self.seq}
        if self.seqs is not None:
            head["seqs"] = dict(self.seqs)
        return compact_json(
            {**head, "data": self.data, "occurredAt": self.occurred_at, "publishedAt": self.published_at}
        )


class EventRef(msgspec.Struct, frozen=True):
    """A stored event named by its id and its seq on each of its topics: what a delivery job carries."""

    id: str
    seqs: Mapping[str, int]

    def to_message(self) -> dict[str, Any]:
        return {"id": self.id, "seqs": dict(self.seqs)}

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> EventRef:
        """Raises ValueError (or KeyError, TypeError) on anything but an id and a non-empty map of seqs."""
        event_id, seqs = message["id"], message["seqs"]
        if not isinstance(event_id, str) or not isinstance(seqs, dict) or not seqs or len(seqs) > MAX_AUDIENCE_TOPICS:
            raise ValueError("an event reference is an id and its seqs on 1 to 100 topics")
        if not all(isinstance(seq, int) and not isinstance(seq, bool) and 0 < seq <= MAX_SEQ for seq in seqs.values()):
            raise ValueError("seqs are whole numbers from 1")
        return cls(event_id, {str(topic): seq for topic, seq in seqs.items()})


class Publication(msgspec.Struct, frozen=True):
    """A stored event as delivery sees it: its content and its seq on each of its topics."""

    id: str
    type: str
    data: dict[str, Any]
    occurred_at: str
    published_at: str
    seqs: Mapping[str, int]
    key: str | None = None  # see event_key; None in a job queued before keys existed

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
                key=self.key,
            )
            .to_json()
            .encode("utf-8")
        )

    def ref(self) -> EventRef:
        return EventRef(self.id, self.seqs)
