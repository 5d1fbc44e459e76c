"""asyncio client for realtime events and presence (WebSocket, HTTP long-poll fallback, gap repair)."""

from .client import ClientStats, ConnectionRefused, Delivery, HttpError, LiveRoster, RealtimeClient, connect
from .tracker import (
    Backoff,
    EventTracker,
    PresenceMember,
    PresenceRoster,
    PresenceTracker,
    PresenceUpdate,
    decode_cursor,
    encode_cursor,
    exactly_once_in_order,
)

__all__ = [
    "Backoff",
    "ClientStats",
    "ConnectionRefused",
    "Delivery",
    "EventTracker",
    "HttpError",
    "LiveRoster",
    "PresenceMember",
    "PresenceRoster",
    "PresenceTracker",
    "PresenceUpdate",
    "RealtimeClient",
    "connect",
    "decode_cursor",
    "encode_cursor",
    "exactly_once_in_order",
]
