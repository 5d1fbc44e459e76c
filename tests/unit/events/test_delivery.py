import json
from collections import Counter
from unittest.mock import ANY

import boto3
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from realtime.connections.layout import ONE_KEY_EACH, SubscriptionLayout
from realtime.connections.posting import TOKEN_EXPIRED_FRAME, Poster
from realtime.connections.store import ConnectionStore, Subscriber
from realtime.core.contract import QUEUE_MESSAGE_BYTES
from realtime.core.encoding import compact_json, timestamp_at
from realtime.events.delivery import (
    DeliveryQueue,
    EventDelivery,
    InvalidJob,
    PageJob,
    RetryJob,
    Target,
    job_from_message,
    owned_targets,
    retry_jobs,
)
from realtime.events.models import EventRef, Publication

from ..fake_dynamodb import FakeDynamoDB
from ..support import REGION, FakeManagementClient, client_error

NOW = 1_800_000_000
TOPICS = ["all", "group:a", "group:b", "user:1", "user:2"]


def publication(seqs, data=None, event_id="e1"):
    return Publication(
        id=event_id,
        type="t",
        data=data or {"n": 1},
        occurred_at="2026-01-01T00:00:00.000Z",
        published_at="2026-01-01T00:00:01.000Z",
        seqs=seqs,
    )


class RecordingQueue:
    """The fanout queue in memory: jobs go through JSON, as on SQS; `refuse` fails sends of those event ids."""

    def __init__(self):
        self.jobs = []
        self.refuse = set()

    def send(self, jobs):
        refused = [index for index, job in enumerate(jobs) if job.event.id in self.refuse]
        self.jobs += [
            json.loads(compact_json(job.to_message())) for index, job in enumerate(jobs) if index not in refused
        ]
        return refused


def fake_connections(page_size=1000, layout=ONE_KEY_EACH):
    db = FakeDynamoDB(page_size=page_size)
    return ConnectionStore(db.create_table("connections", "pk", "sk"), clock=lambda: NOW, layout=layout)


class StoredEvents:
    """The events table as the fanout workers read it back: what process-events stored (an EventStore in
    production, tested in test_store.py); a job that refers to anything else finds nothing."""

    def __init__(self):
        self.stored = {}

    def add(self, publications):
        self.stored.update({(p.id, tuple(sorted(p.seqs.items()))): p for p in publications})

    def publication(self, ref):
        return self.stored.get((ref.id, tuple(sorted(ref.seqs.items()))))


class Stage:
    """process-events (first page inline) and the fanout workers (a job each), as the module builds them."""

    def __init__(self, connections, client, queue, max_attempts, concurrency, clock):
        poster = Poster(client, concurrency, on_gone=connections.remove)
        self.events = StoredEvents()
        self._delivery = lambda page_size, events: EventDelivery(
            connections=connections,
            events=events,
            poster=poster,
            queue=queue,
            max_attempts=max_attempts,
            page_size=page_size,
            clock=clock,
        )

    def deliver_stored(self, publications, first_page):
        self.events.add(publications)
        return self._delivery(first_page, None).deliver_stored(publications)

    def run_job(self, job, page_size):
        """A worker reads the job from its SQS message body, as the fanout function does."""
        return self._delivery(page_size, self.events).run(job_from_message(json.dumps(job)))


def fanout(connections, client, queue, max_attempts=3, concurrency=4, clock=lambda: NOW):
    return Stage(connections, client, queue, max_attempts, concurrency, clock)


def frames_by_connection(client):
    received = {}
    for connection_id, data in client.posts:
        received.setdefault(connection_id, []).append(json.loads(data))
    return received


# --- who posts to a connection -------------------------------------------------------------------


