"""The WebSocket routes with a function: $connect and $disconnect (the gateway answers ping and $default:
tests/integration/test_refused_frames.py and the Terraform tests)."""

import jwt
import pytest
from realtime.connections.layout import LAYOUT_KEY, shard_of, subscription_key
from realtime.connections.store import ConnectionStore
from realtime.handlers import ws_connect, ws_disconnect

from ..dynamodb_requests import dynamodb_requests
from ..support import client_error, make_token, subscribed, ws_event


@pytest.fixture
def connections(connections_table, hs256_token_mode, monkeypatch):
    monkeypatch.setenv("CONNECTION_TTL_SECONDS", "7200")
    return ConnectionStore(connections_table)


def connect(context, query, connection_id="conn-1"):
    return ws_connect.handler(ws_event("$connect", connection_id, queryStringParameters=query), context)


# --- $connect -------------------------------------------------------------------


def test_connect_stores_the_topics_of_the_token(connections, lambda_context):
    token = make_token("42", groups=["ops"], topics=["presence:7"], expires_in=90)

    assert connect(lambda_context, {"token": token}) == {"statusCode": 200}

    item = connections.get("conn-1")
    assert item["userId"] == "42"
    assert item["topics"] == ["user:42", "group:ops", "presence:7", "all"]
    assert list(subscribed(connections, "presence:7")) == ["conn-1"]
    # Delivery stops, and closes the socket, when the token expires.
    assert item["tokenExpiresAt"] == jwt.decode(token, options={"verify_signature": False})["exp"]
    assert connections.subscriber_page("presence:7", 10).subscribers[0].token_expires_at == item["tokenExpiresAt"]


def test_connect_follows_the_layout_item_and_disconnect_removes_every_row_it_wrote(
    connections, connections_table, lambda_context
):
    connections_table.put_item(Item={**LAYOUT_KEY, "shards": '{"all": 16, "group:*": 4}'})
    token = make_token("42", groups=["ops"])

    assert connect(lambda_context, {"token": token}, "conn-x") == {"statusCode": 200}

    keys = sorted(item["pk"] for item in connections_table.scan()["Items"] if item["sk"] == "conn#conn-x")
    expected = ["topic#user:42", subscription_key("group:ops", shard_of("conn-x", 4))]
    assert keys == sorted([*expected, subscription_key("all", shard_of("conn-x", 16))])
    assert ws_disconnect.handler(ws_event("$disconnect", "conn-x"), lambda_context) == {"statusCode": 200}
    assert not [item for item in connections_table.scan()["Items"] if item["pk"].startswith(("topic#", "conn#"))]


def test_a_throttled_table_answers_try_later_spread_out_and_writes_nothing(
    connections, connections_table, lambda_context, monkeypatch
):
    def throttled(*_args, **_kwargs):
        raise client_error("ProvisionedThroughputExceededException", 400, "PutItem")

    monkeypatch.setattr(ConnectionStore, "add", throttled)
    token = make_token("42")

    answers = [connect(lambda_context, {"token": token}, f"conn-{n}") for n in range(20)]

    assert {answer["statusCode"] for answer in answers} == {503}
    retry_after = [int(answer["headers"]["Retry-After"]) for answer in answers]
    assert all(5 <= seconds <= 30 for seconds in retry_after)
    assert len(set(retry_after)) > 1  # spread, so a storm does not come back at once
    assert not [item for item in connections_table.scan()["Items"] if item["pk"].startswith(("topic#", "conn#"))]


def test_connect_ignores_topics_asked_for_in_the_query(connections, lambda_context):
    query = {"token": make_token("42"), "topics": "user:7,group:admins", "topic": "all", "groups": "admins"}

    assert connect(lambda_context, query) == {"statusCode": 200}

    assert connections.get("conn-1")["topics"] == ["user:42", "all"]
    assert list(subscribed(connections, "user:7")) == []
    assert list(subscribed(connections, "group:admins")) == []


