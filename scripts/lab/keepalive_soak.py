"""Keepalive soak on the emulator: N WebSockets pinging for M minutes lose no event and invoke no function.

    python -m scripts.lab.keepalive_soak [--sockets 1000] [--minutes 10] [--ping-interval 60] [--event-every 5]
                                         [--connect-concurrency 32] [--group-presence]

KEEPALIVE_SOCKETS and KEEPALIVE_MINUTES set the defaults (`make soak-keepalive`). It always starts its own
emulator on a free loopback port: ministack run through scripts/lab/counted_emulator.py, which counts every
Lambda invocation per function and per trigger where the emulator makes it (its worker pool), since the
emulator logs nothing for the invocations of WebSocket routes. It applies the stack, and stops it afterwards.

1. Opening: N raw WebSockets (the `websockets` package), each with its own user's token, every user in
   one group; `--connect-concurrency` handshakes at a time, connects/s measured. Raw sockets rather than
   the Python client: measured on this 2-core machine, a raw socket costs about 55 KB in this process and
   nothing else; a client about 0.9 MB and one events-api invocation (its catch-up read) per open, which
   would muddy the invocation counts.
2. Steady window, M minutes: every socket sends {"action":"ping"} every `--ping-interval` seconds (60, both
   clients' default), the first after a random jitter within one interval; one event every
   `--event-every` seconds goes to the group. The emulator's memory and CPU are sampled.
3. Closing: every socket closes; $disconnect and the offline checks run; the connection records are
   counted.

It fails (exit status 1) unless: every socket received every event of the window exactly once (by id);
pongs equal pings; no socket dropped; ws-connect ran once per socket opened and ws-disconnect once per
socket closed; in the window every invocation is explained by the events or maintenance's schedule
(process-events by events-queue records, exactly the events published; fanout by at most its jobs per
event; maintenance by at most its schedule's ticks; nothing else, no WebSocket route at all), so no
ping reached a function; no connection record is left at the end.

Group presence is the module's default, off: examples/local turns it on for its demo, and with N users in
one group it costs about N^2/2 posts as they come online (variables.tf). The run sets
GROUP_PRESENCE_ENABLED=false on the functions that read it; `--group-presence` keeps it on.

The report is printed and written to test-artifacts/keepalive-soak.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from scripts.lab.chaos.harness import Reconfigured, Stack, functions_with
from scripts.lab.counted_emulator import COUNTS_ENV
from scripts.lab.soak import children, emulator_pid, rss_mb
from scripts.local.emulator import ROOT
from scripts.local.local_stack import stack_on_free_port

EVENT_TYPE = "keepalive.tick"
ARTIFACT = ROOT / "test-artifacts" / "keepalive-soak.md"
COUNTED_EMULATOR = [
    str(ROOT / ".venv-ministack" / "bin" / "python"),
    str(ROOT / "scripts" / "lab" / "counted_emulator.py"),
]
WS_FUNCTIONS = ("ws-connect", "ws-disconnect")
SAMPLE_EVERY = 30.0  # seconds between samples of the emulator's memory and CPU
DELIVERY_DEADLINE = 90.0  # seconds after the window for the last events to reach every socket
FD_MARGIN = 256  # descriptors besides the sockets (files, pipes, boto3's pools)

Counts = dict[str, dict[str, int]]  # function key -> trigger -> invocations (or records)


# --- the invocation counts (pure) ---------------------------------------------------------------


def by_key(raw: Mapping[str, Mapping[str, int]], names: Mapping[str, str]) -> Counts:
    """Counts keyed by the stack's function keys (`ws-connect`) instead of names (`rt-local-ws-connect`)."""
    key_of = {name: key for key, name in names.items()}
    return {key_of.get(name, name): dict(triggers) for name, triggers in raw.items()}


def delta(before: Counts, after: Counts) -> Counts:
    """What grew from `before` to `after`, per function and trigger (only what grew)."""
    grown: Counts = {}
    for function, triggers in after.items():
        for trigger, count in triggers.items():
            if (n := count - before.get(function, {}).get(trigger, 0)) > 0:
                grown.setdefault(function, {})[trigger] = n
    return grown


def total(counts: Counts, function: str) -> int:
    return sum(counts.get(function, {}).values())


