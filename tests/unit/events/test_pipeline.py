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
    # On the presence-events queue the reserved names are the module's, written the way it writes them.
    own = {**message, "type": "presence.offline", "id": "presence-alice-1", "data": {"userId": "alice", "version": 1}}
    assert pipeline.parse(json.dumps({"audience": ["presence:alice"], **own}), "m1", internal=True).event_id == (
        "presence-alice-1"
    )


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


# --- producer identity: one namespace per SenderId form (docs/design.md, "Producer identity") ---


@pytest.mark.parametrize(
    ("form", "sender_id", "namespace"),
    [
        ("IAM user", "AIDAJQABLZS4A3QDU576Q", "AIDAJQABLZS4A3QDU576Q"),
        ("assumed role session", "AROAJQABLZS4A3QDU576Q:orders-api", "AROAJQABLZS4A3QDU576Q"),
        ("role of an EC2 instance", "AROAJQABLZS4A3QDU576Q:i-0123456789abcdef0", "AROAJQABLZS4A3QDU576Q"),
        ("federated user", "123456789012:Bob", "123456789012/Bob"),
        ("account root", "123456789012", "123456789012"),
        ("AWS service delivering (SNS, EventBridge)", "AIDAIT2UOQQY3AUEKVGXU", "AIDAIT2UOQQY3AUEKVGXU"),
    ],
)
def test_each_sender_id_form_aws_documents_has_its_own_namespace(form, sender_id, namespace):
    assert producer_of(sender_id) == namespace, form
    assert ":" not in namespace  # the key's `from:<namespace>:<id>` reads one way only


def test_federated_users_are_neither_their_account_nor_each_other(pipeline, connections_table, client):
    ConnectionStore(connections_table).add("c1", "42", ["user:42"], ttl_seconds=60)
    body = '{"type": "order.updated", "id": "o-1", "data": {"userId": 42}}'
    # The root choosing the id "Bob:o-1" must not be federated user Bob's "o-1" either.
    root_body = '{"type": "order.updated", "id": "Bob:o-1", "data": {"userId": 42}}'

    report = pipeline.process(
        [
            pipeline.parse(body, "m1", producer=producer_of("123456789012:Bob")),
            pipeline.parse(body, "m2", producer=producer_of("123456789012:Alice")),
            pipeline.parse(body, "m3", producer=producer_of("123456789012")),
            pipeline.parse(root_body, "m4", producer=producer_of("123456789012")),
            pipeline.parse(body, "m5", producer=producer_of("123456789012:Bob")),  # Bob's retry: his event
        ]
    )

    assert [(s.seqs, s.created) for s in report.stored] == [
        ({"user:42": 1}, ["user:42"]),
        ({"user:42": 2}, ["user:42"]),
        ({"user:42": 3}, ["user:42"]),
        ({"user:42": 4}, ["user:42"]),
        ({"user:42": 1}, []),
    ]
    assert [frame["seq"] for frame in client.frames_for("c1")] == [1, 2, 3, 4]


def test_the_sessions_of_one_role_are_one_producer(pipeline):
    body = '{"type": "order.updated", "id": "o-1", "data": {"userId": 42}}'

    first = pipeline.parse(body, "m1", producer=producer_of("AROAJQABLZS4A3QDU576Q:sandbox-1"))
    retry = pipeline.parse(body, "m2", producer=producer_of("AROAJQABLZS4A3QDU576Q:sandbox-2"))

    assert first.key == retry.key


# --- the presence-events queue: records must still look like the module's own ------------------

OWN_PRESENCE = {
    "type": "presence.online",
    "id": "presence-alice-3",
    "data": {"userId": "alice", "version": 3, "lastSeen": "2026-01-01T00:00:00.000Z"},
    "audience": ["presence:alice", "group:ward-3"],
}


@pytest.mark.parametrize(
    ("change", "told"),
    [
        ({"type": "order.updated"}, "type starts with 'presence.'"),
        ({"id": None}, "id starts with 'presence-'"),
        ({"id": "order-1"}, "id starts with 'presence-'"),
        ({"audience": ["all"]}, "presence:<data.userId> and group topics only"),
        ({"audience": ["presence:alice", "all"]}, "presence:<data.userId> and group topics only"),
        ({"audience": ["presence:alice", "user:bob"]}, "presence:<data.userId> and group topics only"),
        ({"audience": ["presence:bob"]}, "presence:<data.userId> and group topics only"),
        ({"audience": None}, "presence:<data.userId> and group topics only"),
        ({"data": {"version": 3}}, "presence:<data.userId> and group topics only"),
    ],
)
def test_a_presence_events_record_that_does_not_look_internal_goes_to_the_dlq(pipeline, change, told):
    message = {key: value for key, value in {**OWN_PRESENCE, **change}.items() if value is not None}

    with pytest.raises(PermanentError) as refused:
        pipeline.parse(json.dumps(message), "m1", internal=True)

    assert refused.value.code == "not_internal"
    assert told in refused.value.reason