@pytest.mark.parametrize(
    "query",
    [
        None,
        {},
        {"token": ""},
        {"token": "garbage"},
        {"token": make_token("42", expires_in=-120)},
        {"token": make_token("42", key="not-the-secret-but-long-enough-0123456789")},
        {"token": make_token(None)},
    ],
)
def test_connect_refuses_missing_expired_or_bad_tokens_and_stores_nothing(
    connections, connections_table, lambda_context, query
):
    assert connect(lambda_context, query) == {"statusCode": 401}

    assert connections_table.scan()["Count"] == 0


def test_connect_refuses_the_session_past_the_users_limit_with_429(connections, lambda_context, monkeypatch, caplog):
    monkeypatch.setenv("MAX_SESSIONS_PER_USER", "2")
    token = make_token("42")

    assert [connect(lambda_context, {"token": token}, f"conn-{n}")["statusCode"] for n in range(3)] == [200, 200, 429]

    assert connections.get("conn-2") is None
    assert subscribed(connections, "user:42") == ["conn-0", "conn-1"]
    (refused,) = [r for r in caplog.records if r.getMessage() == "Connection refused"]
    assert (refused.reason, refused.sessions) == ("too_many_sessions", 2)
    ws_disconnect.handler(ws_event("$disconnect", "conn-0"), lambda_context)
    assert connect(lambda_context, {"token": token}, "conn-3") == {"statusCode": 200}


def test_connect_refused_past_the_users_limit_writes_no_item(
    connections, connections_table, lambda_context, monkeypatch
):
    """Issue 20, finding 3: the refused connect of a 100-topic token wrote 202 items (and deleted them again)."""
    monkeypatch.setenv("MAX_SESSIONS_PER_USER", "1")
    token = make_token("42", groups=[f"g{n}" for n in range(98)])
    assert connect(lambda_context, {"token": token}, "conn-0") == {"statusCode": 200}
    before = connections_table.scan(ConsistentRead=True)["Items"]

    with dynamodb_requests() as requests:
        assert connect(lambda_context, {"token": token}, "conn-1") == {"statusCode": 429}

    assert (requests.item_writes, requests.applied_writes) == (0, 0), requests.summary()
    assert connections_table.scan(ConsistentRead=True)["Items"] == before


def test_connect_refuses_a_token_granting_more_topics_than_allowed(
    connections, connections_table, lambda_context, monkeypatch
):
    monkeypatch.setenv("MAX_TOPICS_PER_TOKEN", "3")

    assert connect(lambda_context, {"token": make_token("42", groups=["a", "b"])}) == {"statusCode": 401}
    assert connections_table.scan()["Count"] == 0
    assert connect(lambda_context, {"token": make_token("42", groups=["a"])}) == {"statusCode": 200}


def test_connect_refuses_when_tokens_cannot_be_checked(connections_table, token_checks, lambda_context, monkeypatch):
    monkeypatch.setenv("TOKEN_SECRET_SSM_PARAMETER", "/does/not/exist")

    assert connect(lambda_context, {"token": make_token("42")}) == {"statusCode": 500}
    assert connections_table.scan()["Count"] == 0


# --- $disconnect ----------------------------------------------------------------


def test_disconnect_removes_the_connection_and_subscriptions(connections, connections_table, lambda_context):
    connect(lambda_context, {"token": make_token("42")}, "conn-1")
    connect(lambda_context, {"token": make_token("42")}, "conn-2")

    response = ws_disconnect.handler(ws_event("$disconnect", "conn-1"), lambda_context)

    assert response == {"statusCode": 200}
    assert connections.get("conn-1") is None
    assert list(subscribed(connections, "user:42")) == ["conn-2"]


def test_disconnect_of_an_unknown_connection_is_fine(connections, lambda_context):
    assert ws_disconnect.handler(ws_event("$disconnect", "never-seen"), lambda_context) == {"statusCode": 200}