def test_a_connection_is_posted_from_its_first_shared_topic_only_with_the_seqs_of_all():
    event = publication({"group:a": 4, "user:1": 9, "all": 2})
    subscriber = Subscriber("c1", ("user:1", "group:a", "presence:7"))

    assert owned_targets(event, "group:a", [subscriber]) == [Target("c1", ("group:a", "user:1"))]
    assert owned_targets(event, "user:1", [subscriber]) == []
    assert owned_targets(event, "all", [Subscriber("c2", ("all", "user:2"))]) == [Target("c2", ("all",))]


def test_a_subscription_written_before_topics_were_kept_counts_its_own_topic_only():
    event = publication({"group:a": 4, "user:1": 9})

    assert owned_targets(event, "user:1", [Subscriber("old", None)]) == [Target("old", ("user:1",))]


connection_sets = st.dictionaries(
    st.sampled_from([f"c{n}" for n in range(12)]),
    st.tuples(st.sets(st.sampled_from(TOPICS), min_size=1), st.booleans()),  # its topics; an old item?
    max_size=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    connections=connection_sets,
    audience=st.sets(st.sampled_from(TOPICS), min_size=1),
    threshold=st.integers(1, 6),
    page_size=st.integers(1, 6),
    data=st.data(),
)
def test_every_connection_gets_one_frame_per_event_however_the_pages_fall(
    connections, audience, threshold, page_size, data
):
    store = fake_connections(layout=SubscriptionLayout({"all": 3, "group:*": 2}))  # and however the keys
    for connection_id, (topics, old) in connections.items():
        store.add(connection_id, "u", sorted(topics), ttl_seconds=60)
        if old:  # written before subscriptions kept the topic list
            for item in store._table.items.values():
                if item["connectionId"] == connection_id and item["sk"] != "meta":
                    del item["topics"]
    client, queue = FakeManagementClient(), RecordingQueue()
    delivery = fanout(store, client, queue)
    event = publication({topic: n + 1 for n, topic in enumerate(sorted(audience))})

    delivery.deliver_stored([event], first_page=threshold)
    while queue.jobs:  # fan-out workers take the jobs in any order
        job = queue.jobs.pop(data.draw(st.integers(0, len(queue.jobs) - 1)))
        delivery.run_job(job, page_size)

    expected = Counter()
    for connection_id, (topics, old) in connections.items():
        reached = sorted(topics & audience)
        for seqs in [[topic] for topic in reached] if old else [reached] if reached else []:
            expected[(connection_id, json.dumps({t: event.seqs[t] for t in seqs}))] += 1
    posted = Counter((frame_to, json.dumps(json.loads(data)["seqs"])) for frame_to, data in client.posts)
    assert posted == expected


# --- pages -------------------------------------------------------------------------------------


def test_a_small_audience_is_posted_inline_and_a_large_one_in_pages_read_ahead():
    store = fake_connections()
    for n in range(7):
        store.add(f"c{n}", f"u{n}", ["all"], ttl_seconds=60)
    store.add("mine", "u1", ["user:1", "all"], ttl_seconds=60)
    client, queue = FakeManagementClient(), RecordingQueue()
    delivery = fanout(store, client, queue)
    small, big = publication({"user:1": 3}, event_id="small"), publication({"all": 8}, event_id="big")

    report = delivery.deliver_stored([small, big], first_page=3)

    assert report.pages_queued == 1
    assert [(job["event"]["id"], job["topic"], job["attempt"]) for job in queue.jobs] == [("big", "all", 0)]
    assert sorted(frames_by_connection(client)) == ["c0", "c1", "c2", "mine"]
    job = queue.jobs.pop()
    queued_before_posting = []
    client.on_post = lambda: queued_before_posting.append(len(queue.jobs))

    delivery.run_job(job, page_size=2)

    assert queued_before_posting[0] == 1  # the next page's job went out before this page's first post
    while queue.jobs:
        delivery.run_job(queue.jobs.pop(), page_size=2)
    received = frames_by_connection(client)
    assert sorted(received) == sorted([f"c{n}" for n in range(7)] + ["mine"])
    assert all(len(frames) == 1 for connection_id, frames in received.items() if connection_id != "mine")
    assert [frame["id"] for frame in received["mine"]] == ["small", "big"]


