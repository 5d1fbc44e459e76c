import pytest
from realtime.connections.store import ConnectionStore, Subscriber

from ..support import subscribed

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
        "topics": ["user:42", "group:ops", "all"],  # so a page of one topic tells which others reach it
        "expiresAt": NOW + 7200,
    }


def test_the_tokens_expiry_goes_on_every_item_and_comes_back_with_each_subscriber(store, connections_table):
    store.add("c1", "42", ["user:42", "all"], ttl_seconds=7200, token_expires_at=NOW + 600)
    store.add("c2", "7", ["all"], ttl_seconds=7200)

    meta = connections_table.get_item(Key={"pk": "conn#c1", "sk": "meta"})["Item"]
    assert (meta["tokenExpiresAt"], meta["expiresAt"]) == (NOW + 600, NOW + 7200)
    assert store.subscriber_page("all", 10).subscribers == [
        Subscriber("c1", ("user:42", "all"), NOW + 600),
        Subscriber("c2", ("all",), None),
    ]


def test_records_whose_token_expired_are_found_with_the_stale_ones(connections_table):
    earlier = ConnectionStore(connections_table, clock=lambda: NOW - 100)
    earlier.add("expired", "1", ["all"], ttl_seconds=7200, token_expires_at=NOW)
    earlier.add("valid", "2", ["all"], ttl_seconds=7200, token_expires_at=NOW + 1)
    earlier.add("unknown", "3", ["all"], ttl_seconds=7200)
    store = ConnectionStore(connections_table, clock=lambda: NOW)

    pages = store.not_seen_since(seen_before="2000-01-01", connected_before="2000-01-01", start_key=None, budget=1000)
    found = [record for page in pages for _, record in page.entries]

    assert found == [{"connectionId": "expired", "userId": "1", "tokenExpiresAt": NOW}]


def test_subscribers_of_a_topic(store):
    store.add("c1", "42", ["user:42", "all"], ttl_seconds=60)
    store.add("c2", "42", ["user:42", "all"], ttl_seconds=60)
    store.add("c3", "7", ["user:7", "all"], ttl_seconds=60)

    assert sorted(subscribed(store, "user:42")) == ["c1", "c2"]
    assert sorted(subscribed(store, "all")) == ["c1", "c2", "c3"]
    assert list(subscribed(store, "group:nobody")) == []


def test_subscribers_skip_expired_records(connections_table):
    ConnectionStore(connections_table, clock=lambda: NOW - 120).add("old", "1", ["all"], ttl_seconds=60)
    store = ConnectionStore(connections_table, clock=lambda: NOW)
    store.add("new", "2", ["all"], ttl_seconds=60)

    assert list(subscribed(store, "all")) == ["new"]


def test_subscribers_page_through_many_connections(store):
    # Large items make a Query stop at DynamoDB's 1 MB page size.
    for n in range(60):
        store.add(f"conn-{n:03d}", "u" * 30_000, ["all"], ttl_seconds=60)

    assert len(list(subscribed(store, "all"))) == 60


def test_a_subscriber_page_holds_at_most_the_limit_and_says_where_the_next_starts(store, connections_table):
    for n in range(5):
        store.add(f"c{n}", "u", ["user:u", "all"], ttl_seconds=60)
    connections_table.put_item(Item={"pk": "topic#all", "sk": "conn#old", "connectionId": "old", "expiresAt": NOW + 60})

    first = store.subscriber_page("all", 4)
    rest = store.subscriber_page("all", 4, first.next_key)

    assert first.subscribers == [Subscriber(f"c{n}", ("user:u", "all")) for n in range(4)]
    assert rest.subscribers == [Subscriber("c4", ("user:u", "all")), Subscriber("old", None)]
    assert rest.next_key is None


def test_remove_deletes_the_connection_and_its_subscriptions(store, connections_table):
    store.add("c1", "42", ["user:42", "all"], ttl_seconds=60)
    store.add("c2", "42", ["user:42", "all"], ttl_seconds=60)

    assert store.remove("c1") is True

    assert list(subscribed(store, "user:42")) == ["c2"]
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
