"""The chaos scenarios' fault proxies (scripts/lab/fault_proxy.py): which requests fail, how AWS's SDK reads them."""

from __future__ import annotations

import asyncio
import socket
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from realtime.events.store import _lost_race

from scripts.lab.fault_proxy import (
    ConnectionsFaults,
    DynamoDBThrottling,
    FaultDecider,
    FaultPlan,
    HttpFaultProxy,
    ProxyThread,
    Request,
    TcpDropProxy,
    TransactionConflicts,
)
from scripts.lab.gateway_sim import GatewaySimulator


def post(connection_id: str, frame: bytes = b'{"id":"e1"}') -> Request:
    return Request("POST", f"/_aws/execute-api/api/stage/@connections/{connection_id}", {}, frame)


def test_a_plan_picks_about_its_share_of_keys_the_same_way_for_a_seed():
    plan = FaultPlan(share=0.3, kinds=("throttle", "error", "timeout"), seed=7)
    kinds = [plan.kind_for(f"key-{n}") for n in range(3000)]

    assert 0.27 < sum(kind is not None for kind in kinds) / 3000 < 0.33
    assert {kind for kind in kinds if kind} == {"throttle", "error", "timeout"}
    assert kinds == [plan.kind_for(f"key-{n}") for n in range(3000)]
    assert kinds != [FaultPlan(share=0.3, kinds=plan.kinds, seed=8).kind_for(f"key-{n}") for n in range(3000)]


def test_a_picked_request_fails_its_given_number_of_times_then_is_forwarded():
    decider = FaultDecider([ConnectionsFaults(FaultPlan(share=1.0, failures_each=2, kinds=("throttle",)))])

    answers = [decider.decide(post("c1")) for _ in range(3)]

    assert [answer.status if answer else "forwarded" for answer in answers] == [429, 429, "forwarded"]
    assert decider.decide(post("c1", b'{"id":"e2"}')).status == 429, "another frame is another key"
    assert decider.decide(Request("GET", "/x/@connections/c1", {}, b"")) is None, "only posts fail"
    assert (decider.counts.requests, decider.counts.forwarded, decider.counts.injected["throttle"]) == (5, 2, 3)


def dynamodb_request(operation: str, body: bytes = b"{}") -> Request:
    return Request("POST", "/", {"x-amz-target": f"DynamoDB_20120810.{operation}"}, body)


def test_throttling_can_be_limited_to_operations_and_conflicts_only_hit_transactions():
    throttling = DynamoDBThrottling(FaultPlan(share=1.0), operations=["Query"])
    conflicts = TransactionConflicts(FaultPlan(share=1.0, kinds=("conflict",)))

    assert throttling.key(dynamodb_request("Query")) is not None
    assert throttling.key(dynamodb_request("PutItem")) is None
    assert conflicts.key(dynamodb_request("TransactWriteItems")) is not None
    assert conflicts.key(dynamodb_request("BatchGetItem")) is None


@pytest.fixture(scope="module")
def proxies():
    with ProxyThread().running() as thread:
        yield thread


@pytest.fixture
def proxy(proxies):
    """A fault proxy (no faults yet) in front of the gateway simulator, with id "alive" registered."""
    simulator = GatewaySimulator()
    simulator.configure(latency_ms=0)
    simulator.register(["alive"])
    upstream = proxies.call(simulator.serve())
    with HttpFaultProxy(f"http://127.0.0.1:{upstream.sockets[0].getsockname()[1]}").running() as proxy:
        yield proxy

    async def close() -> None:  # on the server's own loop: asyncio servers are not thread-safe
        upstream.close()

    proxies.call(close())


def client(service: str, url: str, attempts: int):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=1),
    )


def test_posts_are_forwarded_and_injected_failures_read_as_api_gateway_errors(proxy):
    proxy.set_faults([ConnectionsFaults(FaultPlan(share=1.0, failures_each=1, kinds=("error",)))])
    management = client("apigatewaymanagementapi", f"{proxy.url}/_aws/execute-api/api/stage", attempts=1)

    with pytest.raises(ClientError) as failed:
        management.post_to_connection(ConnectionId="alive", Data=b"{}")
    management.post_to_connection(ConnectionId="alive", Data=b"{}")  # the next attempt is forwarded
    proxy.heal()
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId="unknown", Data=b"{}")  # the upstream's own answer
    assert failed.value.response["Error"]["Code"] == "InternalServerErrorException"
    assert (proxy.counts.requests, proxy.counts.injected["error"]) == (3, 1)


def test_an_unanswered_post_times_out_in_the_client(proxy):
    proxy.hang_seconds = 3
    proxy.set_faults([ConnectionsFaults(FaultPlan(share=1.0, kinds=("timeout",)))])
    management = client("apigatewaymanagementapi", f"{proxy.url}/stage", attempts=1)

    started = time.monotonic()
    with pytest.raises(Exception, match="Read timeout"):
        management.post_to_connection(ConnectionId="alive", Data=b"{}")
    assert time.monotonic() - started < 2.5


def test_throttling_is_retried_by_the_sdk_until_it_gives_up(proxy):
    proxy.set_faults([DynamoDBThrottling(FaultPlan(share=1.0, failures_each=5))])
    dynamodb = client("dynamodb", proxy.url, attempts=3)

    with pytest.raises(dynamodb.exceptions.ProvisionedThroughputExceededException):
        dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert proxy.counts.injected["throttle"] == 3, "the SDK tried three times, each one throttled"


def test_a_conflict_is_what_the_event_store_retries_as_a_lost_race(proxy):
    proxy.set_faults([TransactionConflicts(FaultPlan(share=1.0, kinds=("conflict",)))])
    dynamodb = client("dynamodb", proxy.url, attempts=1)
    items = [
        {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": k}}, "ConditionExpression": "a = b"}} for k in "xy"
    ]

    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=items)

    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["TransactionConflict", "None"]
    assert _lost_race(cancelled.value)


def echo_server(proxies):
    async def echo(reader, writer):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    return proxies.call(asyncio.start_server(echo, "127.0.0.1", 0))


def echoed(sock: socket.socket, data: bytes) -> bytes:
    """What comes back for `data`: nothing if the connection was reset or closed."""
    try:
        sock.sendall(data)
        return sock.recv(16)
    except OSError:
        return b""


def exchange(port: int) -> bytes:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return b""
    with sock:
        return echoed(sock, b"ping")


def test_a_network_drop_resets_open_connections_and_refuses_new_ones_until_it_is_over(proxies):
    server = echo_server(proxies)
    network = proxies.call(TcpDropProxy(server.sockets[0].getsockname()[1]).start())
    try:
        open_connection = socket.create_connection(("127.0.0.1", network.port), timeout=2)
        assert echoed(open_connection, b"one") == b"one"

        proxies.call(network.drop(1.0))
        assert echoed(open_connection, b"two") == b""
        assert exchange(network.port) == b""
        time.sleep(1.1)
        assert exchange(network.port) == b"ping"
        assert (network.resets, network.refused) == (2, 1)
    finally:
        proxies.call(network.stop())

        async def close() -> None:  # on the server's own loop
            server.close()

        proxies.call(close())
