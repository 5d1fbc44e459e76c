"""The handlers with presence configured: $connect/$disconnect/ping, presence-checks, maintenance, GET /presence."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from realtime.core import aws, lifecycle
from realtime.handlers import events_api, maintenance, presence_checks, ws_connect, ws_disconnect
from realtime.presence.announcer import OfflineCheck
from realtime.presence.store import PresenceStore
from stored_events import write_events

from ..dynamodb_requests import dynamodb_requests
from ..presence.world import PRESENCE_TABLE, FakeManagement, create_presence_table
from ..support import REGION, http_event, make_token, sqs_record, ws_event


@pytest.fixture
def queues(aws_mock):
    sqs = boto3.client("sqs", region_name=REGION)
    return {
        "presence-events": sqs.create_queue(QueueName="presence-events")["QueueUrl"],
        "checks": sqs.create_queue(QueueName="presence-checks")["QueueUrl"],
    }


@pytest.fixture
def gateway(monkeypatch):
    fake = FakeManagement()
    monkeypatch.setattr(aws, "connections_management", lambda *_args, **_kwargs: fake)
    monkeypatch.setattr(aws, "connections_gateway", lambda *_args, **_kwargs: fake)
    monkeypatch.setenv("CONNECTIONS_ENDPOINT", "https://example.execute-api.us-east-1.amazonaws.com/test")
    return fake


@pytest.fixture
def presence(dynamodb, connections_table, hs256_token_mode, queues, gateway, monkeypatch):
    create_presence_table(dynamodb)
    for name, value in {
        "PRESENCE_TABLE": PRESENCE_TABLE,
        "EVENTS_TABLE": "realtime-test-events",
        "PRESENCE_EVENTS_QUEUE_URL": queues["presence-events"],
        "PRESENCE_CHECKS_QUEUE_URL": queues["checks"],
        "PRESENCE_GRACE_SECONDS": "0",  # moto keeps delayed messages hidden in real time
        "GROUP_PRESENCE_ENABLED": "true",
        "CONNECTION_TTL_SECONDS": "7200",
        "STALE_CONNECTION_SECONDS": "60",
        "MAX_PRESENCE_USERS": "3",
    }.items():
        monkeypatch.setenv(name, value)
    return PresenceStore(dynamodb, PRESENCE_TABLE)


def drain(queue_url):
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def connect(context, user, connection_id, groups=(), topics=()):
    token = make_token(user, groups=list(groups), topics=list(topics))
    event = ws_event("$connect", connection_id, queryStringParameters={"token": token})
    return ws_connect.handler(event, context)


# --- WebSocket routes ------------------------------------------------------------------------


def test_connect_counts_the_session_and_announces_the_first(presence, queues, lambda_context):
    assert connect(lambda_context, "ann", "c1", groups=["ward-3"]) == {"statusCode": 200}
    assert connect(lambda_context, "ann", "c2", groups=["ward-3"]) == {"statusCode": 200}

    [online] = drain(queues["presence-events"])
    assert online == {
        "type": "presence.online",
        "id": "presence-ann-1",
        "data": {"userId": "ann", "version": 1, "lastSeen": online["data"]["lastSeen"]},
        "audience": ["presence:ann", "group:ward-3"],
        "occurredAt": online["data"]["lastSeen"],
    }
    state = presence.get("ann")
    assert (state.sessions, state.groups) == (2, ("ward-3",))


def test_connect_is_refused_when_presence_cannot_be_recorded(presence, connections_table, lambda_context, monkeypatch):
    monkeypatch.setenv("PRESENCE_TABLE", "no-such-table")

    assert connect(lambda_context, "ann", "c1") == {"statusCode": 500}
    assert connections_table.scan()["Count"] == 0  # the session is counted first: nothing else was written


def test_connect_refused_past_the_users_limit_writes_no_item(presence, dynamodb, lambda_context, monkeypatch):
    """Issue 20, finding 3, with presence: the session is counted before anything of the connection is written."""
    monkeypatch.setenv("MAX_SESSIONS_PER_USER", "1")
    groups = [f"g{n}" for n in range(98)]
    assert connect(lambda_context, "ann", "c1", groups=groups) == {"statusCode": 200}
    tables = [dynamodb.Table(name) for name in dynamodb.meta.client.list_tables()["TableNames"]]
    before = [table.scan(ConsistentRead=True)["Items"] for table in tables]

    with dynamodb_requests() as requests:
        assert connect(lambda_context, "ann", "c2", groups=groups) == {"statusCode": 429}

    assert (requests.item_writes, requests.applied_writes) == (0, 0), requests.summary()
    assert [table.scan(ConsistentRead=True)["Items"] for table in tables] == before
    assert presence.get("ann").connection_ids == {"c1"}


def test_last_disconnect_schedules_the_offline_check(presence, queues, lambda_context):
    connect(lambda_context, "ann", "c1")
    connect(lambda_context, "ann", "c2")
    drain(queues["presence-events"])

    ws_disconnect.handler(ws_event("$disconnect", "c1"), lambda_context)
    assert drain(queues["checks"]) == []

    ws_disconnect.handler(ws_event("$disconnect", "c2"), lambda_context)
    [check] = drain(queues["checks"])
    assert check == {"userId": "ann", "version": 4}
    assert presence.get("ann").sessions == 0


# --- presence-checks ---------------------------------------------------------------------------


def test_a_due_check_announces_offline(presence, queues, lambda_context):
    connect(lambda_context, "ann", "c1")
    ws_disconnect.handler(ws_event("$disconnect", "c1"), lambda_context)
    drain(queues["presence-events"])
    [check] = drain(queues["checks"])

    records = [sqs_record(OfflineCheck(**{"user_id": check["userId"], "version": check["version"]}).to_json(), "m1")]
    assert presence_checks.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}

    [offline] = drain(queues["presence-events"])
    assert (offline["type"], offline["id"], offline["data"]["version"]) == ("presence.offline", "presence-ann-3", 3)
    assert not presence.get("ann").online


def test_a_stale_or_malformed_check_does_nothing_and_is_not_retried(presence, queues, lambda_context):
    connect(lambda_context, "ann", "c1")
    drain(queues["presence-events"])
    records = [sqs_record(OfflineCheck("ann", 1).to_json(), "stale"), sqs_record("not json", "junk")]

    assert presence_checks.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}
    assert drain(queues["presence-events"]) == []
    assert presence.get("ann").online


def test_a_check_that_cannot_send_its_event_is_retried(presence, queues, lambda_context, monkeypatch):
    connect(lambda_context, "ann", "c1")
    ws_disconnect.handler(ws_event("$disconnect", "c1"), lambda_context)
    [check] = drain(queues["checks"])
    monkeypatch.setenv("PRESENCE_EVENTS_QUEUE_URL", queues["presence-events"] + "-missing")
    lifecycle.reset()  # a new container reads the broken setting
    record = sqs_record(json.dumps(check), "m1")

    response = presence_checks.handler({"Records": [record]}, lambda_context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert presence.get("ann").unannounced


# --- maintenance ------------------------------------------------------------------------------


def test_maintenance_removes_a_connection_whose_disconnect_was_missed(
    presence, queues, gateway, connections_table, events_table, lambda_context
):
    connect(lambda_context, "ann", "alive")
    connect(lambda_context, "ann", "dead")
    gateway.alive.add("alive")
    lambda_context.remaining_millis = 60_000
    # Both look stale: the threshold is 60 s and they were seen "long ago".
    for connection_id in ("alive", "dead"):
        connections_table.update_item(
            Key={"pk": f"conn#{connection_id}", "sk": "meta"},
            UpdateExpression="SET lastSeen = :old, connectedAt = :old",
            ExpressionAttributeValues={":old": "2020-01-01T00:00:00.000Z"},
        )

    summary = maintenance.handler({}, lambda_context)

    assert summary["connections_checked"] == 2
    assert (summary["connections_alive"], summary["connections_removed"], summary["complete"]) == (1, 1, True)
    assert presence.get("ann").connection_ids == {"alive"}


def test_maintenance_reports_each_run_in_one_line_and_metrics(
    presence, queues, gateway, connections_table, events_table, lambda_context, caplog, capsys
):
    connect(lambda_context, "ann", "c1")  # a connection record and two subscriptions
    write_events(events_table, "user:ann", 2, expires_at=int(time.time()) - 60)  # TTL has not deleted them yet
    write_events(events_table, "user:ann", 1)
    caplog.clear()
    capsys.readouterr()

    maintenance.handler({}, lambda_context)

    [report] = [record.__dict__ for record in caplog.records if record.levelname == "INFO"]
    (emitted,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert report["message"] == "Maintenance run finished"
    assert (report["connections_removed"], report["orphan_sessions_removed"], report["offline_decided"]) == (0, 0, 0)
    assert report["table_items"] == {"events": 4, "connections": 3}
    assert report["expired_items"] == {"events": 2, "connections": 0}
    values = {name: value[0] if isinstance(value, list) else value for name, value in emitted.items()}
    assert (values["EventsTableExpiredItems"], values["EventsTableItems"], values["DeadConnectionsRemoved"]) == (
        2,
        4,
        0,
    )


# --- GET /presence -----------------------------------------------------------------------------


def get_presence(context, token, users):
    query = {"users": users} if users is not None else None
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = events_api.handler(http_event(headers=headers, query=query, path="/presence"), context)
    return response["statusCode"], json.loads(response["body"])


def test_presence_of_users_the_caller_may_watch(presence, lambda_context):
    connect(lambda_context, "doctor-7", "c1", groups=["cardio"])
    connect(lambda_context, "doctor-7", "c2", groups=["cardio"])
    connect(lambda_context, "nurse-2", "c3", groups=["cardio"])
    connect(lambda_context, "admin", "c4", groups=["it"])

    status, body = get_presence(lambda_context, make_token("patient-1", topics=["presence:doctor-7"]), "doctor-7,admin")

    assert status == 200
    assert list(body["users"]) == ["doctor-7"]  # admin: not allowed, so left out
    assert body["users"]["doctor-7"]["online"] is True
    assert body["users"]["doctor-7"]["sessions"] == 2
    assert body["users"]["doctor-7"]["lastSeen"].endswith("Z")

    _, body = get_presence(lambda_context, make_token("nurse-2", groups=["cardio"]), "doctor-7,nurse-2,admin")
    assert list(body["users"]) == ["doctor-7", "nurse-2"]  # a shared group, and itself


def test_unknown_users_the_caller_may_watch_read_as_offline(presence, lambda_context):
    _, body = get_presence(lambda_context, make_token("patient-1", topics=["presence:doctor-9"]), "doctor-9,patient-1")

    assert body == {
        "users": {
            "doctor-9": {"online": False, "sessions": 0, "lastSeen": None, "version": 0},
            "patient-1": {"online": False, "sessions": 0, "lastSeen": None, "version": 0},
        }
    }


def test_a_caller_without_rights_gets_nothing(presence, lambda_context):
    connect(lambda_context, "doctor-7", "c1", groups=["cardio"])

    status, body = get_presence(lambda_context, make_token("stranger", groups=["other"]), "doctor-7")

    assert (status, body) == (200, {"users": {}})


@pytest.mark.parametrize(
    ("users", "code"),
    [(None, "invalid_users"), ("", "invalid_users"), (" , ", "invalid_users"), ("a,b,c,d", "too_many_users"),
     ("a,not a user", "invalid_users")],
)  # fmt: skip
def test_bad_user_lists_are_refused(presence, lambda_context, users, code):
    status, body = get_presence(lambda_context, make_token("ann"), users)

    assert status == 400
    assert body["error"]["code"] == code


def test_duplicates_count_once(presence, lambda_context):
    status, body = get_presence(lambda_context, make_token("ann"), "ann,ann,ann,ann")

    assert status == 200
    assert list(body["users"]) == ["ann"]


def test_presence_needs_a_token(presence, lambda_context):
    status, body = get_presence(lambda_context, None, "ann")

    assert status == 401
    assert body["error"]["code"] == "missing_token"
