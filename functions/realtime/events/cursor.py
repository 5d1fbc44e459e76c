"""The `GET /events` cursor, version 1 (part of the contract: contract/vectors/cursor.json).

base64url (no padding) of `{"v": 1, "t": {topic: seq}}`: per topic, the last seq
handed on or skipped. Clients may build one from the positions they hold.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from realtime.core.contract import MAX_SEQ

CURSOR_VERSION = 1
MAX_CURSOR_LENGTH = 16384
# A v1 cursor nests two deep; the room above keeps the precise messages for near misses. Checked before
# json.loads, whose recursion a few thousand `[` would exhaust (RecursionError: a 500 and a stack trace).
MAX_CURSOR_NESTING = 8
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


def encode(positions: Mapping[str, int]) -> str:
    # Topics at 0 are left out: a missing topic already means "from the start".
    kept = {topic: seq for topic, seq in sorted(positions.items()) if seq > 0}
    text = json.dumps({"v": CURSOR_VERSION, "t": kept}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _is_version(value: object) -> bool:
    return not isinstance(value, bool) and value == CURSOR_VERSION


def _nesting_within(text: str, limit: int) -> bool:
    """Whether JSON text opens at most `limit` arrays/objects inside one another (brackets in strings ignored)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


def decode(cursor: str) -> dict[str, int]:
    """Topic -> last seen seq. Raises ValueError with a clear message for anything but a v1 cursor."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError("cursor is too long")
    if not _BASE64URL.fullmatch(cursor):
        raise ValueError("cursor is not base64url text")
    text = cursor.rstrip("=")
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise ValueError("cursor is not base64url JSON") from None
    if not _nesting_within(decoded, MAX_CURSOR_NESTING):
        raise ValueError(f"cursor nests more than {MAX_CURSOR_NESTING} levels deep")
    try:
        document = json.loads(decoded)
    except ValueError:  # JSONDecodeError, and integers longer than Python converts
        raise ValueError("cursor is not base64url JSON") from None
    if not (isinstance(document, dict) and set(document) == {"v", "t"} and _is_version(document["v"])):
        raise ValueError(f'cursor is not a version {CURSOR_VERSION} cursor ({{"v": 1, "t": {{topic: seq}}}})')
    positions = document["t"]
    if not isinstance(positions, dict):
        raise ValueError("cursor has no topic positions")
    for topic, seq in positions.items():
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
            raise ValueError(f"cursor position of {topic!r} must be an integer from 0 to {MAX_SEQ}, got {seq!r}")
    return dict(positions)