def route_invocations(counts: Counts) -> Counter[str]:
    """Invocations per WebSocket or HTTP route (`$connect`, `ping`, ...), whichever function they reached."""
    routes: Counter[str] = Counter()
    for triggers in counts.values():
        for trigger, count in triggers.items():
            if trigger.startswith("route "):
                routes[trigger.removeprefix("route ")] += count
    return routes


def rate_seconds(expression: str) -> float | None:
    """The period of an EventBridge `rate(...)` expression, in seconds; None for cron() or anything else."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        return None
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match[2].removesuffix("s")]
    return int(match[1]) * unit


@dataclass(frozen=True)
class Allowance:
    """What may invoke functions during the steady window: the events published, and maintenance's schedule."""

    events: int
    events_queue: str  # name of the events queue
    fanout_jobs_per_event: int
    maintenance_ticks: int | None  # None: the schedule is not a rate(): not bounded here


def jobs_per_event(sockets: int, threshold: int, page_size: int) -> int:
    """fanout jobs one event to `sockets` connections makes: process-events posts `threshold` itself."""
    return math.ceil(max(0, sockets - threshold) / page_size)


def ticks(window_seconds: float, period: float | None) -> int | None:
    """Most runs of a schedule of `period` seconds inside a window (one more for the phase)."""
    return None if period is None else math.floor(window_seconds / period) + 1


def unexplained(invocations: Counts, records: Counts, allowed: Allowance) -> list[str]:
    """The window's invocations that neither the events published nor maintenance's schedule explain."""
    found = []
    for function, triggers in sorted(invocations.items()):
        for trigger, count in sorted(triggers.items()):
            if function == "process-events" and trigger == f"sqs {allowed.events_queue}":
                got = records.get(function, {}).get(trigger, 0)
                if got != allowed.events or count > allowed.events:
                    found.append(
                        f"process-events: {count} invocations with {got} events-queue records "
                        f"for {allowed.events} events published"
                    )
            elif function == "fanout" and trigger.startswith("sqs "):
                if count > allowed.events * allowed.fanout_jobs_per_event:
                    found.append(
                        f"fanout: {count} invocations, more than {allowed.fanout_jobs_per_event} jobs "
                        f"x {allowed.events} events"
                    )
            elif function == "maintenance" and trigger == "direct":
                if allowed.maintenance_ticks is not None and count > allowed.maintenance_ticks:
                    found.append(f"maintenance: {count} runs, more than its schedule's {allowed.maintenance_ticks}")
            else:
                found.append(f"{function}: {count} invocations by {trigger}")
    return found


# --- what the sockets got (pure) ----------------------------------------------------------------


@dataclass
class Receipts:
    """One socket's frames: pongs, and the run's events by id (how often, when first)."""

    pings: int = 0
    pongs: int = 0
    events: Counter[str] = field(default_factory=Counter)
    first_at: dict[str, float] = field(default_factory=dict)
    other_frames: int = 0

    def frame(self, raw: str | bytes, at: float) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            self.other_frames += 1
            return
        if not isinstance(frame, dict):
            self.other_frames += 1
        elif frame.get("type") == "pong":
            self.pongs += 1
        elif frame.get("type") == EVENT_TYPE and isinstance(frame.get("id"), str):
            self.events[frame["id"]] += 1
            self.first_at.setdefault(frame["id"], at)
        else:
            self.other_frames += 1  # presence events, and anything else

    def missing(self, ids: Sequence[str]) -> int:
        return sum(1 for event_id in ids if event_id not in self.events)


@dataclass(frozen=True)
class Deliveries:
    expected: int  # sockets x events
    received: int  # distinct (socket, event) pairs
    missing: int
    duplicates: int  # frames beyond the first of an event on a socket
    unexpected: int  # frames of ids that were not published
    sockets_complete: int  # sockets with every event exactly once
    latencies: list[float]  # seconds, publish to first receipt, every (socket, event)


