"""`GET /presence?users=a,b`: presence of the users the caller may watch.

A caller may watch itself, users sharing one of its groups (the groups of the
user's latest token, stored on its presence item) and users its token grants
`presence:<id>` for. Users it may not watch are left out of the answer, exactly
as if unknown: the answer never tells whether such a user exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from realtime.core.auth import Principal
from realtime.core.contract import is_user_id
from realtime.core.errors import BadRequest
from realtime.core.topics import presence_topic
from realtime.presence.store import PresenceState, PresenceStore

# A user id is at most 128 characters; room for a separator and a space after each.
USERS_CHARACTERS_PER_USER = 130


def requested_users(params: Mapping[str, str] | None, max_users: int) -> list[str]:
    """The `users` query parameter: comma-separated ids, duplicates dropped, at most `max_users`."""
    raw = (params or {}).get("users") or ""
    # Bounded before it is split: a list is built only from text that can hold at most max_users ids.
    if len(raw) > max_users * USERS_CHARACTERS_PER_USER:
        raise BadRequest(
            "too_many_users", f"users may be at most {max_users * USERS_CHARACTERS_PER_USER} characters long"
        )
    users = list(dict.fromkeys(u.strip() for u in raw.split(",") if u.strip()))
    if not users:
        raise BadRequest("invalid_users", "users must list at least one user id (users=a,b)")
    if len(users) > max_users:
        raise BadRequest("too_many_users", f"users may list at most {max_users} user ids, got {len(users)}")
    bad = [u for u in users if not is_user_id(u)]
    if bad:
        raise BadRequest("invalid_users", f"not a user id: {bad[0][:64]!r}")
    return users


def may_watch(principal: Principal, user_id: str, user_groups: tuple[str, ...]) -> bool:
    return (
        user_id == principal.user_id
        or presence_topic(user_id) in principal.topics
        or not set(principal.groups).isdisjoint(user_groups)
    )


class PresenceReader:
    def __init__(self, store: PresenceStore, max_users: int) -> None:
        self._store = store
        self.max_users = max_users

    def read(self, principal: Principal, users: list[str]) -> dict[str, Any]:
        states = self._store.get_many(users)
        visible: dict[str, Any] = {}
        for user_id in users:
            state = states.get(user_id) or PresenceState(user_id)
            if may_watch(principal, user_id, state.groups):
                visible[user_id] = state.public_view()
        return {"users": visible}