def test_the_module_s_own_presence_events_are_taken_with_their_id_as_key(pipeline):
    pending = pipeline.parse(json.dumps(OWN_PRESENCE), "m1", producer="AROAPRESENCE", internal=True)

    assert (pending.type, pending.topics, pending.key) == (
        "presence.online",
        ["presence:alice", "group:ward-3"],
        "presence-alice-3",
    )


# --- one id in one batch (docs/design.md, "One id in one batch") -----------------------------


def parts_of(audience, size, **message):
    body = {"type": "order.updated", "id": "order-1", "data": {"userId": 42}, **message}
    return [json.dumps({**body, "audience": audience[i : i + size]}) for i in range(0, len(audience), size)]


def test_an_event_split_across_messages_reaches_every_topic_once(pipeline, connections_table, client):
    connections = ConnectionStore(connections_table)
    topics = [f"user:{n}" for n in range(6)]
    for n, topic in enumerate(topics):
        connections.add(f"c{n}", str(n), [topic], ttl_seconds=60)
    connections.add("both", "ops", ["user:0", "user:5"], ttl_seconds=60)  # in the first part and in the last

    report = pipeline.process(
        [pipeline.parse(body, f"m{i}", producer="AROADB") for i, body in enumerate(parts_of(topics, 2))]
    )

    assert report.failed == {}
    assert [s.created for s in report.stored] == [["user:0", "user:1"], ["user:2", "user:3"], ["user:4", "user:5"]]
    for n, topic in enumerate(topics):
        (frame,) = client.frames_for(f"c{n}")
        assert (frame["id"], frame["seqs"]) == ("order-1", {topic: 1})
    (frame,) = client.frames_for("both")  # one frame, with every topic through which it reaches that connection
    assert frame["seqs"] == {"user:0": 1, "user:5": 1}


def test_parts_of_one_event_in_different_batches_are_each_delivered(pipeline, connections_table, client):
    connections = ConnectionStore(connections_table)
    connections.add("c0", "0", ["user:0"], ttl_seconds=60)
    connections.add("c1", "1", ["user:1"], ttl_seconds=60)
    connections.add("both", "ops", ["user:0", "user:1"], ttl_seconds=60)
    first, second = parts_of(["user:0", "user:1"], 1)

    pipeline.process([pipeline.parse(first, "m1", producer="AROADB")])
    pipeline.process([pipeline.parse(second, "m2", producer="AROADB")])

    assert [f["seqs"] for f in client.frames_for("c0")] == [{"user:0": 1}]
    assert [f["seqs"] for f in client.frames_for("c1")] == [{"user:1": 1}]
    # One frame per part: one id, so the clients hand the event on once and take both positions.
    assert [(f["id"], f["seqs"]) for f in client.frames_for("both")] == [
        ("order-1", {"user:0": 1}),
        ("order-1", {"user:1": 1}),
    ]


def test_a_producer_reusing_an_id_in_one_batch_for_other_content_gets_each_part_on_its_topics(
    pipeline, connections_table, events_table, client
):
    connections = ConnectionStore(connections_table)
    for n in range(3):
        connections.add(f"c{n}", str(n), [f"user:{n}"], ttl_seconds=60)
    first = json.dumps({"type": "a", "id": "x-1", "data": {"v": 1}, "audience": ["user:0", "user:1"]})
    other = json.dumps({"type": "a", "id": "x-1", "data": {"v": 2}, "audience": ["user:1", "user:2"]})

    report = pipeline.process([pipeline.parse(first, "m1", producer="P"), pipeline.parse(other, "m2", producer="P")])

    # user:1 keeps the first message's content (one id, one event per topic); user:2 gets the other's.
    assert [s.created for s in report.stored] == [["user:0", "user:1"], ["user:2"]]
    stored = {
        e.topic: json.loads(e.body)["data"]
        for e in EventStore(events_table).read_after(["user:0", "user:1", "user:2"], {}).events
    }
    assert stored == {"user:0": {"v": 1}, "user:1": {"v": 1}, "user:2": {"v": 2}}
    frames = {n: [f["data"] for f in client.frames_for(f"c{n}")] for n in range(3)}
    assert frames == {0: [{"v": 1}], 1: [{"v": 1}], 2: [{"v": 2}]}  # every frame says what its topic stored
