"""CPU time per post of the functions' posting code, against the gateway simulator: boto3's client and the signed one.

    python -m scripts.lab.post_cpu [--batches 10] [--batch-size 500] [--concurrency 64] [--latency-ms 20] [--json]

Starts the gateway simulator (scripts/lab/gateway_sim.py, its own process on
loopback, answering each post after `latency_ms`) and posts `batches` batches of
`batch_size` frames to registered ids, the same concurrency for each client:

- `boto3`: delivery's Poster on boto3's `apigatewaymanagementapi` client (what it used before);
- `signed`: delivery's Poster on the signed client it uses now (realtime.core.aws.connections_gateway);
- `bare`: a bare loop, `concurrency` threads calling the signed client, without the Poster.

Per batch, the CPU time of this process (time.process_time: every thread; the
simulator runs in another process) divided by the posts; the figures are the
median and p95 over the batches, and posts/s is all posts over the wall time of
all batches. "posts/s at N MB" is what a Lambda function of that size would
manage: Lambda gives 1 vCPU per 1,769 MB, so the lower of the wall rate here and
that share of a CPU divided by the CPU per post.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import boto3
from realtime.connections.posting import Poster
from realtime.core import aws, lifecycle

from scripts.lab.gateway_sim import simulator_process
from scripts.module_defaults import VARIABLES

LAMBDA_MB_PER_VCPU = 1769
FANOUT_MEMORY_MB = 512
FRAME = json.dumps({"id": "bench", "type": "bench.broadcast", "topic": "group:bench", "seq": 1, "data": {}}).encode()
FANOUT_CONCURRENCY = VARIABLES["fanout_concurrency"]
CLIENTS = ("boto3", "signed", "bare")


def measure(
    *, batches: int = 10, batch_size: int = 500, concurrency: int = FANOUT_CONCURRENCY, latency_ms: float = 20.0
) -> dict[str, dict]:
    """{client: figures} for each of CLIENTS, measured in turn against one simulator."""
    # Dummy credentials for the default session both clients sign with (the simulator checks none).
    boto3.setup_default_session(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    lifecycle.reset()
    ids = [f"post-cpu-{n:06d}" for n in range(batch_size)]
    with simulator_process(latency_ms=latency_ms) as simulator, _forgetting_clients():
        simulator.register(ids)
        boto3_client = aws.connections_management(simulator.url, concurrency, retries=False)
        signed_client = aws.connections_gateway(simulator.url, concurrency)
        runs: dict[str, Callable[[Sequence[tuple[str, bytes]]], int]] = {
            "boto3": _poster(boto3_client, concurrency),
            "signed": _poster(signed_client, concurrency),
            "bare": _bare_loop(signed_client, concurrency),
        }
        posts = [(connection_id, FRAME) for connection_id in ids]
        results = {}
        for name in CLIENTS:
            runs[name](posts)  # warm-up: connections opened, signer built
            simulator.reset()
            results[name] = _figures([_timed(runs[name], posts) for _ in range(batches)])
            results[name]["accepted"] = simulator.stats()["accepted"]
    for figures in results.values():
        figures |= {"concurrency": concurrency, "latency_ms": latency_ms}
    return results


@contextlib.contextmanager
def _forgetting_clients() -> Iterator[None]:
    """The clients are cached per container: drop them with the simulator they point at."""
    try:
        yield
    finally:
        lifecycle.reset()


def _poster(client: object, concurrency: int) -> Callable[[Sequence[tuple[str, bytes]]], int]:
    poster = Poster(client, concurrency, on_gone=lambda _connection_id: None)
    return lambda posts: poster.post(posts).sent


def _bare_loop(client: aws.SignedConnectionsClient, concurrency: int) -> Callable[[Sequence[tuple[str, bytes]]], int]:
    def post_all(posts: Sequence[tuple[str, bytes]]) -> int:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda post: client.post_to_connection(ConnectionId=post[0], Data=post[1]), posts))
        return len(posts)

    return post_all


def _timed(run: Callable[[Sequence[tuple[str, bytes]]], int], posts: Sequence[tuple[str, bytes]]) -> dict:
    cpu, wall = time.process_time(), time.perf_counter()
    sent = run(posts)
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "posts": len(posts), "sent": sent}


def _figures(batches: list[dict]) -> dict:
    per_post_ms = sorted(1000 * batch["cpu"] / batch["posts"] for batch in batches)
    posts = sum(batch["posts"] for batch in batches)
    return {
        "batches": len(batches),
        "posts": posts,
        "sent": sum(batch["sent"] for batch in batches),
        "cpu_ms_per_post": {"median": statistics.median(per_post_ms), "p95": _percentile(per_post_ms, 0.95)},
        "posts_per_second": posts / sum(batch["wall"] for batch in batches),
    }


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest rank: the smallest value with at least `share` of the values at or below it."""
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


