import json
import time

import pytest
from realtime.connections.layout import SubscriptionLayout, shard_of
from realtime.connections.store import ConnectionStore
from realtime.handlers import fanout, process_events

from ..support import client_error, sqs_record


@pytest.fixture
def audience(events_table, connections_table, management_client, queues, monkeypatch):
    monkeypatch.setenv("FANOUT_THRESHOLD", "2")
    monkeypatch.setenv("FANOUT_PAGE_SIZE", "2")
    monkeypatch.setenv("DELIVERY_MAX_ATTEMPTS", "2")
    # Connected a minute ago: past the window in which the gateway answers 410 for a socket still connecting.
    connections = ConnectionStore(connections_table, clock=lambda: time.time() - 60)
    ids = [f"c{n}" for n in range(5)]
    for connection_id in ids:
        connections.add(connection_id, connection_id, [f"user:{connection_id}", "all"], ttl_seconds=600)
    return ids


def run_jobs(queues, lambda_context, done=0):
    """Hand every job queued since `done` to the fanout function, as the mapping would; their results."""
    results = []
    while done < len(queues.sent_jobs):
        entry = queues.sent_jobs[done]
        done += 1
        results.append(fanout.handler({"Records": [sqs_record(entry["MessageBody"], f"job-{done}")]}, lambda_context))
    return results


def test_a_broadcast_beyond_the_threshold_is_posted_page_by_page_once_each(
    audience, queues, management_client, lambda_context
):
    record = sqs_record('{"type": "notice", "data": {}, "audience": ["all"]}', "broadcast")

    assert process_events.handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}
    # Rows written before shards (this fixture's) are all in shard 0: 2 / 16 shards -> 1 of them inline.
    assert len(management_client.posts) == 1
    results = run_jobs(queues, lambda_context)

    assert results == [{"batchItemFailures": []}] * 2  # pages of 2 after the first: c1-c2, then c3-c4
    assert sorted(c for c, _ in management_client.posts) == audience
    assert {json.loads(data)["seqs"]["all"] for _, data in management_client.posts} == {1}


def test_a_topic_over_several_keys_is_read_by_one_page_chain_per_key(
    events_table, connections_table, management_client, queues, lambda_context, monkeypatch
):
    monkeypatch.setenv("FANOUT_THRESHOLD", "4")
    monkeypatch.setenv("FANOUT_PAGE_SIZE", "3")
    monkeypatch.setenv("SUBSCRIPTION_SHARDS", '{"all": 4, "group:*": 2}')
    writer = ConnectionStore(connections_table, layout=SubscriptionLayout({"all": 4}), clock=lambda: time.time() - 60)
    ids = [f"c{n:02d}" for n in range(30)]
    for connection_id in ids:
        writer.add(connection_id, connection_id, ["all"], ttl_seconds=600)
    by_shard = {shard: [c for c in ids if shard_of(c, 4) == shard] for shard in range(4)}
    assert all(by_shard.values())  # every key holds some: the rows are spread
    record = sqs_record('{"type": "notice", "data": {}, "audience": ["all"]}', "broadcast")

    assert process_events.handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}

    # One connection of each key inline (4 / 4 keys), then a chain per key, all started at once.
    assert len(management_client.posts) == 4
    first_jobs = [json.loads(entry["MessageBody"]) for entry in queues.sent_jobs]
    assert sorted(job.get("shard", 0) for job in first_jobs) == [s for s in range(4) if len(by_shard[s]) > 1]
    run_jobs(queues, lambda_context)
    assert sorted(c for c, _ in management_client.posts) == ids  # each once
    jobs = [json.loads(entry["MessageBody"]) for entry in queues.sent_jobs]
    for shard, members in by_shard.items():  # a key's chain: a page of 3 after the one inline
        assert sum(job.get("shard", 0) == shard for job in jobs) == -(-(len(members) - 1) // 3)


def test_a_page_job_emits_its_delivery_lag_in_milliseconds(audience, queues, lambda_context, capsys):
    record = sqs_record('{"type": "notice", "data": {}, "audience": ["all"]}', "broadcast")
    process_events.handler({"Records": [record]}, lambda_context)
    capsys.readouterr()

    fanout.handler({"Records": [sqs_record(queues.sent_jobs[0]["MessageBody"], "page-2")]}, lambda_context)

    (emitted,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (definition,) = emitted["_aws"]["CloudWatchMetrics"]
    assert {"Name": "DeliveryLag", "Unit": "Milliseconds"} in definition["Metrics"]
    (lag,) = emitted["DeliveryLag"] if isinstance(emitted["DeliveryLag"], list) else [emitted["DeliveryLag"]]
    assert 0 <= lag < 60_000


def test_retry_jobs_post_only_the_failed_connections_and_give_up_after_the_last_attempt(
    audience, queues, management_client, lambda_context, caplog
):
    management_client.failures["c1"] = client_error("InternalServerError", 500)
    record = sqs_record('{"type": "notice", "data": {}, "audience": ["user:c0", "user:c1"]}', "m")

    process_events.handler({"Records": [record]}, lambda_context)
    run_jobs(queues, lambda_context)

    assert [c for c, _ in management_client.posts] == ["c0"]
    jobs = queues.fanout_jobs()
    assert [(job["attempt"], [t["connectionId"] for t in job["targets"]]) for job in jobs] == [(1, ["c1"])]
    abandoned = [r for r in caplog.records if r.getMessage().startswith("Delivery abandoned")]
    assert [(r.connection_id, r.event_id, r.posts) for r in abandoned] == [("c1", "m", 2)]


def test_a_page_that_cannot_be_read_is_retried_soon(audience, queues, lambda_context, monkeypatch):
    def throttled(*_args, **_kwargs):
        raise client_error("ProvisionedThroughputExceededException", 400, "Query")

    process_events.handler(
        {"Records": [sqs_record('{"type": "notice", "data": {}, "audience": ["all"]}', "m")]}, lambda_context
    )
    monkeypatch.setattr(ConnectionStore, "subscriber_page", throttled)
    delays = []
    queues.sqs.meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch",
        lambda params, **_: delays.extend(e["VisibilityTimeout"] for e in params["Entries"]),
    )

    (result,) = run_jobs(queues, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "job-1"}]}
    assert 1 <= delays[0] <= 3