def test_an_event_whose_page_job_was_not_queued_is_not_posted_and_is_reported():
    store = fake_connections()
    for n in range(3):
        store.add(f"c{n}", f"u{n}", ["all"], ttl_seconds=60)
    client, queue = FakeManagementClient(), RecordingQueue()
    queue.refuse.add("big")

    report = fanout(store, client, queue).deliver_stored([publication({"all": 1}, event_id="big")], first_page=2)

    assert report.unqueued == {"big"}
    assert client.posts == []


# --- retries -------------------------------------------------------------------------------------


def test_failed_posts_are_retried_alone_then_given_up_after_max_attempts(caplog):
    store = fake_connections()
    for n in range(4):
        store.add(f"c{n}", f"u{n}", ["user:1", "all"], ttl_seconds=60)
    client = FakeManagementClient(
        failures={"c1": client_error("InternalServerError", 500), "c2": client_error("LimitExceededException", 429)}
    )
    queue = RecordingQueue()
    delivery = fanout(store, client, queue, max_attempts=3)

    first = delivery.deliver_stored([publication({"user:1": 5, "all": 6})], first_page=100)

    assert (first.sent, first.retried, first.throttled) == (2, 2, 1)
    (retry,) = queue.jobs
    assert retry["attempt"] == 1
    assert retry["targets"] == [
        {"connectionId": "c1", "topics": ["all", "user:1"]},
        {"connectionId": "c2", "topics": ["all", "user:1"]},
    ]
    del client.failures["c2"]  # the gateway recovers for c2 only
    reports = []
    while queue.jobs:
        reports.append(delivery.run_job(queue.jobs.pop(), page_size=100))

    assert [(r.sent, r.retried, r.abandoned) for r in reports] == [(1, 1, 0), (0, 0, 1)]
    assert sorted(frames_by_connection(client)) == ["c0", "c2", "c3"]
    assert all(len(frames) == 1 for frames in frames_by_connection(client).values())
    abandoned = [r for r in caplog.records if r.getMessage().startswith("Delivery abandoned")]
    assert [(r.connection_id, r.event_id, r.posts) for r in abandoned] == [("c1", "e1", 3)]


def test_refused_and_gone_connections_are_not_retried():
    store = fake_connections()
    store.add("forbidden", "u", ["all"], ttl_seconds=60)
    client = FakeManagementClient(failures={"forbidden": client_error("ForbiddenException", 403)})
    queue = RecordingQueue()

    report = fanout(store, client, queue).deliver_stored([publication({"all": 1})], first_page=10)

    assert (report.refused, report.retried, queue.jobs) == (1, 0, [])


# --- expired tokens ------------------------------------------------------------------------------


def test_a_connection_whose_token_expired_gets_no_event_but_a_last_frame_and_is_closed():
    store = fake_connections()
    store.add("valid", "u1", ["all"], ttl_seconds=7200, token_expires_at=NOW + 1)
    store.add("expired", "u2", ["all"], ttl_seconds=7200, token_expires_at=NOW)
    store.add("paged", "u3", ["all"], ttl_seconds=7200, token_expires_at=NOW - 60)
    store.add("unknown", "u4", ["all"], ttl_seconds=7200)  # written before tokens' expiry was kept
    client, queue = FakeManagementClient(), RecordingQueue()
    delivery = fanout(store, client, queue)

    reports = [delivery.deliver_stored([publication({"all": 1})], first_page=2)]
    while queue.jobs:
        reports.append(delivery.run_job(queue.jobs.pop(), page_size=1))

    received = frames_by_connection(client)
    assert [frame["id"] for frame in received["valid"]] == ["e1"]
    assert [frame["id"] for frame in received["unknown"]] == ["e1"]
    for closed in ("expired", "paged"):
        assert received[closed] == [json.loads(TOKEN_EXPIRED_FRAME)]
    assert received["expired"] == [{"type": "error", "error": {"code": "token_expired", "message": ANY}}]
    assert sorted(client.deleted) == ["expired", "paged"]
    assert sum(r.expired for r in reports) == 2
    assert sum(r.metrics()["ExpiredConnectionsClosed"] for r in reports) == 2


