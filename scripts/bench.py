"""Benchmarks on the local stack: broadcasts, latency and fan-out, measured side by side in one run.

    python -m scripts.bench [--endpoints .local/endpoints.json] [--sessions 60] [--events 30]
    BENCH_SCALE=large python -m scripts.bench    # adds the 100,000-connection broadcast

Without --endpoints (or REALTIME_STACK_ENDPOINTS) it starts its own emulator
on a free loopback port, applies the stack, and stops it afterwards.

What it prints:
  1. a broadcast to 1,000 and 10,000 simulated connections (100,000 with
     BENCH_SCALE=large): the gateway simulator (scripts/gateway_sim.py) answers
     each post after 20 ms, the connections are written straight into the
     table; time from send to the last accepted post, posts/s, and the same
     posts from a bare loop (the functions' own `@connections` client, as many
     posts in flight as DELIVERY_CONCURRENCY) against the same simulator: the
     ceiling, and the stack's share of it;
  2. publish-to-receive latency on a warm stack (one session, events sent one
     after another): median and p95, with the cold first event apart;
  3. fan-out of one event to N sessions with DELIVERY_CONCURRENCY=1 and with
     the module's default concurrency, and the ratio between them.

Figures from the emulator: its Lambda workers and API run on this machine, so
they show the shape of the costs (what concurrency buys, where time goes),
not AWS's absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import boto3
import websockets
from realtime.core import aws

from scripts.emulator import emulator_client, read_endpoints
from scripts.gateway_sim import SimulatorClient, simulator_process
from scripts.local_stack import stack_on_free_port
from scripts.mint_token import local_secret, mint_token
from scripts.simulated_audience import posting_to, simulated_audience

BROADCAST_SIZES = (1_000, 10_000)
LARGE_BROADCAST_SIZES = (*BROADCAST_SIZES, 100_000)


class Receiver:
    """One WebSocket session that timestamps every event frame it receives."""

    def __init__(self, socket):
        self.socket = socket
        self.arrivals: dict[str, float] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                frame = json.loads(raw)
                if "id" in frame:
                    self.arrivals.setdefault(frame["id"], time.perf_counter())
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, event_id: str, timeout: float = 30.0) -> float:
        deadline = time.perf_counter() + timeout
        while event_id not in self.arrivals:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"event {event_id} did not arrive in {timeout}s")
            await asyncio.sleep(0.002)
        return self.arrivals[event_id]

    async def close(self) -> None:
        await self.socket.close()
        await self.task


class Bench:
    def __init__(self, endpoints: dict):
        self.endpoints = endpoints
        self.sqs = emulator_client(endpoints, "sqs")
        self.lambda_ = emulator_client(endpoints, "lambda")
        self.secret = local_secret(endpoints)
        self.run = uuid.uuid4().hex[:6]

    async def open(self, user: str, groups: list[str]) -> Receiver:
        token = mint_token(self.secret, user, groups)
        socket = await websockets.connect(f"{self.endpoints['websocket_url']}?token={quote(token)}", open_timeout=30)
        return Receiver(socket)

    def publish(self, audience: list[str]) -> tuple[str, float]:
        event_id = f"bench-{uuid.uuid4().hex[:12]}"
        body = json.dumps({"type": "bench.tick", "id": event_id, "data": {}, "audience": audience})
        sent = time.perf_counter()
        self.sqs.send_message(QueueUrl=self.endpoints["events_queue_url"], MessageBody=body)
        return event_id, sent

    async def latency(self, events: int) -> dict:
        user = f"bench-latency-{self.run}"
        receiver = await self.open(user, [])
        samples = []
        for _ in range(events + 1):
            event_id, sent = self.publish([f"user:{user}"])
            samples.append(await receiver.wait_for(event_id) - sent)
            await asyncio.sleep(0.05)
        await receiver.close()
        warm = samples[1:]
        return {
            "first_ms": samples[0] * 1000,
            "median_ms": statistics.median(warm) * 1000,
            "p95_ms": sorted(warm)[int(len(warm) * 0.95) - 1] * 1000,
            "events": len(warm),
        }

    def set_delivery_concurrency(self, value: int) -> None:
        name = self.endpoints["function_names"]["process-events"]
        variables = self.lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        variables["DELIVERY_CONCURRENCY"] = str(value)
        self.lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
        self.lambda_.get_waiter("function_updated_v2").wait(FunctionName=name)

    async def fanout(self, sessions: int, concurrency: int, rounds: int = 5) -> dict:
        self.set_delivery_concurrency(concurrency)
        group = f"bench-fanout-{self.run}-{concurrency}"
        receivers = [await self.open(f"bench-user-{self.run}-{n}", [group]) for n in range(sessions)]
        times = []
        for round_number in range(rounds + 1):
            event_id, sent = self.publish([f"group:{group}"])
            last = max([await receiver.wait_for(event_id) for receiver in receivers])
            if round_number:  # round 0 warms the reconfigured function
                times.append(last - sent)
        for receiver in receivers:
            await receiver.close()
        return {"median_ms": statistics.median(times) * 1000, "rounds": rounds}


def progress(message: str) -> None:
    print(f"    ... {message}")


class BroadcastBench:
    """One broadcast to N simulated connections, next to a bare posting loop against the same simulator."""

    def __init__(self, endpoints: dict, simulator: SimulatorClient, concurrency: int):
        self.endpoints = endpoints
        self.simulator = simulator
        self.concurrency = concurrency
        self.sqs = emulator_client(endpoints, "sqs")
        self.run = uuid.uuid4().hex[:6]

    def measure(self, size: int) -> dict:
        group = f"bench-crowd-{self.run}-{size}"
        ids = [f"{group}-{n:06d}" for n in range(size)]
        progress(f"{size:,} connections: writing them to the connections table and the simulator")
        started = time.perf_counter()
        with simulated_audience(self.endpoints, self.simulator, ids, f"group:{group}"):
            progress(f"{size:,} connections: registered in {time.perf_counter() - started:.0f} s; broadcasting")
            stack = self.broadcast(f"group:{group}", size)
            if stack["accepted"]:
                progress(
                    f"{size:,} connections: {stack['accepted']:,} posted, the first {stack['first_post']:.1f} s "
                    f"and the last {stack['seconds']:.1f} s after the send; the bare loop now"
                )
            else:
                progress(f"{size:,} connections: nothing posted in {stack['seconds']:.0f} s; the bare loop now")
            bare = self.bare_loop(ids)
            progress(f"{size:,} connections: removing them")
        return {"size": size, "stack": stack, "bare": bare}

    def warm_up(self) -> float:
        """A broadcast to one connection: the functions just reconfigured start cold."""
        group = f"bench-warm-up-{self.run}"
        with simulated_audience(self.endpoints, self.simulator, [group], f"group:{group}"):
            return self.broadcast(f"group:{group}", 1)["seconds"]

    def broadcast(self, topic: str, size: int) -> dict:
        self.simulator.reset()
        body = {"type": "bench.broadcast", "id": f"bench-{uuid.uuid4().hex[:12]}", "data": {}, "audience": [topic]}
        sent = time.time()
        self.sqs.send_message(QueueUrl=self.endpoints["events_queue_url"], MessageBody=json.dumps(body))
        # Generous: the emulator's Query sorts a topic's whole partition for every page.
        stats = self.simulator.wait_until_settled(accepted=size, idle=120, timeout=60 + size / 50)
        return {
            # Send to the last accepted post; when nothing was posted, how long it waited.
            "seconds": (stats["last_accepted_at"] or time.time()) - sent,
            "first_post": (stats["first_post_at"] or sent) - sent,
            "accepted": stats["accepted"],
        }

    def bare_loop(self, ids: list[str]) -> dict:
        """The same posts from one process with the functions' own client, `concurrency` in flight."""
        self.simulator.reset()
        client = aws.connections_management(self.simulator.url, self.concurrency)
        frame = json.dumps({"id": "bench", "type": "bench.broadcast", "topic": "group:bench", "seq": 1, "data": {}})
        started = time.perf_counter()
        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(lambda connection_id: client.post_to_connection(ConnectionId=connection_id, Data=frame), ids))
        return {"seconds": time.perf_counter() - started, "accepted": self.simulator.stats()["accepted"]}


