"""A bounded soak run on the local stack: a steady low rate of events, clients coming and going.

    python -m scripts.lab.soak [--minutes 20] [--rate 2] [--clients 8] [--churn 15] [--endpoints .local/endpoints.json]

SOAK_MINUTES sets the default length. Without --endpoints (or
REALTIME_STACK_ENDPOINTS) it starts its own emulator on a free loopback port,
applies the stack, and stops it afterwards. All the while `--clients` Python
clients of one group are connected; every `--churn` seconds the oldest closes
and a new one (a new user) opens. Events go to the group at `--rate` per
second. Per window (a tenth of the run, at least a minute) it reports the
publish-to-handler latency percentiles, the emulator's and the functions'
memory (RSS of the ministack process and of its Lambda workers, found under
/proc), and at the end the tables' item counts before and after maintenance:
no connection records, no sessions and nobody online may be left once every
client has gone. Events a client missed while it was open are counted too.
The report is printed and written to test-artifacts/soak.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scripts.lab.chaos.harness import Recorder, Stack
from scripts.local.emulator import ROOT, read_endpoints
from scripts.local.local_stack import stack_on_free_port

EVENT_TYPE = "soak.tick"
ARTIFACT = ROOT / "test-artifacts" / "soak.md"
SETTLE = 3.0  # seconds after a client opens, or before it closes, whose events it is not held to


# --- memory -------------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, "rb") as file:
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def emulator_pid(port: int) -> int | None:
    """The ministack process listening on `port` (its GATEWAY_PORT), found among this user's processes."""
    for entry in os.listdir("/proc"):
        environment = "\0" + _read(f"/proc/{entry}/environ") if entry.isdigit() else ""
        if f"\0GATEWAY_PORT={port}\0" in environment and "ministack" in _read(f"/proc/{entry}/cmdline"):
            return int(entry)
    return None


def rss_mb(pid: int) -> float:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _read(f"/proc/{entry}/stat").rpartition(")")[2].split()[1:2] == [str(pid)]:
            found.append(int(entry))
    return found


@dataclass
class Memory:
    emulator_mb: float
    functions_mb: float
    workers: int


def memory(pid: int | None) -> Memory:
    """The emulator's RSS, and the sum over its Lambda workers (its child processes)."""
    if pid is None:
        return Memory(0.0, 0.0, 0)
    workers = children(pid)
    return Memory(rss_mb(pid), sum(rss_mb(worker) for worker in workers), len(workers))


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Window:
    started: float
    latencies: list[float] = field(default_factory=list)
    memory: Memory | None = None
    sent: int = 0


