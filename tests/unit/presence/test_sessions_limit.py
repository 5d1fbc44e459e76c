"""max_sessions_per_user: the next $connect is refused, with or without presence, and leaves nothing behind."""

from __future__ import annotations

import threading

import pytest
from realtime.connections.store import META_SK, ConnectionStore, TooManySessions
from realtime.core.auth import Principal
from realtime.presence.sessions import SessionTracker
from realtime.presence.store import PresenceStore

from .world import PRESENCE_TABLE, create_presence_table

LIMIT = 3
ANN = Principal(user_id="ann", groups=(), topics=("user:ann", "all"))


@pytest.fixture(params=["presence", "no presence"])
def tracker(request, dynamodb, connections_table):
    connections = ConnectionStore(connections_table)
    if request.param == "no presence":
        return SessionTracker(connections)
    create_presence_table(dynamodb)
    return SessionTracker(connections, PresenceStore(dynamodb, PRESENCE_TABLE))


def open_session(tracker, connection_id, principal=ANN):
    return tracker.open(connection_id, principal, 7200, LIMIT)


def records(connections_table):
    return sorted(i["pk"] for i in connections_table.scan()["Items"] if i["sk"] == META_SK)


def test_the_connect_past_the_limit_is_refused_and_leaves_nothing(tracker, connections_table):
    for n in range(LIMIT):
        open_session(tracker, f"c{n}")

    with pytest.raises(TooManySessions) as refused:
        open_session(tracker, "one-too-many")

    assert refused.value.sessions == {"c0", "c1", "c2"}
    assert records(connections_table) == ["conn#c0", "conn#c1", "conn#c2"]
    assert not [i for i in connections_table.scan()["Items"] if "one-too-many" in i["sk"] + i["pk"]]


def test_a_closed_session_frees_its_place(tracker):
    for n in range(LIMIT):
        open_session(tracker, f"c{n}")

    tracker.close("c1")

    open_session(tracker, "c3")


def test_other_users_and_the_same_connection_again_are_not_counted(tracker):
    for n in range(LIMIT):
        open_session(tracker, f"c{n}")

    open_session(tracker, "b0", Principal(user_id="bob", groups=(), topics=("user:bob", "all")))
    open_session(tracker, "c2")  # a retried $connect of a counted connection


def test_a_session_whose_record_is_gone_does_not_hold_a_place(tracker, connections_table):
    for n in range(LIMIT):
        open_session(tracker, f"c{n}")
    # Its record expired (TTL) without a $disconnect: the session is still counted.
    connections_table.delete_item(Key={"pk": "conn#c0", "sk": META_SK})

    open_session(tracker, "c3")

    with pytest.raises(TooManySessions) as refused:
        open_session(tracker, "c4")
    assert refused.value.sessions == {"c1", "c2", "c3"}


def test_concurrent_connects_never_exceed_the_limit(tracker, connections_table, atomic_requests):
    results: dict[str, str] = {}

    def connect(connection_id: str) -> None:
        try:
            open_session(tracker, connection_id)
            results[connection_id] = "open"
        except TooManySessions:
            results[connection_id] = "refused"

    threads = [threading.Thread(target=connect, args=(f"c{n}",)) for n in range(LIMIT + 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results.values()) == ["open"] * LIMIT + ["refused"] * 3
    assert len(records(connections_table)) == LIMIT