def deliveries(receipts: Sequence[Receipts], sent_at: Mapping[str, float]) -> Deliveries:
    ids = list(sent_at)
    received = missing = duplicates = unexpected = complete = 0
    latencies = []
    for socket in receipts:
        gaps = socket.missing(ids)
        extra = sum(count - 1 for count in socket.events.values() if count > 1)
        strangers = sum(count for event_id, count in socket.events.items() if event_id not in sent_at)
        received += len(ids) - gaps
        missing += gaps
        duplicates += extra
        unexpected += strangers
        complete += not (gaps or extra or strangers)
        latencies += [at - sent_at[event_id] for event_id, at in socket.first_at.items() if event_id in sent_at]
    return Deliveries(len(ids) * len(receipts), received, missing, duplicates, unexpected, complete, latencies)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def ping_times(jitter: float, interval: float, window: float) -> list[float]:
    """When a socket pings, in seconds from the window's start: after its jitter, then every interval."""
    count = math.ceil((window - jitter) / interval) if window > jitter else 0
    return [jitter + n * interval for n in range(count)]


# --- the report (pure) --------------------------------------------------------------------------


@dataclass
class Sample:
    at: float  # seconds from the window's start
    emulator_mb: float
    workers_mb: float
    workers: int
    emulator_cpu: float  # seconds of CPU so far (user + system)
    client_mb: float
    emulator_tcp: int = 0  # established TCP connections on the emulator's port (the sockets, the functions' pools)


@dataclass
class Result:
    sockets: int
    minutes: float
    ping_interval: float
    event_every: float
    concurrency: int
    group_presence: bool
    command: str
    started_at: str
    opened: int = 0
    open_seconds: float = 0.0
    failed_handshakes: int = 0  # attempts that did not open (each socket has 3)
    open_failures: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    pings: int = 0
    pongs: int = 0
    sockets_pings_equal_pongs: int = 0
    events: int = 0
    delivery: Deliveries | None = None
    phases: dict[str, Counts] = field(default_factory=dict)  # phase -> invocations that grew in it
    window_records: Counts = field(default_factory=dict)
    allowance: Allowance | None = None
    start_lines: dict[str, int] = field(default_factory=dict)  # function -> START lines in its log group
    log_events: dict[str, int] = field(default_factory=dict)  # function -> events in its log group
    samples: list[Sample] = field(default_factory=list)
    emulator_mb_before: float = 0.0
    emulator_mb_end: float = 0.0
    window_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    tables_end: dict[str, int] = field(default_factory=dict)
    disconnected_after: float | None = None  # seconds from closing until every $disconnect was dispatched
    emptied_after: float | None = None  # seconds from closing until no record and nobody online was left
    fd_limit: tuple[int, int] = (0, 0)

    @property
    def connects_per_second(self) -> float:
        return self.opened / self.open_seconds if self.open_seconds else 0.0

    def problems(self) -> list[str]:
        found = (
            [f"{len(self.open_failures)} sockets did not open: {self.open_failures[0]}"] if self.open_failures else []
        )
        if self.dropped:
            found.append(f"{len(self.dropped)} sockets dropped during the run: {self.dropped[0]}")
        if self.pings != self.pongs:
            found.append(f"{self.pings} pings sent, {self.pongs} pongs received")
        if not self.events:
            found.append("no event was published")
        delivery = self.delivery
        if delivery and (delivery.missing or delivery.duplicates or delivery.unexpected):
            found.append(
                f"events: {delivery.missing} (socket, event) pairs missing, {delivery.duplicates} duplicates, "
                f"{delivery.unexpected} unexpected"
            )
        whole_run = merged(self.phases.values())
        connects, disconnects = total(whole_run, "ws-connect"), total(whole_run, "ws-disconnect")
        # A failed handshake may or may not have reached ws-connect (and, once accepted, ws-disconnect).
        if not self.opened <= connects <= self.opened + self.failed_handshakes:
            found.append(f"ws-connect ran {connects} times for {self.opened} sockets opened")
        if not self.opened <= disconnects <= self.opened + self.failed_handshakes:
            found.append(f"ws-disconnect ran {disconnects} times for {self.opened} sockets closed")
        keepalive_routes = {r: n for r, n in route_invocations(whole_run).items() if r in {"ping", "$default"}}
        if keepalive_routes:
            found.append(f"the keepalive routes invoked functions: {keepalive_routes}")
        if self.allowance is not None:
            found += unexplained(self.phases.get("window", {}), self.window_records, self.allowance)
        if self.tables_end.get("connection records"):
            found.append(f"{self.tables_end['connection records']} connection records left after closing")
        return found


