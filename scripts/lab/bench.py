"""Benchmarks on the local stack, next to a floor measured in the same run; writes docs/benchmarks.md.

    python -m scripts.lab.bench [--endpoints .local/endpoints.json] [--out docs]
    BENCH_SCALE=large python -m scripts.lab.bench    # more samples, 100,000 simulated connections

Without --endpoints (or REALTIME_STACK_ENDPOINTS) it starts its own emulator
on a free loopback port, applies the stack, and stops it afterwards.

What it measures, in this order:
  1. broadcasts to simulated audiences (1 to 10,000 connections; 100,000 with
     BENCH_SCALE=large): the gateway simulator (scripts/lab/gateway_sim.py) answers
     each post after 20 ms, the connections are written straight into the
     table; send to last accepted post, next to a bare posting loop (the
     functions' own `@connections` client) against the same simulator;
  2. the floor (scripts/lab/bench_floor.py): an echo function on the same
     emulator, SQS -> Lambda -> PostToConnection, no storage; then
     publish-to-receive latency on one WebSocket, an event through the
     pipeline and one through the floor in turn;
  3. throughput, publish to last receipt, through one topic, across 100 topics, and
     through one topic without process-events' delivery turns, pipeline and floor in turn;
  4. fan-out of one event to 1, 10 and 100 WebSocket sessions, and to 100
     with DELIVERY_CONCURRENCY=1;
then, with the stack stopped, cold starts, request counts and the cost model
(scripts/lab/bench_report.py), and writes docs/benchmarks.md with its plots.

Figures from the emulator: its Lambda workers and API run on this machine, so
they show the shape of the costs (ratios to the floor, what concurrency buys),
not AWS's absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import boto3
import websockets
from boto3.dynamodb.conditions import Key
from realtime.connections.store import topic_pk
from realtime.core import aws

from scripts.lab import bench_report, readme_costs
from scripts.lab.bench_floor import Floor, floor_function, floor_message
from scripts.lab.gateway_sim import SimulatorClient, simulator_process
from scripts.lab.ordering import Arrival, disorder
from scripts.lab.simulated_audience import posting_to, simulated_audience
from scripts.local.emulator import ROOT, emulator_client, read_endpoints
from scripts.local.local_stack import stack_on_free_port
from scripts.local.mint_token import local_secret, mint_token


@dataclass(frozen=True)
class Scale:
    name: str
    broadcast_sizes: tuple[int, ...]
    latency_events: int  # per side
    throughput_events: int  # per round and side
    throughput_rounds: int
    fanout_sizes: tuple[int, ...]  # WebSocket sessions
    fanout_rounds: int
    ordering_rounds: int  # bursts of ORDERING_EVENTS to ORDERING_SOCKETS sessions, per setting


# Publish -> receive on the emulator is bimodal on both sides (a message either meets the mapping's
# poller or waits for its next pass: about 6 ms or 40 ms through the floor, measured): 100 events a
# side, so that the median and p95 do not hinge on which mode a few samples fell in.
SCALES = {
    "default": Scale("default", (1, 10, 100, 1_000, 10_000), 100, 100, 3, (1, 10, 100), 5, 2),
    "large": Scale("large", (1, 10, 100, 1_000, 10_000, 100_000), 200, 1_000, 3, (1, 10, 100), 10, 5),
}
WARM_UP_CONNECTIONS = 2_000  # past fanout_threshold on each of all's 16 keys: a page job, and a worker, for each
BROADCAST_TOPIC = "all"  # the broadcasts to simulated connections: every token's, spread over subscription_shards
ORDERING_SOCKETS = 200  # issue 22: a burst of 30 broadcast events to 200 real sockets
ORDERING_EVENTS = 30
MANY_TOPICS = 100  # across two sessions of 50 groups each: a token grants at most 100 topics
# One topic again with process-events' delivery turns off: what per-topic order costs a burst.
TURNS_OFF_CASE = "one topic without delivery turns"
SEND_BATCH = 10  # messages per SendMessageBatch


STARTED = time.monotonic()


def section(title: str) -> None:
    elapsed = int(time.monotonic() - STARTED)
    print(f"==> [{elapsed // 60:02d}:{elapsed % 60:02d}] {title}")


def progress(message: str) -> None:
    print(f"    ... {message}")


class Receiver:
    """One WebSocket session that timestamps every frame with an id it receives."""

    def __init__(self, socket):
        self.socket = socket
        self.arrivals: dict[str, float] = {}
        self.order: list[Arrival] = []  # every (topic, seq) of every frame, as they came
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                frame = json.loads(raw)
                if "id" in frame:
                    at = time.perf_counter()
                    self.arrivals.setdefault(frame["id"], at)
                    seqs = frame.get("seqs") or {frame.get("topic"): frame.get("seq")}
                    self.order += [Arrival(at, topic, seq) for topic, seq in seqs.items() if topic and seq]
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, event_ids: list[str], timeout: float = 60.0) -> float:
        """When the last of `event_ids` arrived."""
        deadline = time.perf_counter() + timeout
        while missing := [event_id for event_id in event_ids if event_id not in self.arrivals]:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(missing)} of {len(event_ids)} events did not arrive in {timeout:.0f} s")
            await asyncio.sleep(0.002)
        return max(self.arrivals[event_id] for event_id in event_ids)

    async def close(self) -> None:
        await self.socket.close()
        await self.task


def new_id() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


class StackBench:
    """Measurements on real WebSocket sessions: the pipeline and the floor, one after the other."""

    def __init__(self, endpoints: dict, floor: Floor):
        self.endpoints = endpoints
        self.floor = floor
        self.sqs = emulator_client(endpoints, "sqs")
        self.lambda_ = emulator_client(endpoints, "lambda")
        self.connections = emulator_client(endpoints, "dynamodb", resource=True).Table(
            endpoints["connections_table_name"]
        )
        self.secret = local_secret(endpoints)
        self.run = uuid.uuid4().hex[:6]

    async def open(self, user: str, groups: list[str]) -> Receiver:
        token = mint_token(self.secret, user, groups)
        socket = await websockets.connect(f"{self.endpoints['websocket_url']}?token={quote(token)}", open_timeout=30)
        return Receiver(socket)

    def connection_id(self, user: str) -> str:
        """The id the gateway gave the user's only session: its subscription to the user's own topic."""
        items = self.connections.query(KeyConditionExpression=Key("pk").eq(topic_pk(f"user:{user}")))["Items"]
        [item] = items
        return item["connectionId"]

    def send(self, queue_url: str, bodies: list[str]) -> None:
        for start in range(0, len(bodies), SEND_BATCH):
            entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start : start + SEND_BATCH])]
            self.sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)

    def publish(self, events: list[tuple[str, str]]) -> float:
        """Send (event id, topic) pairs to the pipeline; returns when the sending started."""
        sent = time.perf_counter()
        self.send(
            self.endpoints["events_queue_url"],
            [
                json.dumps({"type": "bench.tick", "id": event_id, "data": {}, "audience": [topic]})
                for event_id, topic in events
            ],
        )
        return sent

    def echo(self, events: list[tuple[str, str]]) -> float:
        """Send (event id, connection id) pairs to the floor; returns when the sending started."""
        sent = time.perf_counter()
        frame = {"type": "bench.tick", "topic": "user:floor", "seq": 1, "data": {}}
        self.send(
            self.floor.queue_url,
            [floor_message(connection, {**frame, "id": event_id}) for event_id, connection in events],
        )
        return sent

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until the events queue is empty: the sessions' presence events are delivered."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.endpoints["events_queue_url"], AttributeNames=names
            )
            if not any(int(value) for value in attributes["Attributes"].values()):
                return
            time.sleep(0.5)

    async def latency(self, events: int) -> dict:
        """One event at a time, through the pipeline and through the floor in turn, to one session."""
        user = f"bench-latency-{self.run}"
        receiver = await self.open(user, [])
        connection = self.connection_id(user)
        self.settle()
        samples: dict[str, list[float]] = {"pipeline": [], "floor": []}
        for number in range(events + 1):  # the first of each warms its function
            for side in sorted(samples, reverse=number % 2 == 1):  # each side goes first every other time
                event_id = new_id()
                if side == "pipeline":
                    sent = self.publish([(event_id, f"user:{user}")])
                else:
                    sent = self.echo([(event_id, connection)])
                samples[side].append((await receiver.wait_for([event_id]) - sent) * 1000)
                await asyncio.sleep(0.02)
            if number and number % 10 == 0:
                progress(f"latency: {number} of {events} events each way")
        await receiver.close()
        return {
            "pipeline_ms": samples["pipeline"][1:],
            "floor_ms": samples["floor"][1:],
            "pipeline_first_ms": samples["pipeline"][0],
            "floor_first_ms": samples["floor"][0],
        }

    async def throughput(self, label: str, groups_per_session: list[list[str]], events: int, rounds: int) -> dict:
        """`events` events spread over the sessions' topics, all sent at once: send to the last receipt.

        Each session has its own user and the given groups (none: its user's topic); event n goes to
        topic n mod (all topics), and through the floor straight to the connection holding that topic.
        """
        users = [f"bench-rate-{self.run}-{label.replace(' ', '-')}-{n}" for n in range(len(groups_per_session))]
        receivers = [await self.open(user, groups) for user, groups in zip(users, groups_per_session, strict=True)]
        connections = [self.connection_id(user) for user in users]
        per_session = [
            [(topic, receiver, connection) for topic in [f"group:{group}" for group in groups] or [f"user:{user}"]]
            for user, groups, receiver, connection in zip(
                users, groups_per_session, receivers, connections, strict=True
            )
        ]
        # One topic of each session in turn, so that every session gets its share of any batch.
        routes = [route for same_rank in zip(*per_session, strict=True) for route in same_rank]
        self.settle()
        seconds: dict[str, list[float]] = {"pipeline": [], "floor": []}
        # Round 0 warms: a burst starts as many workers as the mapping's concurrency allows, cold.
        for round_number in range(rounds + 1):
            for side, seconds_taken in seconds.items():
                batch = [(new_id(), routes[n % len(routes)]) for n in range(events)]
                if side == "pipeline":
                    sent = self.publish([(event_id, topic) for event_id, (topic, _, _) in batch])
                else:
                    sent = self.echo([(event_id, connection) for event_id, (_, _, connection) in batch])
                last = max(
                    [
                        await receiver.wait_for([event_id for event_id, (_, to, _) in batch if to is receiver])
                        for receiver in receivers
                    ]
                )
                seconds_taken.append(last - sent)
                progress(
                    f"throughput, {label}: {f'round {round_number} of {rounds}' if round_number else 'warm-up'}, "
                    f"{side}: {events} events in {last - sent:.1f} s"
                )
        for receiver in receivers:
            await receiver.close()
        return {
            "case": label,
            "topics": len(routes),
            "events": events,
            "pipeline_seconds": seconds["pipeline"][1:],
            "floor_seconds": seconds["floor"][1:],
            "pipeline_warm_up_seconds": seconds["pipeline"][0],
            "floor_warm_up_seconds": seconds["floor"][0],
        }

    async def without_delivery_turns(self, measure: Callable[[], Awaitable[dict]], events: int) -> dict:
        """`measure()` with process-events' delivery turns off (DELIVERY_ORDER_WAIT_MS=0), then as deployed
        again. Each change replaces its workers: the measurement's warm-up round starts them, and a burst
        of `events` after the second starts them again, so that what follows is measured warm."""
        deployed = self.set_process_events_variable("DELIVERY_ORDER_WAIT_MS", "0")
        try:
            result = await measure()
        finally:
            self.set_process_events_variable("DELIVERY_ORDER_WAIT_MS", deployed)
        await self.throughput("warm again", [[]], events, rounds=0)
        return result

    def set_delivery_concurrency(self, value: int) -> None:
        self.set_process_events_variable("DELIVERY_CONCURRENCY", str(value))

    def set_process_events_variable(self, variable: str, value: str) -> str:
        """Set one of process-events' variables (its workers are replaced); returns the value it had."""
        name = self.endpoints["function_names"]["process-events"]
        variables = self.lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        before = variables[variable]
        variables[variable] = value
        self.lambda_.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
        self.lambda_.get_waiter("function_updated_v2").wait(FunctionName=name)
        return before

    async def ordering(self, sockets: int, events: int, rounds: int) -> dict:
        """Bursts of `events` events to a group of `sockets` real sessions, all sent at once: the frames
        that reach a socket after a higher seq, with process-events' delivery turns off, then as deployed."""
        group = f"bench-order-{self.run}"
        receivers = []
        for n in range(sockets):
            receivers.append(await self.open(f"bench-order-{self.run}-{n}", [group]))
            if (n + 1) % 50 == 0:
                progress(f"ordering: {n + 1} of {sockets} sessions open")
        self.settle()
        deployed = self.set_process_events_variable("DELIVERY_ORDER_WAIT_MS", "0")
        result: dict = {"sockets": sockets, "events": events, "rounds": rounds, "deployed_wait_ms": int(deployed)}
        for label, wait_ms in (("without turns", "0"), ("with turns", deployed)):
            self.set_process_events_variable("DELIVERY_ORDER_WAIT_MS", wait_ms)
            frames, late, gap_reads, seconds = 0, 0, 0, []
            for round_number in range(rounds + 1):  # round 0 warms the replaced workers
                for receiver in receivers:
                    receiver.order.clear()
                ids = [new_id() for _ in range(events)]
                sent = self.publish([(event_id, f"group:{group}") for event_id in ids])
                last = max([await receiver.wait_for(ids, timeout=120) for receiver in receivers])
                if round_number:
                    found = disorder(receiver.order for receiver in receivers)
                    frames, late, gap_reads = frames + found.frames, late + found.late, gap_reads + found.gap_reads
                    seconds.append(last - sent)
            result[label] = {"frames": frames, "late": late, "gap_reads": gap_reads, "seconds": seconds}
            progress(
                f"ordering {label}: {late} of {frames} frames after a higher seq ({late / frames:.1%}), "
                f"{gap_reads} past the gap grace; burst to last frame {bench_report.median(seconds):.2f} s"
            )
        for receiver in receivers:
            await receiver.close()
        return result

    async def fanout(self, sizes: tuple[int, ...], rounds: int, default_concurrency: int) -> dict:
        """One event to a group of each size, publish to the last session; the largest also serially."""
        largest = max(sizes)
        group = {size: f"bench-fanout-{self.run}-{size}" for size in sizes}
        receivers = []
        for n in range(largest):
            groups = [group[size] for size in sizes if n < size]
            receivers.append(await self.open(f"bench-fanout-{self.run}-{n}", groups))
            if (n + 1) % 25 == 0:
                progress(f"fan-out: {n + 1} of {largest} sessions open")
        self.settle()

        async def median_ms(size: int) -> float:
            times = []
            for round_number in range(rounds + 1):  # round 0 warms a reconfigured function
                event_id = new_id()
                sent = self.publish([(event_id, f"group:{group[size]}")])
                last = max([await receiver.wait_for([event_id]) for receiver in receivers[:size]])
                if round_number:
                    times.append((last - sent) * 1000)
            return bench_report.median(times)

        result = {"concurrency": default_concurrency, "rounds": rounds, "sessions": []}
        for size in sizes:
            result["sessions"].append({"size": size, "median_ms": await median_ms(size)})
            progress(f"fan-out to {size} session(s): {result['sessions'][-1]['median_ms']:.0f} ms")
        self.set_delivery_concurrency(1)
        try:
            result["serial"] = {"size": largest, "median_ms": await median_ms(largest)}
        finally:
            self.set_delivery_concurrency(default_concurrency)
        progress(f"fan-out to {largest} sessions with DELIVERY_CONCURRENCY=1: {result['serial']['median_ms']:.0f} ms")
        for receiver in receivers:
            await receiver.close()
        return result


class BroadcastBench:
    """One broadcast to N simulated connections, next to a bare posting loop against the same simulator."""

    def __init__(self, endpoints: dict, simulator: SimulatorClient, concurrency: int):
        self.endpoints = endpoints
        self.simulator = simulator
        self.concurrency = concurrency
        self.sqs = emulator_client(endpoints, "sqs")
        self.run = uuid.uuid4().hex[:6]

    def measure(self, size: int) -> dict:
        """A broadcast to `all`, whose subscriptions the module spreads over several keys by default (one
        page chain each); nothing else is subscribed while it runs (it goes first, on a quiet stack)."""
        crowd = f"bench-crowd-{self.run}-{size}"
        ids = [f"{crowd}-{n:06d}" for n in range(size)]
        started = time.perf_counter()
        with simulated_audience(self.endpoints, self.simulator, ids, BROADCAST_TOPIC):
            progress(
                f"{size:,} simulated connections registered in {time.perf_counter() - started:.0f} s; broadcasting"
            )
            stack = self.broadcast(BROADCAST_TOPIC, size)
            bare = self.bare_loop(ids)
            progress(
                f"{size:,} simulated connections: {stack['accepted']:,} posted, the last {stack['seconds']:.2f} s "
                f"after the send; the bare loop {bare['seconds']:.2f} s"
            )
        return {"size": size, "stack": stack, "bare": bare}

    def warm_up(self) -> float:
        """An untimed broadcast big enough for a page job on every key of `all`: the functions just
        reconfigured start cold, and the fanout workers the first measured broadcast needs (one chain per
        key, side by side) would otherwise each pay a cold start inside it."""
        ids = [f"bench-warm-up-{self.run}-{n:05d}" for n in range(WARM_UP_CONNECTIONS)]
        with simulated_audience(self.endpoints, self.simulator, ids, BROADCAST_TOPIC):
            return self.broadcast(BROADCAST_TOPIC, WARM_UP_CONNECTIONS)["seconds"]

    def broadcast(self, topic: str, size: int) -> dict:
        self.simulator.reset()
        body = {"type": "bench.broadcast", "id": new_id(), "data": {}, "audience": [topic]}
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
        client = aws.connections_gateway(self.simulator.url, self.concurrency)
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
        simulator_process(latency_ms=bench_report.SIMULATED_POST_MS) as simulator,
        posting_to(lambda_, endpoints["function_names"].values(), simulator.url) as pointed,
    ):
        progress(f"{', '.join(pointed)} now post to the gateway simulator at {simulator.url}")
        bench = BroadcastBench(endpoints, simulator, concurrency)
        progress(f"warm-up broadcast to {WARM_UP_CONNECTIONS:,} simulated connections: {bench.warm_up():.1f} s")
        return [bench.measure(size) for size in sizes]


