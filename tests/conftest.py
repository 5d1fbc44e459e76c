"""Fixtures shared by the suites that need the whole stack (integration, clients, browser).

`stack` is session-scoped: one pytest run over several suites starts one
stack: ministack on a free loopback port, the real module applied from
terraform/examples/local, the real zips. Set REALTIME_STACK_ENDPOINTS to an
endpoints.json (as written by `make up`) to use a stack that is already up,
on the emulator or on AWS.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import local_stack
import pytest
from measurements import LATENCIES, latency_summary
from mint_token import local_secret, mint_token


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
        return local_stack.emulator_client(stack, service)

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
        terminalreporter.write_line(latency_summary())