def merged(phases: Any) -> Counts:
    together: Counts = {}
    for counts in phases:
        for function, triggers in counts.items():
            for trigger, count in triggers.items():
                together.setdefault(function, {})[trigger] = together.get(function, {}).get(trigger, 0) + count
    return together


def cpu_share(samples: Sequence[Sample]) -> float:
    """The emulator's CPU over the window, as a share of one core."""
    if len(samples) < 2 or samples[-1].at <= samples[0].at:
        return 0.0
    return (samples[-1].emulator_cpu - samples[0].emulator_cpu) / (samples[-1].at - samples[0].at)


def triggers_text(triggers: Mapping[str, int]) -> str:
    return ", ".join(f"{count} by {trigger}" for trigger, count in sorted(triggers.items())) or "0"


def render(result: Result) -> str:
    delivery = result.delivery or deliveries([], {})
    window = result.phases.get("window", {})
    functions = sorted({f for counts in result.phases.values() for f in counts} | set(result.log_events))
    latencies_ms = [1000 * value for value in delivery.latencies]
    peak = max(result.samples, key=lambda s: s.emulator_mb, default=None)
    problems = result.problems()
    lines = [
        f"# Keepalive soak: {result.sockets:,} sockets x {result.minutes:g} minutes",
        "",
        f"`{result.command}`, started {result.started_at} on the local emulator (ministack, "
        f"{os.cpu_count()} cores). Raw WebSockets, one user each, all in one group; "
        f'{{"action":"ping"}} every {result.ping_interval:g} s after a random initial jitter; one event every '
        f"{result.event_every:g} s to the group. Group presence {'on' if result.group_presence else 'off'}. "
        f"File descriptors: soft limit {result.fd_limit[0]:,} (hard {result.fd_limit[1]:,}).",
        "",
        f"**{'PASSED' if not problems else 'FAILED'}**" + ("" if not problems else ": " + "; ".join(problems)),
        "",
        "## Sockets and keepalives",
        "",
        "| figure | value |",
        "|---|---|",
        f"| sockets opened | {result.opened:,} of {result.sockets:,} ({len(result.open_failures)} failed, "
        f"{result.failed_handshakes} failed handshakes) |",
        f"| connects/s while opening | {result.connects_per_second:.1f} ({result.open_seconds:.1f} s, "
        f"{result.concurrency} handshakes at a time) |",
        f"| dropped during the run | {len(result.dropped)} |",
        f"| pings sent / pongs received | {result.pings:,} / {result.pongs:,} "
        f"(equal on {result.sockets_pings_equal_pongs:,} of {result.opened:,} sockets) |",
        f"| steady window | {result.window_seconds:.0f} s |",
        "",
        "## Events",
        "",
        "| figure | value |",
        "|---|---|",
        f"| events published | {result.events} |",
        f"| (socket, event) deliveries expected / received | {delivery.expected:,} / {delivery.received:,} |",
        f"| missing / duplicates / unexpected | {delivery.missing} / {delivery.duplicates} / {delivery.unexpected} |",
        f"| sockets with every event exactly once | {delivery.sockets_complete:,} of {result.opened:,} |",
        f"| publish to socket, p50 / p95 / p99 / max | {percentile(latencies_ms, 0.5):.0f} / "
        f"{percentile(latencies_ms, 0.95):.0f} / {percentile(latencies_ms, 0.99):.0f} / "
        f"{max(latencies_ms, default=0):.0f} ms |",
        "",
        "## Lambda invocations, counted where the emulator makes them",
        "",
        "Every invocation of a Python function passes through ministack's worker pool (`Worker.invoke`); "
        "scripts/lab/counted_emulator.py counts them there, per function and trigger. START lines: what the "
        "emulator wrote to the function's log group over the whole run (it writes none for WebSocket-route "
        "invocations, so they cannot be counted from the logs).",
        "",
        "| function | opening | steady window | closing | whole run | START lines | log events |",
        "|---|---|---|---|---|---|---|",
    ]
    for function in functions:
        counts = [total(result.phases.get(phase, {}), function) for phase in ("opening", "window", "closing")]
        lines.append(
            f"| {function} | {counts[0]:,} | {counts[1]:,} | {counts[2]:,} | {sum(counts):,} | "
            f"{result.start_lines.get(function, 0):,} | {result.log_events.get(function, 0):,} |"
        )
    routes = route_invocations(merged(result.phases.values()))
    allowance = result.allowance
    lines += [
        "",
        f"In the window ({result.pings:,} pings, {result.events} events): "
        + ("; ".join(f"{f} {triggers_text(t)}" for f, t in sorted(window.items())) or "no invocation")
        + ". Route invocations over the whole run: "
        + (", ".join(f"`{route}` {count:,}" for route, count in sorted(routes.items())) or "none")
        + "; `ping` 0, `$default` 0"
        + (" (as required)." if not {"ping", "$default"} & set(routes) else " (REQUIRED 0).")
        + (
            f" Allowed in the window: process-events for the {allowance.events} events-queue records, fanout "
            f"{allowance.fanout_jobs_per_event} job(s) per event, maintenance "
            f"{'unbounded (cron)' if allowance.maintenance_ticks is None else allowance.maintenance_ticks} "
            "scheduled run(s)."
            if allowance
            else ""
        ),
        "",
        "## Emulator",
        "",
        f"RSS before the sockets {result.emulator_mb_before:.0f} MB; at the end (sockets closed) "
        f"{result.emulator_mb_end:.0f} MB; peak in the window "
        f"{peak.emulator_mb if peak else 0:.0f} MB. Emulator CPU in the window: {100 * cpu_share(result.samples):.0f}% "
        f"of one core. This process (the sockets): {peak.client_mb if peak else 0:.0f} MB, "
        f"{result.client_cpu_seconds:.0f} s of CPU over the whole run.",
        "",
        "| window (min) | emulator MB | its TCP connections | Lambda workers | workers MB | this process MB |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s.at / 60:.1f} | {s.emulator_mb:.0f} | {s.emulator_tcp:,} | {s.workers} | {s.workers_mb:.0f} | "
        f"{s.client_mb:.0f} |"
        for s in result.samples
    ]
    lines += ["", "## Tables after closing every socket", "", "| item | count |", "|---|---|"]
    lines += [f"| {name} | {count} |" for name, count in result.tables_end.items()]
    if result.disconnected_after is not None:
        lines += [
            "",
            f"Every $disconnect had reached the emulator's worker pool {result.disconnected_after:.1f} s after the "
            "sockets were closed",
        ]
        lines[-1] += (
            f"; no connection record and nobody online {result.emptied_after:.0f} s after (the offline checks "
            "wait for the grace period)."
            if result.emptied_after is not None
            else "."
        )
    return "\n".join(lines) + "\n"


