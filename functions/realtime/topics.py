"""Topic grammar and the topics a token grants."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

TOPIC_REGEX = r"^(all|(user|group|presence):[A-Za-z0-9_.@:|+-]{1,128})$"
_TOPIC = re.compile(TOPIC_REGEX)
BROADCAST_TOPIC = "all"
MAX_TOPICS_PER_PRINCIPAL = 100


def is_valid_topic(value: object) -> bool:
    # fullmatch: `$` alone would also accept a trailing newline.
    return isinstance(value, str) and _TOPIC.fullmatch(value) is not None


def user_topic(user_id: str) -> str:
    return f"user:{user_id}"


def group_topic(group: str) -> str:
    return f"group:{group}"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _strings(value: object) -> list[str]:
    # A lone string is not a list of groups: iterating it would grant one topic per character.
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, str)]


def topics_for_claims(claims: Mapping[str, Any]) -> list[str]:
    """The topics a verified token subscribes to, in a stable order.

    `user:<sub>`, then `group:<g>` for each group, then extra granted `topics`
    that match the grammar, then `all`. Entries that cannot form a valid topic
    are skipped, except `sub`, which must (ValueError otherwise).
    """
    own = user_topic(str(claims.get("sub", "")))
    if not is_valid_topic(own):
        raise ValueError("the token's sub cannot form a user topic (allowed: A-Z a-z 0-9 _ . @ : + -, 1..128)")
    groups = [group_topic(g) for g in _strings(claims.get("groups"))]
    granted = _strings(claims.get("topics"))
    return _unique(t for t in [own, *groups, *granted, BROADCAST_TOPIC] if is_valid_topic(t))
