"""The wire grammar and limits that producers, functions, clients and the module share.

The language-neutral source is `contract/wire.json`; tests keep these constants
equal to it and run its accept/reject vectors against every check production
makes (the checks below, and the producer model's patterns).
"""

from __future__ import annotations

import re

TOPIC_PATTERN = r"^(all|(user|group|presence):[A-Za-z0-9_.@:|+-]{1,128})$"
USER_ID_PATTERN = r"^[A-Za-z0-9_.@:|+-]{1,128}$"
EVENT_TYPE_PATTERN = r"^[a-z0-9_.-]{1,64}$"
# Printable ASCII without spaces, so ids are safe inside keys, logs and URLs.
EVENT_ID_PATTERN = r"^[!-~]{1,128}$"

BROADCAST_TOPIC = "all"

# Event types and ids only the module's own functions use (presence events): a producer's are refused.
RESERVED_TYPE_PREFIX = "presence."
RESERVED_ID_PREFIX = "presence-"

# The code of the error frame a WebSocket gets just before the server closes it because its token expired.
TOKEN_EXPIRED = "token_expired"  # noqa: S105 (an error code, not a secret)

MAX_AUDIENCE_TOPICS = 100
MAX_TOPICS_PER_TOKEN = 100
DEFAULT_DATA_BYTES = 32 * 1024
# PostToConnection accepts at most 128 KiB; leave room for the frame's envelope.
MAX_DATA_BYTES = 120 * 1024
# Objects and lists inside `data`, counting `data` itself: far below any JSON parser's own limit
# (Python's ~1000, serde_json's 128), and above DynamoDB's 32 levels, so table items always fit.
MAX_DATA_DEPTH = 64
QUEUE_MESSAGE_BYTES = 256 * 1024
DEFAULT_PAGE_EVENTS = 50
MAX_PAGE_EVENTS = 200
# A page's events are capped by size too, far under Lambda's 6 MB response limit (the response
# carries the page as a JSON string, which escaping can at worst double); a single event always fits.
MAX_PAGE_BYTES = 1024 * 1024
# The largest seq a cursor may name: beyond it JavaScript numbers lose integers.
MAX_SEQ = 2**53 - 1
MAX_WAIT_SECONDS = 20
DEFAULT_PRESENCE_USERS = 50
MAX_PRESENCE_USERS = 100  # one BatchGetItem

_TOPIC = re.compile(TOPIC_PATTERN)
_USER_ID = re.compile(USER_ID_PATTERN)


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    # fullmatch: `$` alone would also accept a trailing newline.
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def is_topic(value: object) -> bool:
    return _matches(_TOPIC, value)


def is_user_id(value: object) -> bool:
    return _matches(_USER_ID, value)
