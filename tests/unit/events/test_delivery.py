import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from realtime.events.connections import ConnectionStore
from realtime.events.delivery import Deliverer, TransientDeliveryError

from ..support import REGION, FakeManagementClient, client_error


@pytest.fixture
def connections(connections_table):
    store = ConnectionStore(connections_table)
    for connection_id in ("live", "gone", "forbidden", "throttled", "broken"):
        store.add(connection_id, "u", ["all"], ttl_seconds=60)
    return store


def test_posts_every_frame(connections):
    client = FakeManagementClient()
    posts = [("live", b"one"), ("live", b"two"), ("other", b"three")]

    report = Deliverer(client, concurrency=4, on_gone=connections.remove).deliver(posts)

    assert (report.sent, report.gone, report.failed) == (3, 0, 0)
    assert sorted(client.posts) == sorted(posts)


def test_nothing_to_post(connections):
    report = Deliverer(FakeManagementClient(), concurrency=4, on_gone=connections.remove).deliver([])

    assert (report.sent, report.gone, report.failed) == (0, 0, 0)


def test_gone_connections_are_removed_once(connections):
    client = FakeManagementClient(failures={"gone": client_error("GoneException", 410)})

    report = Deliverer(client, concurrency=4, on_gone=connections.remove).deliver(
        [("live", b"a"), ("gone", b"a"), ("gone", b"b")]
    )

    assert (report.sent, report.gone, report.failed) == (1, 1, 0)
    assert connections.get("gone") is None
    assert sorted(connections.subscribers("all")) == ["broken", "forbidden", "live", "throttled"]


@pytest.mark.parametrize(("code", "status"), [("ForbiddenException", 403), ("PayloadTooLargeException", 413)])
def test_other_client_errors_are_dropped_not_retried(connections, code, status):
    client = FakeManagementClient(failures={"forbidden": client_error(code, status)})

    report = Deliverer(client, concurrency=4, on_gone=connections.remove).deliver([("live", b"a"), ("forbidden", b"a")])

    assert (report.sent, report.gone, report.failed) == (1, 0, 1)
    assert connections.get("forbidden") is not None


@pytest.mark.parametrize(
    "failure",
    [
        client_error("LimitExceededException", 429),
        client_error("InternalServerError", 500),
        client_error("ServiceUnavailable", 503),
        EndpointConnectionError(endpoint_url="https://example.invalid"),
    ],
)
def test_transient_failures_raise_after_every_post_was_tried(connections, failure):
    client = FakeManagementClient(failures={"throttled": failure, "gone": client_error("GoneException", 410)})
    posts = [("live", b"a"), ("throttled", b"a"), ("gone", b"a"), ("live", b"b")]

    with pytest.raises(TransientDeliveryError, match="1 of 4"):
        Deliverer(client, concurrency=2, on_gone=connections.remove).deliver(posts)

    assert sorted(client.posts) == [("live", b"a"), ("live", b"b")]
    assert connections.get("gone") is None  # cleanup still happened


def test_with_a_real_client_stubbed(connections):
    client = boto3.client(
        "apigatewaymanagementapi", region_name=REGION, endpoint_url="https://example.execute-api.test/stage"
    )
    with Stubber(client) as stubber:
        stubber.add_response("post_to_connection", {}, {"ConnectionId": "live", "Data": b"a"})
        stubber.add_client_error("post_to_connection", service_error_code="GoneException", http_status_code=410)

        report = Deliverer(client, concurrency=1, on_gone=connections.remove).deliver([("live", b"a"), ("gone", b"a")])

        stubber.assert_no_pending_responses()
    assert (report.sent, report.gone) == (1, 1)
