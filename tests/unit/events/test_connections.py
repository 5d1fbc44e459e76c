import pytest
from realtime.events.connections import ConnectionStore

NOW = 1_800_000_000


@pytest.fixture
def store(connections_table):
    return ConnectionStore(connections_table, clock=lambda: NOW)


def test_add_writes_the_connection_and_one_subscription_per_topic(store, connections_table):
    store.add("c1", "42", ["user:42", "group:ops", "all"], ttl_seconds=7200)

    meta = connections_table.get_item(Key={"pk": "conn#c1", "sk": "meta"})["Item"]
    assert meta["connectionId"] == "c1"
    assert meta["userId"] == "42"
    assert meta["topics"] == ["user:42", "group:ops", "all"]
    assert meta["expiresAt"] == NOW + 7200
    assert meta["connectedAt"] == meta["lastSeen"] == "2027-01-15T08:00:00.000Z"
    subscription = connections_table.get_item(Key={"pk": "topic#group:ops", "sk": "conn#c1"})["Item"]
    assert subscription == {
        "pk": "topic#group:ops",
        "sk": "conn#c1",
        "connectionId": "c1",
        "userId": "42",
        "expiresAt": NOW + 7200,
    }


def test_subscribers_of_a_topic(store):
    store.add("c1", "42", ["user:42", "all"], ttl_seconds=60)
    store.add("c2", "42", ["user:42", "all"], ttl_seconds=60)
    store.add("c3", "7", ["user:7", "all"], ttl_seconds=60)

    assert sorted(store.subscribers("user:42")) == ["c1", "c2"]
    assert sorted(store.subscribers("all")) == ["c1", "c2", "c3"]
    assert list(store.subscribers("group:nobody")) == []


def test_subscribers_skip_expired_records(connections_table):
    ConnectionStore(connections_table, clock=lambda: NOW - 120).add("old", "1", ["all"], ttl_seconds=60)
    store = ConnectionStore(connections_table, clock=lambda: NOW)
    store.add("new", "2", ["all"], ttl_seconds=60)

    assert list(store.subscribers("all")) == ["new"]


def test_subscribers_page_through_many_connections(store):
    # Large items make a Query stop at DynamoDB's 1 MB page size.
    for n in range(60):
        store.add(f"conn-{n:03d}", "u" * 30_000, ["all"], ttl_seconds=60)

    assert len(list(store.subscribers("all"))) == 60


def test_remove_deletes_the_connection_and_its_subscriptions(store, connections_table):
    store.add("c1", "42", ["user:42", "all"], ttl_seconds=60)
    store.add("c2", "42", ["user:42", "all"], ttl_seconds=60)

    assert store.remove("c1") is True

    assert list(store.subscribers("user:42")) == ["c2"]
    assert store.get("c1") is None
    assert connections_table.scan()["Count"] == 3  # c2's meta and two subscriptions


def test_remove_is_idempotent(store):
    store.add("c1", "42", ["user:42"], ttl_seconds=60)

    assert store.remove("c1") is True
    assert store.remove("c1") is False
    assert store.remove("never-existed") is False


def test_touch_updates_last_seen_only_for_known_connections(connections_table):
    ConnectionStore(connections_table, clock=lambda: NOW).add("c1", "42", ["all"], ttl_seconds=60)
    later = ConnectionStore(connections_table, clock=lambda: NOW + 30)

    assert later.touch("c1") is True
    assert later.get("c1")["lastSeen"] == "2027-01-15T08:00:30.000Z"
    assert later.touch("gone") is False
    assert later.get("gone") is None  # no stray item created