def test_a_retried_post_is_not_made_once_the_token_has_expired():
    store = fake_connections()
    store.add("c1", "u1", ["all"], ttl_seconds=7200, token_expires_at=NOW + 5)
    client, queue = FakeManagementClient(failures={"c1": client_error("InternalServerError", 500)}), RecordingQueue()
    now = [NOW]
    delivery = fanout(store, client, queue, clock=lambda: now[0])

    delivery.deliver_stored([publication({"all": 1})], first_page=10)
    (retry,) = queue.jobs
    assert retry["targets"] == [{"connectionId": "c1", "topics": ["all"], "tokenExpiresAt": NOW + 5}]
    del client.failures["c1"]
    now[0] = NOW + 10
    report = delivery.run_job(queue.jobs.pop(), page_size=10)

    assert (report.sent, report.expired, report.retried) == (0, 1, 0)
    assert frames_by_connection(client)["c1"] == [json.loads(TOKEN_EXPIRED_FRAME)]
    assert client.deleted == ["c1"]


def test_an_expired_connection_already_gone_is_removed():
    store = fake_connections()
    store.add("gone", "u1", ["all"], ttl_seconds=7200, token_expires_at=NOW - 100)
    client = FakeManagementClient(failures={"gone": client_error("GoneException", 410)})

    report = fanout(store, client, RecordingQueue()).deliver_stored([publication({"all": 1})], first_page=10)

    assert (report.expired, client.posts, client.deleted) == (0, [], [])
    assert store.get("gone") is None


def test_retry_jobs_fit_in_sqs_messages():
    event = publication({"all": 1}, data={"blob": "x" * 100_000})
    targets = [
        Target(f"connection-{n:06d}=", ("all", "group:some-rather-long-name")) for n in range(6000)
    ]  # jobs hold references: more targets to fill one

    jobs = retry_jobs(event, targets, attempt=2)

    assert len(jobs) > 1
    assert all(len(compact_json(job.to_message()).encode()) <= QUEUE_MESSAGE_BYTES for job in jobs)
    assert [t.connection_id for job in jobs for t in job.targets] == [t.connection_id for t in targets]
    assert {job.attempt for job in jobs} == {2}


@pytest.fixture
def fanout_queue(aws_mock):
    sqs = boto3.client("sqs", region_name=REGION)
    return sqs, sqs.create_queue(QueueName="fanout")["QueueUrl"]


def test_page_jobs_go_at_once_and_retry_jobs_after_a_jittered_backoff(fanout_queue):
    sqs, url = fanout_queue
    sent = []
    sqs.meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch", lambda params, **_: sent.extend(params["Entries"])
    )
    queue = DeliveryQueue(sqs, url, rand=lambda: 0.75)
    event = publication({"all": 1}).ref()
    target = (Target("c1", ("all",)),)

    failed = queue.send(
        [
            PageJob(event, "all", {"pk": "topic#all", "sk": "conn#c9"}),
            RetryJob(event, target, 1),
            RetryJob(event, target, 3),
            RetryJob(event, target, 12),
        ]
    )

    assert failed == []
    assert [entry.get("DelaySeconds") for entry in sent] == [None, 2, 6, 675]  # 0.75 x min(900, 2^attempt)
    assert json.loads(sent[0]["MessageBody"])["startKey"] == {"pk": "topic#all", "sk": "conn#c9"}


# --- jobs are references ------------------------------------------------------------------------------