@dataclass
class Member:
    recorder: Recorder
    opened_at: float
    closed_at: float | None = None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Soak:
    def __init__(self, stack: Stack, minutes: float, rate: float, clients: int, churn: float) -> None:
        self.stack = stack
        self.seconds = minutes * 60
        self.rate = rate
        self.size = clients
        self.churn = churn
        self.group = f"soak-{uuid.uuid4().hex[:6]}"
        self.window_seconds = max(60.0, self.seconds / 10)
        self.sent_at: dict[str, float] = {}
        self.members: list[Member] = []
        self.windows: list[Window] = []
        self.opened = 0
        self.emulator = emulator_pid(urlsplit(stack.endpoints["emulator_endpoint"]).port)

    async def open_client(self) -> None:
        self.opened += 1
        client = self.stack.client(f"{self.group}-{self.opened}", self.group)
        recorder = Recorder(client, EVENT_TYPE)
        await client.start()
        await client.wait_for_state("open", timeout=60)
        self.members.append(Member(recorder, time.time()))

    async def close_oldest(self) -> None:
        member = next(m for m in self.members if m.closed_at is None)
        member.closed_at = time.time()
        await member.recorder.client.close()

    async def publish_steadily(self, until: float) -> None:
        publisher = self.stack.publisher()
        interval = 1 / self.rate
        next_at = time.monotonic()
        while time.monotonic() < until:
            event_id = f"{self.group}-{len(self.sent_at):06d}"
            self.sent_at[event_id] = time.time()
            await asyncio.to_thread(publisher.publish, EVENT_TYPE, {}, audience=[f"group:{self.group}"], id=event_id)
            self.windows[-1].sent += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def churn_clients(self, until: float) -> None:
        while time.monotonic() + self.churn < until:
            await asyncio.sleep(self.churn)
            await self.close_oldest()
            await self.open_client()

    async def sample(self, until: float) -> None:
        while time.monotonic() < until:
            await asyncio.sleep(min(self.window_seconds, max(0.0, until - time.monotonic())))
            self.windows[-1].memory = await asyncio.to_thread(memory, self.emulator)
            self.print_window(self.windows[-1])
            if time.monotonic() < until:
                self.windows.append(Window(time.time()))

    def print_window(self, window: Window) -> None:
        memory_now = window.memory
        print(
            f"    {(window.started - self.windows[0].started) / 60:5.1f} min: {window.sent} sent, "
            f"emulator {memory_now.emulator_mb:.0f} MB, functions {memory_now.functions_mb:.0f} MB "
            f"in {memory_now.workers} workers",
            flush=True,
        )

    async def run(self) -> dict[str, Any]:
        print(
            f"==> soak: {self.seconds / 60:.0f} min, {self.rate}/s to {self.size} clients, "
            f"one replaced every {self.churn:.0f} s"
        )
        baseline = await asyncio.to_thread(memory, self.emulator)
        await asyncio.gather(*(self.open_client() for _ in range(self.size)))
        self.windows.append(Window(time.time()))
        until = time.monotonic() + self.seconds
        await asyncio.gather(self.publish_steadily(until), self.churn_clients(until), self.sample(until))
        await asyncio.sleep(10)  # the last events arrive
        for member in self.members:
            if member.closed_at is None:
                member.closed_at = time.time()
                await member.recorder.client.close()
        self.attribute_latencies()
        grace = int(self.stack.endpoints["presence_grace_period_seconds"])
        await asyncio.sleep(grace + 10)  # $disconnects and the offline checks run
        before = await asyncio.to_thread(self.table_counts)
        report = await asyncio.to_thread(self.stack.invoke, "maintenance")
        after = await asyncio.to_thread(self.table_counts)
        return {"baseline": baseline, "before": before, "after": after, "maintenance": report}

    def attribute_latencies(self) -> None:
        """Each handed-on event's latency goes to the window it was sent in."""
        starts = deque(window.started for window in self.windows)
        for member in self.members:
            for event_id, at in member.recorder.first_at.items():
                sent = self.sent_at[event_id]
                index = max(n for n, start in enumerate(starts) if start <= sent) if sent >= starts[0] else 0
                self.windows[index].latencies.append(at - sent)

    def missed(self) -> tuple[int, int]:
        """(events a client was held to, of those never handed on): sent while it was open, away from its ends."""
        expected = missed = 0
        for member in self.members:
            for event_id, sent in self.sent_at.items():
                if member.opened_at + SETTLE <= sent <= member.closed_at - SETTLE:
                    expected += 1
                    missed += event_id not in member.recorder.first_at
        return expected, missed

    def table_counts(self) -> dict[str, int]:
        dynamodb = self.stack.aws("dynamodb")
        endpoints = self.stack.endpoints

        def scan(table: str, **filters: Any) -> int:
            return sum(page["Count"] for page in dynamodb.get_paginator("scan").paginate(TableName=table, **filters))

        return {
            "connection records": scan(
                endpoints["connections_table_name"],
                FilterExpression="sk = :meta",
                ExpressionAttributeValues={":meta": {"S": "meta"}},
            ),
            "connections table items": scan(endpoints["connections_table_name"]),
            "users with sessions": scan(
                endpoints["presence_table_name"], FilterExpression="attribute_exists(connections)"
            ),
            "users online": scan(
                endpoints["presence_table_name"],
                FilterExpression="#online = :yes",  # `online` is a reserved word
                ExpressionAttributeNames={"#online": "online"},
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            ),
            "presence table items": scan(endpoints["presence_table_name"]),
            "events table items": scan(endpoints["events_table_name"]),
        }

    def report(self, result: dict[str, Any]) -> str:
        expected, missed = self.missed()
        baseline = result["baseline"]
        lines = [
            f"# Soak run: {self.seconds / 60:.0f} minutes",
            "",
            f"{len(self.sent_at)} events at {self.rate}/s to group:{self.group}; {self.size} clients connected "
            f"throughout, one replaced every {self.churn:.0f} s ({self.opened} clients in all). "
            f"Events held to (sent while a client was open): {expected}, never handed on: {missed}.",
            "",
            f"Memory before the clients: emulator {baseline.emulator_mb:.0f} MB, functions "
            f"{baseline.functions_mb:.0f} MB in {baseline.workers} workers.",
            "",
            "| from (min) | events | p50 ms | p95 ms | p99 ms | max ms | emulator MB | functions MB | workers |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        start = self.windows[0].started
        for window in self.windows:
            memory_then = window.memory or Memory(0, 0, 0)
            latencies = [1000 * value for value in window.latencies] or [0.0]
            lines.append(
                f"| {(window.started - start) / 60:.1f} | {window.sent} | {statistics.median(latencies):.0f} | "
                f"{percentile(latencies, 0.95):.0f} | {percentile(latencies, 0.99):.0f} | {max(latencies):.0f} | "
                f"{memory_then.emulator_mb:.0f} | {memory_then.functions_mb:.0f} | {memory_then.workers} |"
            )
        lines += ["", "| table items, every client gone | before maintenance | after maintenance |", "|---|---|---|"]
        lines += [f"| {name} | {count} | {result['after'][name]} |" for name, count in result["before"].items()]
        maintenance = result["maintenance"]
        lines += [
            "",
            f"Maintenance: {maintenance.get('connections_checked')} checked, "
            f"{maintenance.get('connections_removed')} removed, {maintenance.get('orphan_sessions_removed')} orphan "
            f"sessions, {maintenance.get('offline_decided')} offline decided, errors {maintenance.get('errors')}.",
        ]
        return "\n".join(lines) + "\n"

    def problems(self, result: dict[str, Any]) -> list[str]:
        left = {name: result["after"][name] for name in ("connection records", "users with sessions", "users online")}
        found = [f"{count} {name} left after maintenance" for name, count in left.items() if count]
        _, missed = self.missed()
        if missed:
            found.append(f"{missed} events never handed on by a client that was open")
        return found


async def soak(endpoints: dict, minutes: float, rate: float, clients: int, churn: float) -> list[str]:
    run = Soak(Stack(endpoints), minutes, rate, clients, churn)
    result = await run.run()
    text = run.report(result)
    print(text)
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(text)
    print(f"==> {ARTIFACT}")
    return run.problems(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "20")))
    parser.add_argument("--rate", type=float, default=2.0, help="events per second")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--churn", type=float, default=15.0, help="seconds between a client leaving and a new one")
    parser.add_argument("--endpoints", type=Path, default=os.environ.get("REALTIME_STACK_ENDPOINTS"))
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    options = (args.minutes, args.rate, args.clients, args.churn)
    if args.endpoints:
        problems = asyncio.run(soak(read_endpoints(args.endpoints), *options))
    else:
        with tempfile.TemporaryDirectory(prefix="realtime-soak-") as tmp, stack_on_free_port(Path(tmp)) as endpoints:
            problems = asyncio.run(soak(endpoints, *options))
    if problems:
        sys.exit("soak: " + "; ".join(problems))


if __name__ == "__main__":
    main()
