"""The topics a verified token subscribes to, and how topic names are built."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from realtime.core.contract import BROADCAST_TOPIC, is_topic


def user_topic(user_id: str) -> str:
    return f"user:{user_id}"


def group_topic(group: str) -> str:
    return f"group:{group}"


def presence_topic(user_id: str) -> str:
    return f"presence:{user_id}"


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
    if not is_topic(own):
        raise ValueError("the token's sub cannot form a user topic (allowed: A-Z a-z 0-9 _ . @ : | + -, 1..128)")
    groups = [group_topic(g) for g in _strings(claims.get("groups"))]
    granted = _strings(claims.get("topics"))
    return _unique(t for t in [own, *groups, *granted, BROADCAST_TOPIC] if is_topic(t))