def test_a_job_carries_a_reference_and_a_job_queued_before_references_still_runs_as_one():
    store = fake_connections()
    for n in range(2):
        store.add(f"c{n}", f"u{n}", ["all"], ttl_seconds=60)
    client, queue = FakeManagementClient(), RecordingQueue()
    stage = fanout(store, client, queue)
    stage.deliver_stored([publication({"all": 3}, data={"secret": "stored"})], first_page=1)

    (job,) = queue.jobs
    assert job == {
        "event": {"id": "e1", "seqs": {"all": 3}},
        "topic": "all",
        "startKey": {"pk": "topic#all", "sk": "conn#c0"},
        "attempt": 0,
    }
    # The format before: the whole event in the job. Its content is not what gets posted.
    forged = {"type": "t", "data": {"forged": True}, "occurredAt": "x", "publishedAt": "y"}
    stage.run_job({**job, "event": {**job["event"], **forged}}, page_size=10)

    assert [frame["data"] for frame in frames_by_connection(client)["c1"]] == [{"secret": "stored"}]


def test_a_job_that_refers_to_no_stored_event_posts_nothing():
    store = fake_connections()
    store.add("c0", "u0", ["all"], ttl_seconds=60)
    client, queue = FakeManagementClient(), RecordingQueue()
    stage = fanout(store, client, queue)
    stage.deliver_stored([publication({"all": 3})], first_page=10)
    client.posts.clear()

    for seqs in ({"all": 4}, {"all": 3, "user:1": 1}):
        with pytest.raises(InvalidJob, match="refers to no stored event"):
            stage.run_job({"event": {"id": "e1", "seqs": seqs}, "topic": "all", "startKey": None}, page_size=10)
    with pytest.raises(InvalidJob, match="refers to no stored event"):
        stage.run_job({"event": {"id": "other", "seqs": {"all": 3}}, "topic": "all", "startKey": None}, page_size=10)

    assert client.posts == []


def test_a_retry_job_posts_only_connections_that_hold_the_topics_with_their_stored_token_expiry():
    store = fake_connections()
    store.add("mine", "u1", ["user:1"], ttl_seconds=600, token_expires_at=NOW + 600)
    store.add("other", "u2", ["user:2"], ttl_seconds=600, token_expires_at=NOW + 600)
    store.add("expired", "u1", ["user:1"], ttl_seconds=600, token_expires_at=NOW - 5)
    client, queue = FakeManagementClient(), RecordingQueue()
    stage = fanout(store, client, queue)
    stage.events.add([publication({"user:1": 7}, data={"for": "u1"})])  # stored, not delivered yet
    forged = {
        "event": {"id": "e1", "seqs": {"user:1": 7}},
        "targets": [
            {"connectionId": "other", "topics": ["user:1"]},  # another user's connection
            {"connectionId": "expired", "topics": ["user:1"], "tokenExpiresAt": NOW + 999},  # a lie
            {"connectionId": "unknown", "topics": ["user:1"]},
            {"connectionId": "mine", "topics": ["user:1"]},
        ],
        "attempt": 1,
    }

    report = stage.run_job(forged, page_size=10)

    received = frames_by_connection(client)
    assert [frame["data"] for frame in received["mine"]] == [{"for": "u1"}]
    assert "other" not in received
    assert "unknown" not in received
    assert received["expired"] == [json.loads(TOKEN_EXPIRED_FRAME)]  # closed, as its record says
    assert (report.sent, report.rejected, report.expired) == (1, 2, 1)


def test_a_page_job_with_a_start_key_outside_its_topic_is_refused():
    body = {"event": {"id": "e1", "seqs": {"all": 1}}, "topic": "all", "attempt": 0}
    for start_key in ({"pk": "topic#user:2", "sk": "conn#c1"}, {"pk": "topic#all", "sk": "meta"}, "x"):
        with pytest.raises(InvalidJob, match="startKey"):
            job_from_message(json.dumps({**body, "startKey": start_key}))
    job = job_from_message(json.dumps({**body, "startKey": {"pk": "topic#all", "sk": "conn#c1"}}))
    assert job.start_key == {"pk": "topic#all", "sk": "conn#c1"}


