"""A fallback storm on the local stack, with and without a ceiling on events-api (`make storm`).

    make storm            # STORM_USERS=1200 STORM_RATE=20 STORM_WAIT=2 STORM_CEILING=4

A regional WebSocket problem sends every client to HTTP long polling at once.
The load tool (locust, in .venv-load; users in scripts/lab/storm_locustfile.py)
starts STORM_RATE fallback clients a second until STORM_USERS (20 a second for
a minute by default), each behaving as the shipped clients do: a first read,
then long polls of STORM_WAIT seconds, backing off (Retry-After plus jitter)
when refused. The same load runs twice on one stack, side by side in one run:

1. without a ceiling: events-api may run as many executions as requests come;
2. with a ceiling (events-api's reserved concurrency, what the module's
   `events_api_reserved_concurrency` sets): past it, a request is refused at
   once with 429, and the clients back off.

For each: requests answered, refused and timed out, the emulator's Lambda
workers at their peak, and the time from the end of the load until a single
request (a first read) is answered within NORMAL_SECONDS again.

On AWS the HTTP API's route throttle (GET /events, 25/s) refuses first; the
emulator does not throttle HTTP APIs, so the ceiling stands in for it here
(EMULATOR.md). Writes test-artifacts/fallback-storm.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from scripts.lab.chaos.harness import Stack
from scripts.lab.soak import children, emulator_pid
from scripts.local.emulator import ROOT
from scripts.local.local_stack import stack_on_free_port

LOCUST = ROOT / ".venv-load" / "bin" / "locust"
LOCUSTFILE = ROOT / "scripts" / "lab" / "storm_locustfile.py"
ARTIFACT = ROOT / "test-artifacts" / "fallback-storm.md"
NORMAL_SECONDS = 2.0  # a first read answered within this is "served normally" (warm: about 0.1 s)
RECOVERY_LIMIT = 600.0  # seconds after the load to wait for a normal answer before giving up
PROBE_EVERY = 1.0


@dataclass
class Phase:
    name: str
    ceiling: int | None
    sent: int = 0
    answered: int = 0
    refused: int = 0
    timed_out: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    answered_median_s: float | None = None
    refused_median_s: float | None = None
    new_workers: int = 0  # the emulator's worker processes at the phase's peak, less those at its start
    recovery_s: float | None = None  # None: not served normally within RECOVERY_LIMIT

    @property
    def unfinished(self) -> int:
        """Requests cut off by the end of the load (neither answered, refused nor timed out yet)."""
        return (
            self.sent
            - self.answered
            - self.refused
            - self.timed_out
            - sum(n for status, n in self.statuses.items() if not _refusal(status))
        )


def _refusal(status: str) -> bool:
    code = int(status.split()[-1])
    return code == 429 or 500 <= code < 600


def read_result(phase: Phase, raw: dict) -> Phase:
    outcomes, durations = raw["outcomes"], raw["durations"]
    phase.sent = outcomes.get("sent", 0)
    phase.answered = outcomes.get("answered", 0)
    phase.refused = outcomes.get("refused", 0)
    phase.timed_out = outcomes.get("timed_out", 0)
    phase.statuses = {k: v for k, v in outcomes.items() if k.startswith("status ")}
    phase.answered_median_s = _median(durations.get("answered", []))
    phase.refused_median_s = _median(durations.get("refused", []))
    return phase


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def render(phases: list[Phase], options: dict) -> str:
    def cell(value: float | None, unit: str = " s") -> str:
        return "n/a" if value is None else f"{value:g}{unit}"

    lines = [
        "# Fallback storm on the local stack",
        "",
        f"Measured {options['date']} on this machine ({os.cpu_count()} cores), one run, both rows on one "
        f"emulator stack: {options['users']:,} fallback clients started at {options['rate']:g} a second "
        f"(locust {options['locust']}), each a first read then {options['wait']:g} s long polls, backing off as "
        "the clients do when refused; the load stops after "
        f"{options['users'] / options['rate']:g} s. `{options['command']}`.",
        "",
        "| events-api | requests | answered | refused (429/5xx) | timed out | cut off at the end "
        "| answer median | refusal median | Lambda workers started | until one request is served normally |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        recovery = f"> {RECOVERY_LIMIT:g} s" if p.recovery_s is None else f"{p.recovery_s:.1f} s"
        lines.append(
            f"| {p.name} | {p.sent:,} | {p.answered:,} | {p.refused:,} | {p.timed_out:,} | {p.unfinished:,} "
            f"| {cell(p.answered_median_s)} | {cell(p.refused_median_s)} | {p.new_workers} | {recovery} |"
        )
    lines += [
        "",
        f'"Served normally": a first read (no wait) answered 200 within {NORMAL_SECONDS:g} s, tried every '
        f"{PROBE_EVERY:g} s from the end of the load. Workers started: the emulator's child processes (one per "
        "Lambda execution environment, every function together) at the phase's peak, less those at its start. "
        "The phase with the ceiling runs first, so the other's leftover workers do not help it. "
        "The emulator does not throttle HTTP APIs; "
        "on AWS the GET /events route throttle (25/s by default) refuses with 429 before Lambda is reached.",
        "",
    ]
    return "\n".join(lines)


class WorkerCount:
    """The emulator's worker processes, sampled every second while a phase runs; keeps the peak."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.start = self.peak = len(children(pid)) if pid else 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerCount:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while self.pid and not self._stop.wait(1.0):
            self.peak = max(self.peak, len(children(self.pid)))