# --- the run ------------------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by the emulator); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < needed:
        sys.exit(f"{needed} file descriptors needed, the hard limit is {hard}: fewer --sockets, or raise it")
    return soft, hard


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def established(port: int, table: str = "/proc/net/tcp") -> int:
    """Established IPv4 TCP connections whose local port is `port` (the server's side of each)."""
    try:
        with open(table) as file:
            rows = file.read().splitlines()[1:]
    except OSError:
        return 0
    return sum(1 for row in rows if (f := row.split())[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port)


def read_counts(path: Path) -> tuple[dict, dict]:
    snapshot = json.loads(path.read_text())
    return snapshot["invocations"], snapshot["records"]


async def settled_counts(path: Path, quiet: float = 5.0, timeout: float = 300.0) -> tuple[dict, dict]:
    """The counts once they have not changed for `quiet` seconds (or at `timeout`)."""
    last, since = read_counts(path), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = read_counts(path)
        if now != last:
            last, since = now, time.monotonic()
    return last


class KeepaliveSoak:
    def __init__(self, stack: Stack, counts_file: Path, options: argparse.Namespace, result: Result) -> None:
        self.stack = stack
        self.counts_file = counts_file
        self.options = options
        self.result = result
        self.group = f"keepalive-{uuid.uuid4().hex[:6]}"
        self.sockets: list[Any] = []
        self.receipts: list[Receipts] = []
        self.readers: list[asyncio.Task] = []
        self.closing = False
        self.sent_at: dict[str, float] = {}
        self.port = urlsplit(stack.endpoints["emulator_endpoint"]).port
        self.emulator = emulator_pid(self.port)
        self.names = stack.functions

    def counts(self, raw: dict) -> Counts:
        return by_key(raw, self.names)

    # -- opening ------------------------------------------------------------------------------

    async def open_one(self, n: int, semaphore: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect  # the dev venv has it; the tests need not

        token = self.stack.token(f"{self.group}-u{n:05d}", [self.group])
        url = f"{self.stack.endpoints['websocket_url']}?token={quote(token, safe='')}"
        error: Exception | None = None
        for _attempt in range(3):
            async with semaphore:
                try:
                    socket = await connect(url, ping_interval=None, open_timeout=60, close_timeout=5)
                except Exception as failure:  # refused, timed out: tried again, then reported
                    error = failure
                    self.result.failed_handshakes += 1
                    continue
            receipts = Receipts()
            self.sockets.append(socket)
            self.receipts.append(receipts)
            self.readers.append(asyncio.create_task(self.read(socket, receipts)))
            self.result.opened += 1
            if self.result.opened % max(1, self.options.sockets // 10) == 0:
                print(f"    {self.result.opened:5d} open", flush=True)
            return
        self.result.open_failures.append(f"socket {n}: {type(error).__name__}: {error}")

    async def read(self, socket: Any, receipts: Receipts) -> None:
        try:
            async for raw in socket:
                receipts.frame(raw, time.time())
        except Exception as error:  # a dropped socket is reported below
            reason = f"{type(error).__name__}: {error}"
        else:
            reason = f"closed {socket.close_code} {socket.close_reason or ''}".strip()
        if not self.closing:
            self.result.dropped.append(reason)

    async def open_all(self) -> None:
        semaphore = asyncio.Semaphore(self.options.connect_concurrency)
        started = time.monotonic()
        await asyncio.gather(*(self.open_one(n, semaphore) for n in range(self.options.sockets)))
        self.result.open_seconds = time.monotonic() - started

    # -- the steady window --------------------------------------------------------------------

    async def pinger(self, socket: Any, receipts: Receipts, start: float) -> None:
        jitter = random.uniform(0, self.options.ping_interval)
        for offset in ping_times(jitter, self.options.ping_interval, self.result.window_seconds):
            await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
            try:
                await socket.send('{"action":"ping"}')
            except Exception:  # the reader reports the drop
                return
            receipts.pings += 1

    async def publisher(self, start: float) -> None:
        publisher = self.stack.publisher()
        run = uuid.uuid4().hex[:6]
        n = 0
        while (offset := n * self.options.event_every) < self.result.window_seconds:
            await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
            event_id = f"{self.group}-{run}-{n:05d}"
            self.sent_at[event_id] = time.time()
            await asyncio.to_thread(
                publisher.publish, EVENT_TYPE, {"n": n}, audience=[f"group:{self.group}"], id=event_id
            )
            n += 1
        self.result.events = n

    def sample(self, start: float) -> Sample:
        workers = children(self.emulator) if self.emulator else []
        return Sample(
            at=time.monotonic() - start,
            emulator_mb=rss_mb(self.emulator) if self.emulator else 0.0,
            workers_mb=sum(rss_mb(worker) for worker in workers),
            workers=len(workers),
            emulator_cpu=cpu_seconds(self.emulator) if self.emulator else 0.0,
            client_mb=rss_mb(os.getpid()),
            emulator_tcp=established(self.port),
        )

    async def sampler(self, start: float) -> None:
        end = start + self.result.window_seconds
        while True:
            sample = await asyncio.to_thread(self.sample, start)
            self.result.samples.append(sample)
            pings = sum(r.pings for r in self.receipts)
            pongs = sum(r.pongs for r in self.receipts)
            print(
                f"    {sample.at / 60:5.1f} min: {len(self.sent_at)} events, {pings:,} pings, {pongs:,} pongs, "
                f"emulator {sample.emulator_mb:.0f} MB and {sample.emulator_tcp:,} TCP connections, "
                f"{sample.workers} workers {sample.workers_mb:.0f} MB",
                flush=True,
            )
            if time.monotonic() >= end:
                return
            await asyncio.sleep(min(SAMPLE_EVERY, max(0.0, end - time.monotonic())))

    async def steady_window(self) -> None:
        start = time.monotonic()
        await asyncio.gather(
            self.publisher(start),
            self.sampler(start),
            *(self.pinger(s, r, start) for s, r in zip(self.sockets, self.receipts, strict=True)),
        )
        deadline = time.monotonic() + DELIVERY_DEADLINE
        ids = list(self.sent_at)
        while time.monotonic() < deadline and any(r.missing(ids) for r in self.receipts):
            await asyncio.sleep(0.5)
        pong_deadline = time.monotonic() + 10
        while time.monotonic() < pong_deadline and any(r.pongs < r.pings for r in self.receipts):
            await asyncio.sleep(0.2)

    # -- closing and what is left ---------------------------------------------------------------

    async def close_all(self) -> float:
        """Close every socket and wait for their $disconnects; returns when they were closed (monotonic)."""
        self.closing = True
        before = self.counts(read_counts(self.counts_file)[0])
        closed_at = time.monotonic()
        await asyncio.gather(*(socket.close() for socket in self.sockets), return_exceptions=True)
        await asyncio.gather(*self.readers, return_exceptions=True)
        deadline = time.monotonic() + 120 + self.result.opened / 5
        while time.monotonic() < deadline:
            now = self.counts(read_counts(self.counts_file)[0])
            if total(delta(before, now), "ws-disconnect") >= self.result.opened:
                self.result.disconnected_after = time.monotonic() - closed_at
                break
            await asyncio.sleep(0.5)
        return closed_at

    def table_counts(self) -> dict[str, int]:
        dynamodb, endpoints = self.stack.aws("dynamodb"), self.stack.endpoints

        def scan(table: str, expression: str, values: dict, names: dict | None = None) -> int:
            filters: dict[str, Any] = {"FilterExpression": expression}
            if values:
                filters["ExpressionAttributeValues"] = values
            if names:
                filters["ExpressionAttributeNames"] = names
            paginator = dynamodb.get_paginator("scan")
            return sum(page["Count"] for page in paginator.paginate(TableName=table, **filters))

        connections, presence = endpoints["connections_table_name"], endpoints["presence_table_name"]
        position = {":position": {"S": "maintenance#"}}
        return {
            "connection records": scan(connections, "sk = :meta", {":meta": {"S": "meta"}}),
            "other connections table items (sessions, subscriptions)": scan(
                connections, "NOT begins_with(pk, :position)", position
            ),
            "maintenance's scan positions (connections table)": scan(
                connections, "begins_with(pk, :position)", position
            ),
            "users with sessions": scan(presence, "attribute_exists(connections)", {}),
            "users online": scan(
                presence, "#online = :yes", {":yes": {"BOOL": True}}, {"#online": "online"}
            ),  # `online` is a reserved word
        }

    async def tables_when_empty(self, closed_at: float, timeout: float = 180.0) -> dict[str, int]:
        """The tables once no connection record is left and nobody is online (the offline checks done), or at
        `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            tables = await asyncio.to_thread(self.table_counts)
            if not (tables["connection records"] or tables["users online"]):
                self.result.emptied_after = time.monotonic() - closed_at
                return tables
            if time.monotonic() > deadline:
                return tables
            await asyncio.sleep(2)

    def log_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Per function: START lines in its log group (the emulator writes them for some triggers only), and
        all its log events (the emulator keeps every one in memory)."""
        logs, starts, events = self.stack.aws("logs"), {}, {}
        for key, group in self.stack.endpoints["log_group_names"].items():
            if key not in self.names:
                continue
            starts[key] = events[key] = 0
            token = None
            with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
                while True:
                    page = logs.filter_log_events(logGroupName=group, **({"nextToken": token} if token else {}))
                    messages = [event["message"] for event in page.get("events", [])]
                    starts[key] += sum(1 for message in messages if message.startswith("START RequestId"))
                    events[key] += len(messages)
                    token = page.get("nextToken")
                    if not token:
                        break
        return starts, events

    def allowance(self, events: int) -> Allowance:
        lambda_client = self.stack.aws("lambda")

        def variable(function: str, name: str) -> int:
            config = lambda_client.get_function_configuration(FunctionName=self.names[function])
            return int(config["Environment"]["Variables"][name])

        schedule = self.stack.aws("scheduler").get_schedule(Name=self.stack.endpoints["maintenance_schedule_name"])
        return Allowance(
            events=events,
            events_queue=self.stack.endpoints["events_queue_url"].rsplit("/", 1)[1],
            fanout_jobs_per_event=jobs_per_event(
                self.result.opened,
                variable("process-events", "FANOUT_THRESHOLD"),
                variable("fanout", "FANOUT_PAGE_SIZE"),
            ),
            maintenance_ticks=ticks(self.result.window_seconds, rate_seconds(schedule["ScheduleExpression"])),
        )

    # -- the whole run ---------------------------------------------------------------------------

    async def run(self) -> None:
        result, options = self.result, self.options
        if not options.group_presence:
            changes = {f: {"Environment": {"GROUP_PRESENCE_ENABLED": "false"}} for f in self.group_presence_functions()}
            await asyncio.to_thread(Reconfigured(self.stack, changes).apply)
        result.emulator_mb_before = rss_mb(self.emulator) if self.emulator else 0.0
        start_counts = await settled_counts(self.counts_file, quiet=2.0)

        print(f"==> opening {options.sockets:,} sockets ({options.connect_concurrency} at a time)", flush=True)
        await self.open_all()
        print(f"    {result.opened:,} open in {result.open_seconds:.1f} s: {result.connects_per_second:.1f}/s")
        print("==> waiting for the connects' presence events to settle", flush=True)
        window_start = await settled_counts(self.counts_file)

        print(f"==> steady window: {options.minutes:g} min", flush=True)
        await self.steady_window()
        window_end = await settled_counts(self.counts_file, quiet=3.0)

        print("==> closing every socket", flush=True)
        closed_at = await self.close_all()
        await asyncio.sleep(int(self.stack.endpoints["presence_grace_period_seconds"]) + 5)  # offline checks
        result.tables_end = await self.tables_when_empty(closed_at)
        end = await settled_counts(self.counts_file)
        result.emulator_mb_end = rss_mb(self.emulator) if self.emulator else 0.0

        (i0, _), (i1, r1), (i2, r2), (i3, _) = start_counts, window_start, window_end, end
        result.phases = {
            "opening": delta(self.counts(i0), self.counts(i1)),
            "window": delta(self.counts(i1), self.counts(i2)),
            "closing": delta(self.counts(i2), self.counts(i3)),
        }
        result.window_records = delta(self.counts(r1), self.counts(r2))
        result.allowance = await asyncio.to_thread(self.allowance, result.events)
        result.start_lines, result.log_events = await asyncio.to_thread(self.log_counts)
        result.pings = sum(r.pings for r in self.receipts)
        result.pongs = sum(r.pongs for r in self.receipts)
        result.sockets_pings_equal_pongs = sum(1 for r in self.receipts if r.pings == r.pongs)
        result.delivery = deliveries(self.receipts, self.sent_at)

    def group_presence_functions(self) -> list[str]:
        return functions_with(self.stack, "GROUP_PRESENCE_ENABLED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=int(os.environ.get("KEEPALIVE_SOCKETS", "1000")))
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("KEEPALIVE_MINUTES", "10")))
    parser.add_argument("--ping-interval", type=float, default=60.0, help="seconds between a socket's pings")
    parser.add_argument("--event-every", type=float, default=5.0, help="seconds between events")
    parser.add_argument("--connect-concurrency", type=int, default=32, help="handshakes in flight while opening")
    parser.add_argument("--group-presence", action="store_true", help="keep the stack's group presence on")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    fd_limit = raise_fd_limit(args.sockets + FD_MARGIN)
    command = f"python -m scripts.lab.keepalive_soak --sockets {args.sockets} --minutes {args.minutes:g}"
    result = Result(
        sockets=args.sockets,
        minutes=args.minutes,
        ping_interval=args.ping_interval,
        event_every=args.event_every,
        concurrency=args.connect_concurrency,
        group_presence=args.group_presence,
        command=command,
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        window_seconds=args.minutes * 60,
        fd_limit=fd_limit,
    )
    with tempfile.TemporaryDirectory(prefix="realtime-keepalive-") as tmp:
        counts_file = Path(tmp) / "invocations.json"
        with stack_on_free_port(
            Path(tmp), emulator_command=COUNTED_EMULATOR, emulator_env={COUNTS_ENV: str(counts_file)}
        ) as endpoints:
            asyncio.run(KeepaliveSoak(Stack(endpoints), counts_file, args, result).run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.client_cpu_seconds = usage.ru_utime + usage.ru_stime
    text = render(result)
    print(text)
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(text)
    print(f"==> {ARTIFACT}")
    if problems := result.problems():
        sys.exit("keepalive soak: " + "; ".join(problems))


if __name__ == "__main__":
    main()