EVENT = {"id": "e1", "type": "t", "data": {}, "occurredAt": "x", "publishedAt": "y", "seqs": {"all": 1}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not a delivery job"),
        ('{"topic": "all", "startKey": null}', "not a delivery job"),  # no event
        (json.dumps({"event": EVENT, "topic": "user:c0", "startKey": None}), "one of its event's topics"),
        (json.dumps({"event": EVENT, "topic": "all", "startKey": None, "attempt": "1"}), "attempt"),
        (json.dumps({"event": EVENT, "targets": [], "attempt": 1}), "names connections"),
        (json.dumps({"event": EVENT, "targets": [{"connectionId": "c0", "topics": ["user:c0"]}]}), "names connections"),
    ],
)
def test_a_job_the_module_would_not_write_is_dropped_with_its_reason_not_retried(
    audience, management_client, lambda_context, caplog, body, reason
):
    result = fanout.handler({"Records": [sqs_record(body, "forged")]}, lambda_context)

    assert result == {"batchItemFailures": []}
    assert management_client.posts == []
    (dropped,) = [r for r in caplog.records if r.getMessage() == "Delivery job dropped"]
    assert reason in dropped.error


def test_jobs_written_by_hand_post_only_what_was_stored_to_connections_that_hold_its_topics(
    audience, queues, management_client, lambda_context
):
    private = sqs_record('{"type": "secret", "id": "p1", "data": {"for": "c0"}, "audience": ["user:c0"]}', "m")
    process_events.handler({"Records": [private]}, lambda_context)
    management_client.posts.clear()
    forged_content = {"type": "admin.notice", "data": {"forged": True}, "occurredAt": "x", "publishedAt": "y"}
    jobs = [
        # an event nobody stored, on every subscriber of `all`: with and without the fields the module writes
        {"event": {"id": "nope", "seqs": {"all": 1}, **forged_content}, "topic": "all", "startKey": None},
        {"event": {"id": "nope", "seqs": {"all": 1}}, "topic": "all", "startKey": None, "attempt": 0},
        # the stored private event, to another user's connection
        {"event": {"id": "p1", "seqs": {"user:c0": 1}}, "targets": [{"connectionId": "c1", "topics": ["user:c0"]}]},
        # the stored private event, with forged content, to its own audience
        {"event": {"id": "p1", "seqs": {"user:c0": 1}, **forged_content}, "topic": "user:c0", "startKey": None},
    ]

    results = [
        fanout.handler({"Records": [sqs_record(json.dumps(job), f"forged-{n}")]}, lambda_context)
        for n, job in enumerate(jobs)
    ]

    assert results == [{"batchItemFailures": []}] * len(jobs)  # dropped or done: never retried as poison
    frames = [(connection_id, json.loads(data)) for connection_id, data in management_client.posts]
    assert [(c, f["id"], f["type"], f["data"]) for c, f in frames] == [("c0", "p1", "secret", {"for": "c0"})]
