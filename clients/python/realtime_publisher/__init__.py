"""Publisher SDK for application servers: validated events onto the events queue."""

from .publisher import Event, InvalidEvent, Publisher, PublishError

__all__ = ["Event", "InvalidEvent", "PublishError", "Publisher"]
