"""The gateway simulator answers boto3's `@connections` client as API Gateway does (scripts/lab/gateway_sim.py)."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from scripts.lab.gateway_sim import Behaviour, simulator_process


@pytest.fixture(scope="module")
def running():
    with simulator_process(latency_ms=0) as simulator:
        yield simulator


@pytest.fixture
def simulator(running):
    running.unregister()
    running.reset()
    running.configure(**(dataclasses.asdict(Behaviour()) | {"latency_ms": 0}))
    return running


def management(simulator, concurrency: int = 10):
    """The client as the functions build it, without botocore's own retries (so each answer is seen)."""
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=f"{simulator.url}/_aws/execute-api/api/stage",  # any base path, as on AWS or the emulator
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(max_pool_connections=concurrency, retries={"mode": "standard", "total_max_attempts": 1}),
    )


def status_of(client, connection_id: str) -> int | str:
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=b'{"id":"e1"}')
    except ClientError as error:
        return error.response["Error"]["Code"]
    return 200


def test_posts_reach_registered_ids_and_unknown_ids_are_gone(simulator):
    client = management(simulator)
    simulator.register(["alpha", "beta/=+"])

    assert status_of(client, "alpha") == 200
    assert status_of(client, "beta/=+") == 200
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="never-registered", Data=b"{}")

    assert simulator.connection("alpha") == {"posts": 1, "accepted": 1, "failed": 0, "frames": ['{"id":"e1"}']}
    stats = simulator.stats()
    assert (stats["posts"], stats["accepted"], stats["gone"]) == (3, 2, 1)


def test_get_and_delete_connection_follow_the_service_model(simulator):
    client = management(simulator)
    simulator.register(["alpha"])

    assert client.get_connection(ConnectionId="alpha")["Identity"]["SourceIp"] == "127.0.0.1"
    client.delete_connection(ConnectionId="alpha")
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId="alpha")
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId="alpha")


def test_injected_failures_hit_the_same_ids_for_a_seed_and_stop_after_their_count(simulator):
    ids = [f"c{n:03d}" for n in range(300)]
    simulator.register(ids)
    simulator.configure(failure_share=0.3, failures_per_connection=2, seed=7)
    client = management(simulator, concurrency=20)

    def three_posts(connection_id: str) -> list[int | str]:
        return [status_of(client, connection_id) for _ in range(3)]

    with ThreadPoolExecutor(20) as pool:
        answers = dict(zip(ids, pool.map(three_posts, ids), strict=True))

    failing = {i for i, statuses in answers.items() if statuses[0] != 200}
    assert 60 < len(failing) < 120
    assert failing == {i for i in ids if Behaviour(failure_share=0.3, seed=7).failure_for(i)}
    assert {answers[i][0] for i in failing} == {"LimitExceededException", "InternalServerErrorException"}
    for connection_id, statuses in answers.items():
        expected = [statuses[0]] * 2 + [200] if connection_id in failing else [200] * 3
        assert statuses == expected, connection_id
    counts = simulator.counts()
    assert sum(c["failed"] for c in counts.values()) == 2 * len(failing)
    assert all(c["accepted"] == (1 if i in failing else 3) for i, c in counts.items())


def test_posts_above_the_rate_limit_are_throttled(simulator):
    ids = [f"c{n:03d}" for n in range(60)]
    simulator.register(ids)
    simulator.configure(rate_limit=20)
    client = management(simulator, concurrency=30)

    with ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(lambda i: status_of(client, i), ids))

    # A bucket of one second's worth: about 20 at once, plus what refills while the burst lasts.
    assert 20 <= statuses.count(200) < 45
    assert set(statuses) == {200, "LimitExceededException"}
    assert simulator.stats()["throttled"] == statuses.count("LimitExceededException")


def test_posts_wait_the_latency_concurrently(simulator):
    ids = [f"c{n:02d}" for n in range(40)]
    simulator.register(ids)
    simulator.configure(latency_ms=200, jitter_ms=50)
    client = management(simulator, concurrency=40)

    started = time.monotonic()
    with ThreadPoolExecutor(40) as pool:
        assert set(pool.map(lambda i: status_of(client, i), ids)) == {200}
    elapsed = time.monotonic() - started

    assert 0.2 <= elapsed < 2.0  # one after another would take 8 s
    assert simulator.stats()["peak_in_flight"] > 10


def test_control_api_registers_and_unregisters_in_bulk(simulator):
    assert simulator.register(f"c{n:06d}" for n in range(100_000)) == 100_000
    assert simulator.unregister(f"c{n:06d}" for n in range(50_000)) == 50_000
    assert simulator.stats()["registered"] == 50_000
    assert simulator.unregister() == 0


def test_a_bad_control_request_is_refused_and_changes_nothing(simulator):
    with pytest.raises(httpx.HTTPStatusError) as refused:
        simulator.configure(latency_ms=5, no_such_field=1)
    assert refused.value.response.status_code == 400
    assert simulator.stats()["behaviour"]["latency_ms"] == 0
