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
from pathlib import Path

import pytest
from measurements import FIGURES, LATENCIES, latency_summary

from scripts.local.emulator import emulator_client
from scripts.local.local_stack import stack_on_free_port
from scripts.local.mint_token import local_secret, mint_token


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> dict:
    existing = os.environ.get("REALTIME_STACK_ENDPOINTS")
    if existing:
        yield json.loads(Path(existing).read_text())
        return
    with stack_on_free_port(tmp_path_factory.mktemp("stack")) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def aws(stack):
    """boto3 clients pointed at the stack's emulator."""

    def client(service: str):
        return emulator_client(stack, service)

    return client


@pytest.fixture(scope="session")
def events_table(stack):
    """The stack's events table (a boto3 Table), for events stored straight in it (stored_events.py)."""
    return emulator_client(stack, "dynamodb", resource=True).Table(stack["events_table_name"])


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
    for line in FIGURES:
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(items):
    """The stack suite's broadcasts to 10,000 simulated connections run last: their backlog
    (deleting and retrying thousands of posts) must not sit in front of the latency figures."""
    items.sort(key=lambda item: item.get_closest_marker("scale") is not None)
