import json
from datetime import UTC, datetime

import pytest
from realtime.connections.posting import Poster
from realtime.connections.store import ConnectionStore
from realtime.core.errors import PermanentError
from realtime.events.audience import EventTypeRules
from realtime.events.delivery import EventDelivery
from realtime.events.models import event_key
from realtime.events.pipeline import EventPipeline, idempotency_key, producer_of
from realtime.events.store import EventStore

from ..support import FakeManagementClient, client_error
from .test_delivery import RecordingQueue

NOW = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
SENT_AT = datetime(2026, 1, 1, 11, 59, 59, tzinfo=UTC)


@pytest.fixture
def client():
    return FakeManagementClient()


@pytest.fixture
def queue():
    return RecordingQueue()


@pytest.fixture
def pipeline(events_table, connections_table, client, queue):
    connections = ConnectionStore(connections_table)
    delivery = EventDelivery(
        connections=connections,
        poster=Poster(client, concurrency=4, on_gone=connections.remove),
        queue=queue,
        max_attempts=3,
        page_size=2,  # fanout_threshold
    )
    return EventPipeline(
        store=EventStore(events_table, 3600),
        delivery=delivery,
        rules=EventTypeRules.from_json('[{"type": "order.*", "audience": ["user:{data.userId}"]}]'),
        max_data_bytes=100,
        now=lambda: NOW,
    )


def test_id_defaults_to_the_sqs_message_id(pipeline):
    pending = pipeline.parse('{"type": "order.updated", "data": {"userId": 42}}', "msg-1", SENT_AT)

    assert pending.event_id == "msg-1"
    assert pending.topics == ["user:42"]
    assert pending.occurred_at == "2026-01-01T11:59:59.000Z"  # when it was sent, lacking occurredAt


def test_explicit_fields_win(pipeline):
    body = {
        "type": "order.updated",
        "data": {"userId": 42},
        "id": "order-42-v1",
        "audience": ["group:ops"],
        "occurredAt": "2026-01-01T10:00:00+02:00",
    }

    pending = pipeline.parse(json.dumps(body), "msg-1", SENT_AT)

    assert (pending.event_id, pending.topics, pending.occurred_at) == (
        "order-42-v1",
        ["group:ops"],
        "2026-01-01T08:00:00.000Z",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_json"),
        ('{"type": "a", "data": {"x": NaN}, "audience": ["all"]}', "invalid_json"),
        ('{"type": "a", "data": {"x": Infinity}, "audience": ["all"]}', "invalid_json"),
        ('["a"]', "invalid_message"),
        ('{"type": "A!", "data": {}}', "invalid_message"),
        ('{"type": "a", "data": {"s": "\\ud800"}, "audience": ["all"]}', "invalid_message"),
        ('{"type": "a", "data": {"x": "' + "y" * 100 + '"}, "audience": ["all"]}', "too_large"),
        ('{"type": "a", "data": {}}', "no_audience"),
        ('{"type": "order.created", "data": {}}', "audience_field_missing"),
        ('{"type": "a", "data": {"x": ' + "[" * 64 + "]" * 64 + '}, "audience": ["all"]}', "too_deep"),
        # Deeper than Python's JSON parser goes: a RecursionError, which SQS would retry until redrive.
        ('{"type": "a", "data": {"x": ' + "[" * 100_000 + "]" * 100_000 + '}, "audience": ["all"]}', "too_deep"),
        ("[" * 100_000 + "]" * 100_000, "too_deep"),
    ],
)
def test_messages_that_can_never_succeed(pipeline, body, code):
    with pytest.raises(PermanentError) as caught:
        pipeline.parse(body, "msg-1")

    assert caught.value.code == code
    assert caught.value.reason


def test_validation_reason_names_the_fields(pipeline):
    with pytest.raises(PermanentError) as caught:
        pipeline.parse('{"type": "Bad Type", "audience": []}', "msg-1")

    assert "type:" in caught.value.reason
    assert "data:" in caught.value.reason
    assert "audience:" in caught.value.reason