def first_read(url: str, token: str, timeout: float) -> tuple[int, float]:
    """One GET /events without waiting: (status, seconds); status 0 when there was no answer in time."""
    request = urllib.request.Request(f"{url}/events?since=now&limit=1", headers={"Authorization": f"Bearer {token}"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, time.monotonic() - started
    except OSError:
        return 0, time.monotonic() - started


def until_served(url: str, token: str, limit: float) -> float | None:
    """Seconds until a first read is answered 200 within NORMAL_SECONDS, or None past `limit`."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < limit:
        status, took = first_read(url, token, timeout=max(NORMAL_SECONDS, min(30.0, limit - elapsed)))
        if status == 200 and took <= NORMAL_SECONDS:
            return round(time.monotonic() - started, 1)
        time.sleep(max(0.0, PROBE_EVERY - took))
    return None


def set_ceiling(stack: Stack, ceiling: int | None) -> None:
    function = stack.functions["events-api"]
    client = stack.aws("lambda")
    if ceiling is None:
        client.delete_function_concurrency(FunctionName=function)
    else:
        client.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=ceiling)


def run_phase(stack: Stack, phase: Phase, options: argparse.Namespace, workdir: Path) -> Phase:
    url = stack.endpoints["http_api_url"].rstrip("/")
    token = stack.token("storm", ["storm"])
    set_ceiling(stack, phase.ceiling)
    if until_served(url, token, RECOVERY_LIMIT) is None:
        sys.exit(f"fallback storm: events-api does not answer before the {phase.name} phase")
    result_file = workdir / f"{phase.ceiling or 'none'}.json"
    command = [
        str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "--only-summary", "--loglevel", "WARNING",
        "--users", str(options.users), "--spawn-rate", str(options.rate),
        "--run-time", f"{options.users / options.rate:g}s", "--stop-timeout", "0", "--host", url,
    ]  # fmt: skip
    environment = {
        **os.environ,
        "STORM_TOKEN": token,
        "STORM_WAIT": str(options.wait),
        "STORM_RESULT": str(result_file),
    }
    print(f"==> {phase.name}: {options.users} clients at {options.rate}/s", flush=True)
    port = urlsplit(url).port
    with WorkerCount(emulator_pid(port) if port else None) as workers:
        subprocess.run(command, env=environment, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        phase.recovery_s = until_served(url, token, RECOVERY_LIMIT)
    phase.new_workers = max(0, workers.peak - workers.start)
    read_result(phase, json.loads(result_file.read_text()))
    print(f"    {asdict(phase)}", flush=True)
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=int(os.environ.get("STORM_USERS", "1200")))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("STORM_RATE", "20")))
    parser.add_argument("--wait", type=float, default=float(os.environ.get("STORM_WAIT", "2")))
    parser.add_argument("--ceiling", type=int, default=int(os.environ.get("STORM_CEILING", "4")))
    options = parser.parse_args()
    if not LOCUST.exists():
        sys.exit(f"fallback storm: {LOCUST} is missing (make storm installs it)")
    locust_version = subprocess.run([str(LOCUST), "--version"], capture_output=True, text=True).stdout.split()[1]
    phases = [Phase("no ceiling (before)", None), Phase(f"ceiling of {options.ceiling} (after)", options.ceiling)]
    with tempfile.TemporaryDirectory(prefix="realtime-storm-") as tmp, stack_on_free_port(Path(tmp)) as endpoints:
        stack = Stack(endpoints)
        for phase in reversed(phases):  # the ceiling first: the storm without it leaves workers behind
            run_phase(stack, phase, options, Path(tmp))
    text = render(
        phases,
        {
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "users": options.users,
            "rate": options.rate,
            "wait": options.wait,
            "locust": locust_version,
            "command": f"make storm STORM_USERS={options.users} STORM_RATE={options.rate:g} "
            f"STORM_WAIT={options.wait:g} STORM_CEILING={options.ceiling}",
        },
    )
    print(text)
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(text)
    ARTIFACT.with_suffix(".json").write_text(json.dumps([asdict(p) for p in phases], indent=2))
    print(f"==> {ARTIFACT}")


if __name__ == "__main__":
    main()