def broadcasts(endpoints: dict, sizes: tuple[int, ...], concurrency: int) -> list[dict]:
    # The functions' client factory builds on boto3's default session: give it the emulator's dummies.
    boto3.setup_default_session(
        region_name=endpoints.get("region", "us-east-1"), aws_access_key_id="test", aws_secret_access_key="test"
    )
    lambda_ = emulator_client(endpoints, "lambda")
    with (
        simulator_process(latency_ms=20) as simulator,
        posting_to(lambda_, endpoints["function_names"].values(), simulator.url) as pointed,
    ):
        progress(f"{', '.join(pointed)} now post to the gateway simulator at {simulator.url}")
        bench = BroadcastBench(endpoints, simulator, concurrency)
        progress(f"warm-up broadcast to one connection: {bench.warm_up():.1f} s")
        return [bench.measure(size) for size in sizes]


def print_broadcasts(results: list[dict], concurrency: int) -> None:
    print(
        "broadcast to simulated connections (gateway simulator, 20 ms per post): send -> last accepted post,\n"
        f"  next to a bare loop of the same posts ({concurrency} in flight, the functions' client), same simulator:"
    )
    print(f"  {'connections':>11}  {'broadcast':>10}  {'posts/s':>8}  {'bare loop':>10}  {'posts/s':>8}  {'ratio':>5}")
    for result in results:
        stack, bare, size = result["stack"], result["bare"], result["size"]
        stack_rate = stack["accepted"] / stack["seconds"]
        bare_rate = bare["accepted"] / bare["seconds"]
        incomplete = "" if stack["accepted"] == size else f"  (only {stack['accepted']:,} of {size:,} posted by then)"
        print(
            f"  {size:>11,}  {stack['seconds']:>8.1f} s  {stack_rate:>8.0f}  {bare['seconds']:>8.1f} s  "
            f"{bare_rate:>8.0f}  {stack_rate / bare_rate:>5.2f}{incomplete}"
        )