def test_size_limit_counts_utf8_bytes(pipeline):
    # {"t":"…"} is 8 bytes plus 2 per "é": 46 of them make exactly the 100-byte limit.
    fits = {"type": "a", "data": {"t": "é" * 46}, "audience": ["all"]}
    too_big = {"type": "a", "data": {"t": "é" * 47}, "audience": ["all"]}

    pipeline.parse(json.dumps(fits), "m1")
    with pytest.raises(PermanentError, match="too_large"):
        pipeline.parse(json.dumps(too_big), "m2")


def test_process_stores_then_posts_one_frame_per_connection_with_each_topics_seq(pipeline, connections_table, client):
    connections = ConnectionStore(connections_table)
    connections.add("c1", "42", ["user:42", "group:ops", "all"], ttl_seconds=60)
    connections.add("c2", "7", ["user:7", "group:ops"], ttl_seconds=60)
    pipeline.process([pipeline.parse('{"type": "a", "data": {}, "audience": ["group:ops"]}', "m0", SENT_AT)])
    pending = pipeline.parse(
        '{"type": "order.updated", "data": {"userId": 42}, "audience": ["user:42", "group:ops"]}', "m1", SENT_AT
    )

    report = pipeline.process([pending])

    assert [(s.seqs, s.created) for s in report.stored] == [({"user:42": 1, "group:ops": 2}, ["user:42", "group:ops"])]
    assert report.delivery.sent == 2
    frame = {
        "id": "m1",
        "key": event_key("m1"),
        "type": "order.updated",
        "topic": "group:ops",
        "seq": 2,
        "seqs": {"group:ops": 2, "user:42": 1},
        "data": {"userId": 42},
        "occurredAt": "2026-01-01T11:59:59.000Z",
        "publishedAt": "2026-01-01T12:00:00.250Z",
    }
    assert client.frames_for("c1")[-1] == frame
    assert client.frames_for("c2")[-1] == {**frame, "seqs": {"group:ops": 2}}


def test_http_items_are_the_frame_without_seqs_one_per_topic(pipeline, events_table):
    pending = pipeline.parse('{"type": "order.updated", "data": {"userId": 42}, "audience": ["user:42", "all"]}', "m1")

    pipeline.process([pending])

    stored = EventStore(events_table).read_after(["user:42", "all"], {}).events
    assert sorted(json.loads(e.body)["topic"] for e in stored) == ["all", "user:42"]
    assert all("seqs" not in json.loads(e.body) for e in stored)


def test_redelivered_message_is_not_stored_again_but_delivered_again(pipeline, connections_table, client):
    ConnectionStore(connections_table).add("c1", "42", ["user:42"], ttl_seconds=60)
    body = '{"type": "order.updated", "data": {"userId": 42}}'

    first = pipeline.process([pipeline.parse(body, "m1")])
    second = pipeline.process([pipeline.parse(body, "m1")])

    assert [s.created for s in first.stored] == [["user:42"]]
    assert [s.created for s in second.stored] == [[]]
    frames = client.frames_for("c1")
    assert len(frames) == 2
    assert frames[0] == frames[1]  # same (topic, seq) and publishedAt: the client drops the copy


def test_a_batch_queries_each_topic_once_and_posts_each_event(pipeline, connections_table, client, monkeypatch):
    connections = ConnectionStore(connections_table)
    connections.add("c1", "42", ["user:42"], ttl_seconds=60)
    queried = []
    page = connections.subscriber_page
    monkeypatch.setattr(connections, "subscriber_page", lambda topic, *a: queried.append(topic) or page(topic, *a))
    pipeline._delivery._connections = connections
    batch = [
        pipeline.parse(f'{{"type": "order.updated", "data": {{"userId": 42, "n": {n}}}}}', f"m{n}") for n in range(10)
    ]

    report = pipeline.process(batch)

    assert queried == ["user:42"]
    assert [s.seqs for s in report.stored] == [{"user:42": n + 1} for n in range(10)]
    assert [frame["seq"] for frame in client.frames_for("c1")] == list(range(1, 11))