async def measure_stack(endpoints: dict, scale: Scale) -> dict:
    lambda_ = emulator_client(endpoints, "lambda")
    configuration = lambda_.get_function_configuration(FunctionName=endpoints["function_names"]["process-events"])
    concurrency = int(configuration["Environment"]["Variables"]["DELIVERY_CONCURRENCY"])

    section("Broadcasts to simulated connections (the gateway simulator)")
    # On a quiet stack: the sessions below leave presence events behind them.
    results = {"broadcasts": broadcasts(endpoints, scale.broadcast_sizes, concurrency)}
    with floor_function(endpoints) as floor:
        section(f"The floor: {floor.function_name}, an echo function with its own queue")
        bench = StackBench(endpoints, floor)
        section("Latency, publish -> receive, one session: pipeline and floor in turn")
        results["latency"] = await bench.latency(scale.latency_events)
        section("Throughput, publish -> last receipt: pipeline and floor in turn")
        half = MANY_TOPICS // 2
        results["throughput"] = [
            await bench.throughput("one topic", [[]], scale.throughput_events, scale.throughput_rounds),
            await bench.throughput(
                f"{MANY_TOPICS} topics",
                [[f"bench-rate-{bench.run}-{n}" for n in range(start, start + half)] for start in (0, half)],
                scale.throughput_events,
                scale.throughput_rounds,
            ),
            # Last: turning the turns off and on replaces process-events' workers.
            await bench.without_delivery_turns(
                lambda: bench.throughput(TURNS_OFF_CASE, [[]], scale.throughput_events, scale.throughput_rounds),
                scale.throughput_events,
            ),
        ]
    section("Fan-out to WebSocket sessions")
    results["fanout"] = await bench.fanout(scale.fanout_sizes, scale.fanout_rounds, concurrency)
    section("Frame order in a burst: delivery turns off and on")
    results["ordering"] = await bench.ordering(ORDERING_SOCKETS, ORDERING_EVENTS, scale.ordering_rounds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, default=os.environ.get("REALTIME_STACK_ENDPOINTS"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where benchmarks.md and its plots go")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress lines as they happen, also into a pipe or a file
    scale = SCALES[os.environ.get("BENCH_SCALE", "default")]
    started = time.monotonic()
    run = bench_report.run_facts(scale.name)
    if args.endpoints:
        results = asyncio.run(measure_stack(read_endpoints(Path(args.endpoints)), scale))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            section("Starting a stack of its own on a free loopback port")
            with stack_on_free_port(Path(tmp)) as endpoints:
                results = asyncio.run(measure_stack(endpoints, scale))
    section("Cold starts, request counts and the cost model (no emulator)")
    results |= bench_report.measure_offline()
    results["run"] = run | {"wall_seconds": time.monotonic() - started}
    written = bench_report.write(results, args.out)
    if args.out == ROOT / "docs":  # the committed figures: the README's costs follow this run's request counts
        readme_costs.write(results["request_counts"])
        written.append(readme_costs.README)
    print(bench_report.summary(results))
    section(f"Wrote {', '.join(map(str, written))}")


if __name__ == "__main__":
    sys.exit(main())