def posts_per_second_at(figures: dict, memory_mb: int = FANOUT_MEMORY_MB) -> float:
    """What a function of `memory_mb` would manage: the wall rate here, or its share of a CPU if that binds first."""
    cpu_bound = (memory_mb / LAMBDA_MB_PER_VCPU) / (figures["cpu_ms_per_post"]["median"] / 1000)
    return min(figures["posts_per_second"], cpu_bound)


def render(results: dict[str, dict], memory_mb: int = FANOUT_MEMORY_MB) -> str:
    """A plain-text table, one line per client."""
    lines = [
        f"{'client':<8} {'posts':>6} {'sent':>6} {'CPU/post median':>16} {'p95':>9} {'posts/s':>8} "
        f"{f'posts/s at {memory_mb} MB':>18}"
    ]
    for name, figures in results.items():
        cpu = figures["cpu_ms_per_post"]
        lines.append(
            f"{name:<8} {figures['posts']:>6} {figures['sent']:>6} {cpu['median']:>13.3f} ms {cpu['p95']:>6.3f} ms "
            f"{figures['posts_per_second']:>8.0f} {posts_per_second_at(figures, memory_mb):>18.0f}"
        )
    return "\n".join(lines)


def render_markdown(results: dict[str, dict], memory_mb: int = FANOUT_MEMORY_MB) -> str:
    """The section of docs/benchmarks.md (scripts/lab/bench_report.py)."""
    labels = {
        "boto3": "Poster, boto3's client (before)",
        "signed": "Poster, signed client (delivery's)",
        "bare": "bare loop, signed client",
    }
    rows = [
        f"| {labels.get(name, name)} | {f['cpu_ms_per_post']['median']:.3f} ms | {f['cpu_ms_per_post']['p95']:.3f} ms "
        f"| {f['posts_per_second']:.0f} | {posts_per_second_at(f, memory_mb):.0f} |"
        for name, f in results.items()
    ]
    some = next(iter(results.values()))
    return f"""## CPU per post (measured)

The posting code of the fanout function (delivery's Poster: a thread pool, the AIMD
limit, the `@connections` client) in one process, {some["concurrency"]} posts in flight, against
the gateway simulator answering each post after {some["latency_ms"]:g} ms
(`scripts/lab/post_cpu.py`): CPU time of the process per post, median and p95 of
{some["batches"]} batches of {some["posts"] // some["batches"]:,}; beside it a bare loop of the same posts and
concurrency. A {memory_mb} MB function gets {memory_mb / LAMBDA_MB_PER_VCPU:.2f} vCPU: its posts/s is the lower
of the wall rate and that share of a CPU over the CPU per post.

| client | CPU per post, median | p95 | posts/s | posts/s at {memory_mb} MB |
|---|---:|---:|---:|---:|
{chr(10).join(rows)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--concurrency", type=int, default=FANOUT_CONCURRENCY, help="the module's fanout_concurrency by default"
    )
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--json", action="store_true", help="the figures as JSON instead of a table")
    args = parser.parse_args()
    results = measure(
        batches=args.batches, batch_size=args.batch_size, concurrency=args.concurrency, latency_ms=args.latency_ms
    )
    print(json.dumps(results, indent=1) if args.json else render(results))


if __name__ == "__main__":
    main()