def test_a_page_job_reads_its_own_shard_and_one_queued_before_shards_reads_shard_zero():
    body = {"event": {"id": "e1", "seqs": {"all": 1}}, "topic": "all", "attempt": 0}
    third = {"pk": "topic#all#3", "sk": "conn#c1"}

    assert job_from_message(json.dumps({**body, "startKey": third, "shard": 3})).shard == 3
    assert job_from_message(json.dumps({**body, "startKey": None})).shard == 0  # written by the previous version
    with pytest.raises(InvalidJob, match="startKey"):  # a key of another shard
        job_from_message(json.dumps({**body, "startKey": third, "shard": 2}))
    for shard in (-1, 64, True, "3"):
        with pytest.raises(InvalidJob, match="shard must be"):
            job_from_message(json.dumps({**body, "startKey": None, "shard": shard}))
    message = PageJob(EventRef("e1", {"all": 1}), "all", third, shard=3).to_message()
    assert job_from_message(json.dumps(message)) == PageJob(EventRef("e1", {"all": 1}), "all", third, shard=3)


# --- lag -------------------------------------------------------------------------------------------


def published(seconds_before_now, event_id="e1", seqs=None):
    """An event stored `seconds_before_now` before NOW (its publishedAt)."""
    return msgspec.structs.replace(
        publication(seqs or {"all": 1}, event_id=event_id), published_at=timestamp_at(NOW - seconds_before_now)
    )


def test_a_delivery_reports_its_lag_from_publishedat_to_its_posts_the_largest_of_its_events():
    store = fake_connections()
    store.add("c1", "u1", ["all", "user:1"], ttl_seconds=60)
    delivery = fanout(store, FakeManagementClient(), RecordingQueue())

    report = delivery.deliver_stored(
        [published(2.5, "older", {"all": 1}), published(0.25, "newer", {"user:1": 1})], first_page=10
    )

    assert report.lag_ms == 2500
    assert report.timings() == {"DeliveryLag": 2500}
    assert report.log_fields()["lag_ms"] == 2500


def test_a_page_job_reports_the_lag_since_its_event_was_stored_not_since_the_job():
    store = fake_connections()
    for n in range(3):
        store.add(f"c{n}", f"u{n}", ["all"], ttl_seconds=60)
    client, queue = FakeManagementClient(), RecordingQueue()
    now = [NOW]
    delivery = fanout(store, client, queue, clock=lambda: now[0])

    assert delivery.deliver_stored([published(1)], first_page=1).lag_ms == 1000
    now[0] = NOW + 4  # the job waited on the queue

    assert delivery.run_job(queue.jobs.pop(), page_size=10).timings() == {"DeliveryLag": 5000}


def test_no_lag_without_a_first_post_nor_for_retries_nor_from_an_unreadable_time():
    store = fake_connections()
    store.add("c1", "u1", ["all"], ttl_seconds=60)
    client = FakeManagementClient(failures={"c1": client_error("InternalServerError", 500)})
    queue = RecordingQueue()
    delivery = fanout(store, client, queue)

    nobody = delivery.deliver_stored([published(1, seqs={"user:9": 1})], first_page=10)
    unreadable = delivery.deliver_stored([msgspec.structs.replace(published(1), published_at="")], first_page=10)
    failed = delivery.deliver_stored([published(1, "e2")], first_page=10)
    del client.failures["c1"]
    retried = delivery.run_job(queue.jobs[-1], page_size=10)  # e2's retry: backed off by design, not late

    assert (nobody.lag_ms, nobody.timings()) == (None, {})
    assert unreadable.lag_ms is None
    assert failed.lag_ms == 1000
    assert (retried.sent, retried.lag_ms) == (1, None)
