"""Fault injection on the local stack: what every client ends with when parts of AWS misbehave.

    python -m scripts.lab.chaos [--endpoints .local/endpoints.json] [--only NAME ...] [--report docs/reliability.md]

Without --endpoints (or REALTIME_STACK_ENDPOINTS) it starts its own emulator on
a free loopback port, applies the stack, and stops it afterwards. Each
scenario connects several of the project's Python clients (with their dedup
and gap repair), publishes a known set of events while a fault is injected,
and then checks what every client handed on:

- lost: events a client never handed on that are not readable from the store either;
- unrepaired: events a client had not handed on by the deadline although the store has them;
- duplicates: events a client handed on more than once (after its dedup);
- stored twice: events with more than one item on their topic (exactly-once storage);
- DLQ: messages that reached a dead-letter queue during the scenario, by errorCode;
- complete after: seconds from the last publish until every client had every event.

The faults come from loopback proxies (scripts/lab/fault_proxy.py) that the
functions are pointed at through their configuration, and from the Lambda and
SQS APIs (a shorter function timeout, a shorter visibility timeout); the
production code has no test hooks. Every change is undone after its scenario.
It exits non-zero if any scenario lost, left unrepaired, duplicated or stored
twice an event, or failed one of its own checks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from scripts.lab.chaos.harness import Outcome, Stack, drain_dead_letters
from scripts.lab.chaos.scenarios import SCENARIOS, Spec
from scripts.lab.fault_proxy import ProxyThread
from scripts.lab.provenance import source_revision
from scripts.local.emulator import ROOT, read_endpoints
from scripts.local.local_stack import stack_on_free_port

REPORT = ROOT / "docs" / "reliability.md"


async def run_scenario(stack: Stack, proxies: ProxyThread, spec: Spec) -> Outcome:
    outcome = Outcome(spec.name, spec.title, spec.simulated)
    await asyncio.to_thread(drain_dead_letters, stack)
    started = time.monotonic()
    print(f"==> {spec.name}: {spec.title}", flush=True)
    try:
        await spec.run(stack, proxies, outcome)
    except Exception as error:  # one broken scenario is reported, the others still run
        outcome.problems.append(f"{type(error).__name__}: {error}")
    await asyncio.sleep(5)  # late retries of the scenario's own messages reach the DLQ now, or never
    outcome.dead_letters = await asyncio.to_thread(drain_dead_letters, stack)
    outcome.wall_seconds = time.monotonic() - started
    print(f"    {summary_line(outcome)}", flush=True)
    return outcome


async def run(endpoints: dict, only: Sequence[str] = ()) -> list[Outcome]:
    stack = Stack(endpoints)
    with ProxyThread().running() as proxies:
        return [await run_scenario(stack, proxies, spec) for spec in SCENARIOS if not only or spec.name in only]


# --- the report ----------------------------------------------------------------------------------


def summary_line(outcome: Outcome) -> str:
    complete = "never" if outcome.complete_after is None else f"{outcome.complete_after:.1f} s"
    verdict = "ok" if outcome.passed else "FAILED " + "; ".join(outcome.problems)
    return (
        f"{outcome.events} events x {outcome.clients} clients: lost {outcome.lost}, unrepaired {outcome.unrepaired}, "
        f"duplicates {outcome.duplicates}, stored twice {outcome.stored_twice}, "
        f"DLQ {sum(outcome.dead_letters.values())}, "
        f"complete after {complete} ({outcome.wall_seconds:.0f} s) {verdict}"
    )


def dead_letter_text(reasons: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "0"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.machine()


def report(outcomes: Sequence[Outcome], wall_seconds: float) -> str:
    machine = f"{cpu_model()} ({os.cpu_count()} CPUs), Linux {platform.release()}, Python {platform.python_version()}"
    lines = [
        "# Reliability under faults",
        "",
        "Written by `make chaos` (scripts/lab/chaos); do not edit by hand. Each scenario connects Python",
        "clients (`clients/python/realtime_client`, with their dedup and gap repair) to the stack on the",
        "local emulator, publishes a known set of events while a fault is injected, and checks what every",
        "client handed on. **Lost**: events a client never handed on that the store does not have either;",
        "**unrepaired**: events a client had not handed on by the deadline (120 s after the last publish)",
        "although the store has them; **duplicates**: events a client handed on more than once;",
        "**stored twice**: events with more than one item on their topic; **DLQ**: messages that reached a",
        "dead-letter queue, by reason; **complete after**: from the last publish until every client had",
        "every event.",
        "",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {source_revision()}, on {machine}; ministack (the",
        "emulator) runs the functions",
        f"on this machine. {len(outcomes)} scenarios in {wall_seconds:.0f} s.",
        "",
        "| scenario | events x clients | lost | unrepaired | duplicates after dedup | stored twice | DLQ "
        "| complete after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        complete = "never" if outcome.complete_after is None else f"{outcome.complete_after:.1f} s"
        lines.append(
            f"| {outcome.title} | {outcome.events} x {outcome.clients} | {outcome.lost} | {outcome.unrepaired} | "
            f"{outcome.duplicates} | {outcome.stored_twice} | {dead_letter_text(outcome.dead_letters)} | {complete} |"
        )
    for outcome in outcomes:
        lines += ["", f"## {outcome.title}", "", outcome.simulated, "", "| figure | value |", "|---|---|"]
        lines.append(f"| result | {'passed' if outcome.passed else 'FAILED: ' + '; '.join(outcome.problems)} |")
        lines += [f"| {name} | {value} |" for name, value in outcome.figures.items()]
        lines.append(f"| scenario wall time | {outcome.wall_seconds:.0f} s |")
    lines += [
        "",
        "## What is simulated, and what is not",
        "",
        "- The faults are injected from outside the functions: loopback proxies the functions are pointed at",
        "  through their configuration (`CONNECTIONS_ENDPOINT`, `AWS_ENDPOINT_URL_DYNAMODB`), the Lambda API",
        "  (a function's timeout) and the SQS API (the visibility timeout). The production code has no test hooks.",
        "- The emulator is not AWS: its Lambda runs the functions on this machine, its SQS-to-Lambda mapping",
        "  ignores batching windows, and it enforces no throttling of its own.",
        "  The figures show how the design behaves under each fault, not AWS's timings.",
        "- The proxies' choice of failing requests is deterministic (a hash of the request and a seed), and",
        "  every fault is bounded: a request that failed its given number of times is forwarded.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.lab.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, default=os.environ.get("REALTIME_STACK_ENDPOINTS"))
    parser.add_argument("--only", nargs="*", default=[], choices=[spec.name for spec in SCENARIOS])
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    started = time.monotonic()
    if args.endpoints:
        outcomes = asyncio.run(run(read_endpoints(args.endpoints), args.only))
    else:
        with tempfile.TemporaryDirectory(prefix="realtime-chaos-") as tmp, stack_on_free_port(Path(tmp)) as endpoints:
            outcomes = asyncio.run(run(endpoints, args.only))
    args.report.write_text(report(outcomes, time.monotonic() - started))
    print(f"==> {args.report}")
    failed = [outcome.name for outcome in outcomes if not outcome.passed]
    if failed:
        sys.exit(f"chaos: {', '.join(failed)} lost, duplicated or failed a check")


if __name__ == "__main__":
    main()
