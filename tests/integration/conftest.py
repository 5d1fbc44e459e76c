"""The whole stack on the emulator: ministack on a free loopback port, the real
module applied from terraform/examples/local, the real zips.

Set REALTIME_STACK_ENDPOINTS to an endpoints.json (as written by `make up`)
to run these tests against a stack that is already up instead.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import boto3
import local_stack
import pytest
from mint_token import local_secret, mint_token

pytestmark = pytest.mark.integration

# Publish-to-receive latencies (seconds) seen by the tests, reported at the end.
LATENCIES: list[float] = []


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> dict:
    existing = os.environ.get("REALTIME_STACK_ENDPOINTS")
    if existing:
        yield json.loads(Path(existing).read_text())
        return
    state_dir = tmp_path_factory.mktemp("stack")
    emulator = local_stack.start_emulator(local_stack.free_port(), state_dir)
    try:
        started = time.monotonic()
        code_zip, layer_zip, arch = local_stack.build_for_host(local_stack.ROOT / "dist")
        outputs = local_stack.apply_stack(emulator.endpoint, state_dir, code_zip, layer_zip, arch)
        outputs["emulator_endpoint"] = emulator.endpoint
        outputs["apply_seconds"] = round(time.monotonic() - started, 1)
        yield outputs
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def aws(stack):
    """boto3 clients pointed at the stack's emulator."""

    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=stack["emulator_endpoint"],
            region_name=stack.get("region", "us-east-1"),
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    return client


@pytest.fixture(scope="session")
def secret(stack) -> str:
    return local_secret(stack)


@pytest.fixture(scope="session")
def token(secret):
    def make(user: str, groups: list[str] | None = None, topics: list[str] | None = None, ttl: int = 600) -> str:
        return mint_token(secret, user, groups, topics, ttl)

    return make


def pytest_terminal_summary(terminalreporter):
    if LATENCIES:
        ordered = sorted(LATENCIES)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        terminalreporter.write_line(
            f"publish-to-receive latency over {len(ordered)} deliveries: "
            f"median {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms"
        )
