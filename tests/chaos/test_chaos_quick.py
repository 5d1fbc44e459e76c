"""The key fault scenarios of `make chaos` on the stack: 429/500/unanswered posts, DynamoDB throttling and
transaction conflicts, a crash between storing and delivering with SQS delivering twice.

Marked `chaos_quick` (select with `-m chaos_quick`); scripts/lab/chaos runs them and the others and writes
docs/reliability.md. Each scenario undoes its faults (function configuration, queue attributes) when it ends.
"""

from __future__ import annotations

import asyncio

import pytest
from measurements import FIGURES

from scripts.lab.chaos.harness import Stack
from scripts.lab.chaos.runner import run_scenario, summary_line
from scripts.lab.chaos.scenarios import SCENARIOS
from scripts.lab.fault_proxy import ProxyThread

pytestmark = [pytest.mark.integration, pytest.mark.chaos_quick]


@pytest.fixture(scope="module")
def chaos(stack):
    with ProxyThread().running() as proxies:
        yield Stack(stack), proxies


@pytest.mark.parametrize("spec", [spec for spec in SCENARIOS if spec.quick], ids=lambda spec: spec.name)
def test_every_client_ends_with_every_event_once(chaos, spec):
    outcome = asyncio.run(run_scenario(*chaos, spec))
    FIGURES.append(f"chaos {spec.name}: {summary_line(outcome)}")

    assert outcome.passed, summary_line(outcome)
    assert not outcome.dead_letters, f"messages reached a DLQ: {dict(outcome.dead_letters)}"
