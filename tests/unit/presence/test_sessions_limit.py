"""max_sessions_per_user: the next $connect is refused, with or without presence, and writes nothing."""

from __future__ import annotations

import threading

import pytest
from realtime.connections.store import META_SK, SESSIONS_SK, ConnectionStore, TooManySessions, user_pk
from realtime.core.auth import Principal
from realtime.presence.sessions import CONNECTING_WINDOW_SECONDS, SessionTracker
from realtime.presence.store import PresenceStore

from ..dynamodb_requests import dynamodb_requests
from .world import PRESENCE_TABLE, Clock, create_presence_table

LIMIT = 3
ANN = Principal(user_id="ann", groups=(), topics=("user:ann", "all"))
HUNDRED_TOPICS = Principal(
    user_id="ann",
    groups=tuple(f"g{n}" for n in range(98)),
    topics=("user:ann", *(f"group:g{n}" for n in range(98)), "all"),
)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["presence", "no presence"])
def tracker(request, dynamodb, connections_table, clock):
    connections = ConnectionStore(connections_table, clock=clock)
    if request.param == "no presence":
        return SessionTracker(connections, clock=clock)
    create_presence_table(dynamodb)
    return SessionTracker(connections, PresenceStore(dynamodb, PRESENCE_TABLE, clock=clock), clock=clock)


def every_item(dynamodb):
    """Every item of every table, to compare before and after."""
    return {table.name: sorted(map(repr, table.scan(ConsistentRead=True)["Items"])) for table in dynamodb.tables.all()}


def claim_only(tracker, connection_id, principal=ANN):
    """What a $connect has done when it has counted its session and not yet written its record."""
    tracker._count(connection_id, principal, 7200, LIMIT)


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


def test_a_session_whose_record_is_gone_does_not_hold_a_place(tracker, connections_table, clock):
    for n in range(LIMIT):
        open_session(tracker, f"c{n}")
    clock.advance(CONNECTING_WINDOW_SECONDS)
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


@pytest.mark.parametrize("principal", [ANN, HUNDRED_TOPICS], ids=["2 topics", "100 topics"])
def test_a_refused_connect_writes_no_item(tracker, dynamodb, clock, principal):
    """Issue 20, finding 3: a connect past the limit used to write its record and subscriptions, then delete them."""
    for n in range(LIMIT):
        open_session(tracker, f"c{n}", principal)
    clock.advance(CONNECTING_WINDOW_SECONDS)  # the sessions' records are looked for, and found
    before = every_item(dynamodb)

    with dynamodb_requests() as requests, pytest.raises(TooManySessions):
        open_session(tracker, "one-too-many", principal)

    assert requests.item_writes == 0, requests.summary()
    assert requests.applied_writes == 0, requests.summary()
    assert every_item(dynamodb) == before


def test_an_accepted_connect_writes_its_session_record_and_subscriptions(tracker, clock):
    with dynamodb_requests() as requests:
        open_session(tracker, "c0", HUNDRED_TOPICS)

    # The session, the connection record, one subscription per topic (in 4 BatchWriteItem of 25).
    assert requests.item_writes == 1 + 1 + 100, requests.summary()
    assert requests.requests["BatchWriteItem"] == 4


def test_a_session_still_connecting_keeps_its_place(tracker, connections_table, clock):
    """The session of a $connect that has not written its record yet is not taken for an orphan."""
    for n in range(LIMIT - 1):
        open_session(tracker, f"c{n}")
    clock.advance(CONNECTING_WINDOW_SECONDS)
    claim_only(tracker, "connecting")
    clock.advance(CONNECTING_WINDOW_SECONDS - 1)

    with pytest.raises(TooManySessions):
        open_session(tracker, "c9")

    # Its $connect carries on: the record is written, and the session still counts.
    tracker._connections.add("connecting", "ann", ANN.topics, 7200)
    with pytest.raises(TooManySessions) as refused:
        open_session(tracker, "c10")
    assert refused.value.sessions == {"c0", "c1", "connecting"}


def test_a_session_left_without_record_by_a_crashed_connect_is_freed_after_the_window(tracker, clock):
    for n in range(LIMIT - 1):
        open_session(tracker, f"c{n}")
    claim_only(tracker, "crashed")  # its $connect died before writing the record
    clock.advance(CONNECTING_WINDOW_SECONDS)

    open_session(tracker, "c3")


def forget_claim_times(dynamodb, connections_table):
    """Make the user's sessions look counted by the previous version, which kept no claim times."""
    for table, key in [
        (connections_table, {"pk": user_pk("ann"), "sk": SESSIONS_SK}),
        (dynamodb.Table(PRESENCE_TABLE), {"userId": "ann"}),
    ]:
        item = (
            table.get_item(Key=key).get("Item")
            if table.name in dynamodb.meta.client.list_tables()["TableNames"]
            else None
        )
        if item is None:
            continue
        claims = {f"#c{n}": name for n, name in enumerate(name for name in item if name.startswith("claimed:"))}
        assert len(claims) == LIMIT
        table.update_item(Key=key, UpdateExpression="REMOVE " + ", ".join(claims), ExpressionAttributeNames=claims)


def test_a_session_counted_by_the_previous_version_without_record_is_freed(tracker, dynamodb, connections_table):
    """Upgrade: a session counted before claims carried their time, whose record is gone, is an orphan at once."""
    for n in range(LIMIT):
        open_session(tracker, f"c{n}")
    forget_claim_times(dynamodb, connections_table)
    connections_table.delete_item(Key={"pk": "conn#c0", "sk": META_SK})

    open_session(tracker, "c3")


def test_a_connect_whose_record_cannot_be_written_gives_its_place_back(tracker, connections_table, monkeypatch):
    for n in range(LIMIT - 1):
        open_session(tracker, f"c{n}")

    def failing_add(*_args, **_kwargs):
        raise RuntimeError("DynamoDB is unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(tracker._connections, "add", failing_add)
        with pytest.raises(RuntimeError):
            open_session(tracker, "failed")

    open_session(tracker, "c2")  # the failed connect holds no place
    with pytest.raises(TooManySessions) as refused:
        open_session(tracker, "c3")
    assert refused.value.sessions == {"c0", "c1", "c2"}
