import threading
import time

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from realtime.connections.posting import InFlightLimit, Outcome, Poster
from realtime.connections.store import ConnectionStore

from ..support import REGION, FakeManagementClient, client_error, subscribed


@pytest.fixture
def connections(connections_table):
    store = ConnectionStore(connections_table)
    for connection_id in ("live", "gone", "forbidden", "throttled", "broken"):
        store.add(connection_id, "u", ["all"], ttl_seconds=60)
    return store


def test_posts_every_frame(connections):
    client = FakeManagementClient()
    posts = [("live", b"one"), ("live", b"two"), ("other", b"three")]

    report = Poster(client, concurrency=4, on_gone=connections.remove).post(posts)

    assert (report.sent, report.gone, report.failed) == (3, 0, 0)
    assert sorted(client.posts) == sorted(posts)


def test_nothing_to_post(connections):
    report = Poster(FakeManagementClient(), concurrency=4, on_gone=connections.remove).post([])

    assert (report.sent, report.gone, report.failed) == (0, 0, 0)


def test_gone_connections_are_removed_once(connections):
    client = FakeManagementClient(failures={"gone": client_error("GoneException", 410)})

    report = Poster(client, concurrency=4, on_gone=connections.remove).post(
        [("live", b"a"), ("gone", b"a"), ("gone", b"b")]
    )

    assert (report.sent, report.gone, report.failed) == (1, 1, 0)
    assert connections.get("gone") is None
    assert sorted(subscribed(connections, "all")) == ["broken", "forbidden", "live", "throttled"]


@pytest.mark.parametrize(("code", "status"), [("ForbiddenException", 403), ("PayloadTooLargeException", 413)])
def test_other_client_errors_are_dropped_not_retried(connections, code, status):
    client = FakeManagementClient(failures={"forbidden": client_error(code, status)})

    report = Poster(client, concurrency=4, on_gone=connections.remove).post([("live", b"a"), ("forbidden", b"a")])

    assert (report.sent, report.gone, report.failed, report.retry) == (1, 0, 1, [])
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
def test_posts_that_may_succeed_later_are_reported_not_raised(connections, failure):
    client = FakeManagementClient(failures={"throttled": failure, "gone": client_error("GoneException", 410)})
    posts = [("live", b"a"), ("throttled", b"a"), ("gone", b"a"), ("live", b"b")]

    report = Poster(client, concurrency=2, on_gone=connections.remove).post(posts)

    assert report.retry == [1]
    assert (report.sent, report.gone) == (2, 1)
    assert sorted(client.posts) == [("live", b"a"), ("live", b"b")]
    assert connections.get("gone") is None  # cleanup still happened


def test_throttling_halves_the_posts_in_flight_once_per_round_and_successes_raise_them_again():
    limit = InFlightLimit(8)
    rounds = [limit.acquire() for _ in range(8)]

    for started_in in rounds[:3]:  # three 429s to posts sent together: one halving
        limit.release(started_in, Outcome.THROTTLED)
    assert limit.limit == 4
    for started_in in rounds[3:7]:
        limit.release(started_in, Outcome.SENT)
    assert limit.limit == 5  # +1 after as many successes as the limit
    limit.release(rounds[7], Outcome.THROTTLED)  # sent before the halving: says nothing new
    assert limit.limit == 5
    limit.release(limit.acquire(), Outcome.THROTTLED)  # sent after it: halved again
    assert limit.limit == 2
    for _ in range(5):
        limit.release(limit.acquire(), Outcome.THROTTLED)
    assert limit.limit == 1  # never below one
    limit.release(limit.acquire(), Outcome.SENT)
    assert limit.limit == 2


class GatewayWithARateLimit(FakeManagementClient):
    """Answers 429 to a post made while `capacity` others are in flight; remembers the most in flight."""

    def __init__(self, capacity, delay=0.002):
        super().__init__()
        self.capacity = capacity
        self.delay = delay
        self.in_flight = 0
        self.in_flight_after_first_429 = []
        self.throttled = False
        self.lock = threading.Lock()

    def post_to_connection(self, *, ConnectionId, Data):
        with self.lock:
            self.in_flight += 1
            crowded = self.in_flight > self.capacity
            self.throttled = self.throttled or crowded
            if self.throttled:
                self.in_flight_after_first_429.append(self.in_flight)
        try:
            time.sleep(self.delay)
            if crowded:
                raise client_error("LimitExceededException", 429)
            return super().post_to_connection(ConnectionId=ConnectionId, Data=Data)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_throttling_lowers_the_concurrency_of_the_rest_of_the_delivery():
    gateway = GatewayWithARateLimit(capacity=4)

    report = Poster(gateway, concurrency=32, on_gone=lambda _id: None).post([(f"c{n}", b"x") for n in range(400)])

    assert report.throttled > 0
    assert report.sent + len(report.retry) == 400
    assert report.concurrency < 32
    # Once throttled, the posts in flight drop to what the gateway takes, give or take the probing.
    late = gateway.in_flight_after_first_429[len(gateway.in_flight_after_first_429) // 2 :]
    assert max(late) <= 8


def test_with_a_real_client_stubbed(connections):
    client = boto3.client(
        "apigatewaymanagementapi", region_name=REGION, endpoint_url="https://example.execute-api.test/stage"
    )
    with Stubber(client) as stubber:
        stubber.add_response("post_to_connection", {}, {"ConnectionId": "live", "Data": b"a"})
        stubber.add_client_error("post_to_connection", service_error_code="GoneException", http_status_code=410)

        report = Poster(client, concurrency=1, on_gone=connections.remove).post([("live", b"a"), ("gone", b"a")])

        stubber.assert_no_pending_responses()
    assert (report.sent, report.gone) == (1, 1)


def test_a_connection_gets_its_frames_in_order_while_connections_are_posted_in_parallel():
    client = FakeManagementClient()
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_post():
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.002)
        with lock:
            in_flight[0] -= 1

    client.on_post = slow_post
    posts = [(f"c{n % 8}", f"{n // 8}".encode()) for n in range(8 * 6)]  # six frames to each of eight sockets

    report = Poster(client, concurrency=8, on_gone=lambda _id: None).post(posts)

    received = {}
    for connection_id, frame in client.posts:
        received.setdefault(connection_id, []).append(int(frame))
    assert report.sent == 48
    assert received == {f"c{n}": list(range(6)) for n in range(8)}
    assert most[0] > 1
