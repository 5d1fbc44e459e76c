"""Subscription rows of a large topic spread over several keys; readers gather them; old rows stay readable."""

import pytest
from realtime.connections.layout import (
    LAYOUT_KEY,
    ONE_KEY_EACH,
    StoredLayout,
    SubscriptionLayout,
    shard_of,
    subscription_key,
)
from realtime.connections.store import ConnectionStore
from realtime.core.errors import ConfigError

NOW = 1_800_000_000
LAYOUT = SubscriptionLayout({"all": 8, "group:*": 2, "group:tiny": 1})


def rows_by_key(table, connection_id):
    items = table.scan()["Items"]
    return sorted(item["pk"] for item in items if item["sk"] == f"conn#{connection_id}")


def gathered(store, topic, page_size=7):
    """Every subscriber of a topic, every shard read page by page, as the page chains read them."""
    found = []
    for shard in range(store.shard_count(topic)):
        start = None
        while True:
            page = store.subscriber_page(topic, page_size, start, shard=shard)
            found += [subscriber.connection_id for subscriber in page.subscribers]
            if page.next_key is None:
                break
            start = page.next_key
    return found


def test_a_topic_gets_its_own_count_else_its_kinds_else_one_key():
    assert [LAYOUT.count(t) for t in ("all", "group:ops", "group:tiny", "user:1", "presence:1")] == [8, 2, 1, 1, 1]
    assert ONE_KEY_EACH.count("all") == 1


def test_shard_zero_is_the_key_every_topic_had_before_shards():
    assert [subscription_key("all", s) for s in range(3)] == ["topic#all", "topic#all#1", "topic#all#2"]
    assert shard_of("anything", 1) == 0


def test_connections_spread_evenly_over_the_keys():
    counts = [0] * 16
    for n in range(16_000):
        counts[shard_of(f"Kx{n:07d}=", 16)] += 1
    assert max(counts) < 1.1 * 1000
    assert min(counts) > 0.9 * 1000


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"room:1": 2}', "neither a topic nor"),
        ('{"all": 0}', "from 1 to 64"),
        ('{"all": 65}', "from 1 to 64"),
        ('{"all": true}', "from 1 to 64"),
        ('{"all": 2.5}', "from 1 to 64"),
    ],
)
def test_a_malformed_layout_is_refused_naming_what_is_wrong(raw, message):
    with pytest.raises(ConfigError, match=message):
        SubscriptionLayout.from_json(raw)


def test_a_connection_goes_to_one_shard_of_each_spread_topic_and_its_record_says_how_many(connections_table):
    store = ConnectionStore(connections_table, clock=lambda: NOW, layout=LAYOUT)

    store.add("c1", "42", ["user:42", "group:ops", "all"], ttl_seconds=60)

    record = store.get("c1")
    assert record["topicShards"] == {"group:ops": 2, "all": 8}  # one-key topics are left out
    assert rows_by_key(connections_table, "c1") == sorted(
        ["topic#user:42", subscription_key("group:ops", shard_of("c1", 2)), subscription_key("all", shard_of("c1", 8))]
    )


def test_readers_gather_every_shard_and_each_connection_once(connections_table):
    store = ConnectionStore(connections_table, clock=lambda: NOW, layout=LAYOUT)
    ids = [f"c{n:03d}" for n in range(100)]
    for connection_id in ids:
        store.add(connection_id, connection_id, ["all"], ttl_seconds=60)

    assert sorted(gathered(store, "all")) == ids
    # The first pages of all 8 keys, read in parallel, hold about the limit in all.
    first = store.first_pages(["all", "user:1"], 16)
    assert sorted(first) == [("all", s) for s in range(8)] + [("user:1", 0)]
    assert all(len(page.subscribers) <= 2 for (topic, _), page in first.items() if topic == "all")


def test_rows_written_before_shards_are_read_as_shard_zero_and_removed_where_they_are(connections_table):
    before = ConnectionStore(connections_table, clock=lambda: NOW)  # the previous version: one key each
    before.add("old", "1", ["group:ops", "all"], ttl_seconds=60)
    after = ConnectionStore(connections_table, clock=lambda: NOW, layout=LAYOUT)
    after.add("new", "2", ["group:ops", "all"], ttl_seconds=60)

    assert sorted(gathered(after, "all")) == ["new", "old"]
    assert sorted(gathered(after, "group:ops")) == ["new", "old"]

    assert after.remove("old")
    assert after.remove("new")
    assert connections_table.scan()["Items"] == []


def test_a_record_is_removed_by_the_counts_it_was_written_with_not_todays(connections_table):
    ConnectionStore(connections_table, clock=lambda: NOW, layout=SubscriptionLayout({"all": 4})).add(
        "c1", "1", ["all"], ttl_seconds=60
    )
    today = ConnectionStore(connections_table, clock=lambda: NOW, layout=SubscriptionLayout({"all": 16}))

    assert today.remove("c1")
    assert connections_table.scan()["Items"] == []


def test_the_writer_keeps_one_key_each_until_the_layout_item_is_written_then_rereads_it(connections_table):
    clock = [0.0]
    layout = StoredLayout(connections_table, clock=lambda: clock[0], refresh_seconds=60)
    store = ConnectionStore(connections_table, clock=lambda: NOW, layout=layout)

    store.add("before", "1", ["all"], ttl_seconds=60)
    connections_table.put_item(Item={**LAYOUT_KEY, "shards": '{"all": 8}'})
    clock[0] = 59.0
    store.add("cached", "2", ["all"], ttl_seconds=60)  # read less than a minute ago: still one key
    clock[0] = 60.0
    store.add("after", "3", ["all"], ttl_seconds=60)

    assert rows_by_key(connections_table, "before") == rows_by_key(connections_table, "cached") == ["topic#all"]
    assert rows_by_key(connections_table, "after") == [subscription_key("all", shard_of("after", 8))]
    assert store.get("after")["topicShards"] == {"all": 8}