def test_a_large_audience_goes_to_fan_out_jobs_after_the_first_page(pipeline, connections_table, client, queue):
    for n in range(3):
        ConnectionStore(connections_table).add(f"c{n}", f"u{n}", ["all"], ttl_seconds=60)

    report = pipeline.process([pipeline.parse('{"type": "a", "data": {}, "audience": ["all"]}', "m1")])

    assert report.delivery.sent == 2  # the threshold
    (job,) = queue.jobs
    assert (job["topic"], job["event"]["seqs"], job["attempt"]) == ("all", {"all": 1}, 0)


def test_delivery_failures_never_fail_the_event(pipeline, connections_table, client, queue):
    ConnectionStore(connections_table).add("c1", "42", ["user:42"], ttl_seconds=60)
    client.failures["c1"] = client_error("InternalServerError", 500)

    report = pipeline.process([pipeline.parse('{"type": "order.updated", "data": {"userId": 42}}', "m1")])

    assert report.failed == {}
    assert [job["targets"] for job in queue.jobs] == [[{"connectionId": "c1", "topics": ["user:42"]}]]


def test_events_on_a_topic_that_failed_are_reported_and_the_others_delivered(
    pipeline, client, connections_table, events_table, monkeypatch
):
    ConnectionStore(connections_table).add("c1", "42", ["user:42", "user:7"], ttl_seconds=60)
    transact = events_table.meta.client.transact_write_items

    def user_7_throttled(**request):
        if request["TransactItems"][0]["Update"]["Key"]["topic"] == "user:7":
            raise client_error("ThrottlingException", 400, "TransactWriteItems")
        return transact(**request)

    monkeypatch.setattr(events_table.meta.client, "transact_write_items", user_7_throttled)
    batch = [
        pipeline.parse('{"type": "order.updated", "data": {"userId": 42}}', "to-42"),
        pipeline.parse('{"type": "order.updated", "data": {"userId": 7}}', "to-7"),
        pipeline.parse('{"type": "a", "data": {}, "audience": ["user:42", "user:7"]}', "to-both"),
    ]

    report = pipeline.process(batch)

    assert sorted(report.failed) == [1, 2]
    assert [frame["id"] for frame in client.frames_for("c1")] == ["to-42"]


def test_occurred_at_defaults_to_published_at_without_any_timestamp(pipeline, connections_table, client):
    ConnectionStore(connections_table).add("c1", "1", ["user:1"], ttl_seconds=60)
    pending = pipeline.parse('{"type": "order.updated", "data": {"userId": 1}}', "m1", None)

    assert pending.occurred_at == ""
    pipeline.process([pending])
    (frame,) = client.frames_for("c1")
    assert frame["occurredAt"] == frame["publishedAt"] == "2026-01-01T12:00:00.250Z"


def test_two_messages_with_one_id_in_a_batch_are_one_event(pipeline, connections_table, client):
    ConnectionStore(connections_table).add("c1", "42", ["user:42"], ttl_seconds=60)
    body = '{"type": "order.updated", "id": "order-1", "data": {"userId": 42}}'

    report = pipeline.process([pipeline.parse(body, "m1"), pipeline.parse(body, "m2")])

    assert [(s.seqs, s.created) for s in report.stored] == [({"user:42": 1}, ["user:42"]), ({"user:42": 1}, [])]
    assert [frame["id"] for frame in client.frames_for("c1")] == ["order-1"]


# --- what belongs to the module, and to each producer --------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "presence.offline", "data": {"userId": "alice", "version": 1}}, "reserved_type"),
        ({"type": "presence.anything", "data": {}}, "reserved_type"),
        ({"type": "order.updated", "id": "presence-alice-1", "data": {"userId": "alice"}}, "reserved_id"),
    ],
)
def test_a_producer_cannot_use_the_presence_types_or_ids(pipeline, message, code):
    body = json.dumps({"audience": ["presence:alice"], **message})

    with pytest.raises(PermanentError) as refused:
        pipeline.parse(body, "m1", producer="AROAPRODUCER")

    assert refused.value.code == code
    assert "the module's own presence events" in refused.value.reason
    assert pipeline.parse(body, "m1", internal=True).event_id == message.get("id", "m1")


