"""The opaque `GET /events` cursor: base64url (no padding) of {"v": 1, "t": {topic: seq}}."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from realtime.core.contract import is_topic

CURSOR_VERSION = 1
MAX_CURSOR_LENGTH = 16384


def encode(positions: Mapping[str, int]) -> str:
    # Topics at 0 are left out: a missing topic already means "from the start".
    kept = {topic: seq for topic, seq in sorted(positions.items()) if seq > 0}
    text = json.dumps({"v": CURSOR_VERSION, "t": kept}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def decode(cursor: str) -> dict[str, int]:
    """Topic -> last seen seq. Raises ValueError with a clear message for any bad cursor."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError("cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError("cursor is not one this API returned (not base64url JSON)") from None
    if not isinstance(document, dict) or document.get("v") != CURSOR_VERSION:
        raise ValueError(f"cursor has an unknown version (expected {CURSOR_VERSION})")
    positions = document.get("t")
    if not isinstance(positions, dict):
        raise ValueError("cursor has no topic positions")
    for topic, seq in positions.items():
        if not is_topic(topic) or isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError("cursor has an invalid topic position")
    return dict(positions)