async def run(endpoints: dict, sessions: int, events: int) -> None:
    bench = Bench(endpoints)
    original = bench.lambda_.get_function_configuration(FunctionName=endpoints["function_names"]["process-events"])
    default_concurrency = int(original["Environment"]["Variables"]["DELIVERY_CONCURRENCY"])

    # The broadcasts first, on a quiet stack: the sessions below leave presence events behind them.
    sizes = LARGE_BROADCAST_SIZES if os.environ.get("BENCH_SCALE") == "large" else BROADCAST_SIZES
    print_broadcasts(broadcasts(endpoints, sizes, default_concurrency), default_concurrency)

    latency = await bench.latency(events)
    print(
        f"publish -> receive, warm, 1 session: median {latency['median_ms']:.0f} ms, "
        f"p95 {latency['p95_ms']:.0f} ms over {latency['events']} events "
        f"(first, cold: {latency['first_ms']:.0f} ms)"
    )
    serial = await bench.fanout(sessions, 1)
    parallel = await bench.fanout(sessions, default_concurrency)
    bench.set_delivery_concurrency(default_concurrency)
    print(f"fan-out of one event to {sessions} sessions (publish -> last session), median of {serial['rounds']}:")
    print(f"  DELIVERY_CONCURRENCY=1   : {serial['median_ms']:7.0f} ms")
    print(f"  DELIVERY_CONCURRENCY={default_concurrency:<3} : {parallel['median_ms']:7.0f} ms")
    print(f"  concurrent delivery is {serial['median_ms'] / parallel['median_ms']:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, default=os.environ.get("REALTIME_STACK_ENDPOINTS"))
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--events", type=int, default=30)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress lines as they happen, also into a pipe or a file
    if args.endpoints:
        asyncio.run(run(read_endpoints(Path(args.endpoints)), args.sessions, args.events))
        return
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        print("==> Starting a stack of its own on a free loopback port")
        with stack_on_free_port(Path(tmp)) as endpoints:
            asyncio.run(run(endpoints, args.sessions, args.events))


if __name__ == "__main__":
    sys.exit(main())