def test_types_and_ids_that_only_look_alike_are_the_producers(pipeline):
    body = '{"type": "presence", "id": "presence.alice", "data": {}, "audience": ["user:alice"]}'

    assert pipeline.parse(body, "m1", producer="AROAPRODUCER").event_id == "presence.alice"


def test_each_producer_has_its_own_ids(pipeline, connections_table, client):
    ConnectionStore(connections_table).add("c1", "42", ["user:42"], ttl_seconds=60)
    body = '{"type": "order.updated", "id": "order-1", "data": {"userId": 42}}'

    report = pipeline.process(
        [
            pipeline.parse(body, "m1", producer="AROASHOP"),
            pipeline.parse(body, "m2", producer="AROABILLING"),
            pipeline.parse(body, "m3", producer="AROASHOP"),  # the shop's retry: the same event
        ]
    )

    assert [(s.event.event_id, s.seqs, s.created) for s in report.stored] == [
        ("order-1", {"user:42": 1}, ["user:42"]),
        ("order-1", {"user:42": 2}, ["user:42"]),
        ("order-1", {"user:42": 1}, []),
    ]
    assert [frame["seq"] for frame in client.frames_for("c1")] == [1, 2]


def test_every_stored_event_has_its_own_key_the_same_on_each_topic_and_in_its_frame(
    pipeline, connections_table, client, events_table
):
    """Issue 20 finding 4: clients dedupe on `key`, so two producers' events that share an id differ in it."""
    ConnectionStore(connections_table).add("c1", "42", ["user:42", "all"], ttl_seconds=60)
    body = '{"type": "order.updated", "id": "o-17-shipped", "data": {"userId": 42}, "audience": ["user:42", "all"]}'

    pipeline.process(
        [pipeline.parse(body, "m1", producer="AROASHOP"), pipeline.parse(body, "m2", producer="AROABILLING")]
    )

    items = [json.loads(e.body) for e in EventStore(events_table).read_after(["user:42", "all"], {}).events]
    frames = client.frames_for("c1")
    keys = {event["key"] for event in items}
    assert len(keys) == 2
    assert {frame["key"] for frame in frames} == keys
    assert all(event["id"] == "o-17-shipped" for event in items + frames)
    shop = event_key(idempotency_key("o-17-shipped", "AROASHOP"))
    assert sorted(event["topic"] for event in items if event["key"] == shop) == ["all", "user:42"]
    # Opaque: neither the producer's IAM id nor the event id can be read from it.
    assert all("AROA" not in key and "o-17" not in key for key in keys)


def test_the_parts_of_an_event_split_across_messages_share_its_key(pipeline):
    """One producer, one id, several messages (db-changes splits audiences over 100 topics): one event, one key."""
    first = pipeline.parse('{"type": "a", "id": "big", "data": {}, "audience": ["user:1"]}', "m1", producer="AROAX")
    second = pipeline.parse('{"type": "a", "id": "big", "data": {}, "audience": ["user:2"]}', "m2", producer="AROAX")

    assert first.event_key == second.event_key
    stored = [json.loads(part.stored_body(topic, 1, "t")) for part, topic in ((first, "user:1"), (second, "user:2"))]
    assert [item["key"] for item in stored] == [first.event_key] * 2


@pytest.mark.parametrize(
    ("sender_id", "producer"),
    [
        ("AROAEXAMPLEROLEID:session-1", "AROAEXAMPLEROLEID"),  # an assumed role: its sessions are one producer
        ("AIDAEXAMPLEUSERID", "AIDAEXAMPLEUSERID"),  # an IAM user
        ("123456789012", "123456789012"),  # the account itself (and the local emulator, for everyone)
        (None, None),
        ("", None),
    ],
)
def test_the_producer_is_the_stable_part_of_the_sender_id(sender_id, producer):
    assert producer_of(sender_id) == producer
    assert idempotency_key("o-1", producer) == ("o-1" if producer is None else f"from:{producer}:o-1")
