"""docs/benchmarks.md and its plots, from the figures `make bench` gathers.

    .venv/bin/python -m scripts.lab.bench_report [--out docs]    # render again from docs/benchmarks/results.json

`scripts.lab.bench` measures on the emulator and calls `measure_offline` (cold
starts, request counts: no emulator) and `write`, which keeps every figure in
docs/benchmarks/results.json, renders the page and draws the plots
(matplotlib, Agg: no display needed). Rendering is pure: the same figures give
the same page.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import sys
from pathlib import Path

from scripts.lab.provenance import source_revision
from scripts.local.emulator import ROOT

SIMULATED_POST_MS = 20  # the gateway simulator's answer time per post in the broadcasts
COMMAND = "make bench"
LARGE_COMMAND = "BENCH_SCALE=large make bench"
PLOTS_DIR = "benchmarks"
RESULTS_FILE = "results.json"
COST_CONNECTIONS = (100, 1_000, 10_000, 100_000, 1_000_000)  # total connections on the cost plot's x axis


# --- figures -------------------------------------------------------------------


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def percentile(samples: list[float], q: int) -> float:
    """The q-th percentile (1..99), interpolated between the nearest samples."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def ratio(value: float, floor: float) -> float:
    return value / floor


def latency_rows(latency: dict) -> list[dict]:
    """Median and p95 of each side, and the pipeline's ratio to the floor."""
    rows = []
    for side in ("pipeline", "floor"):
        samples = latency[f"{side}_ms"]
        rows.append(
            {"side": side, "events": len(samples), "median_ms": median(samples), "p95_ms": percentile(samples, 95)}
        )
    pipeline, floor = rows
    return [
        *rows,
        {
            "side": "ratio",
            "events": None,
            "median_ms": ratio(pipeline["median_ms"], floor["median_ms"]),
            "p95_ms": ratio(pipeline["p95_ms"], floor["p95_ms"]),
        },
    ]


def throughput_row(case: dict) -> dict:
    """Events per second of each side (the median round), and the pipeline's share of the floor's."""
    pipeline = case["events"] / median(case["pipeline_seconds"])
    floor = case["events"] / median(case["floor_seconds"])
    return {
        "case": case["case"],
        "topics": case["topics"],
        "events": case["events"],
        "pipeline": pipeline,
        "floor": floor,
        "ratio": ratio(pipeline, floor),
    }


# --- the page ------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_latency(latency: dict) -> str:
    rows = latency_rows(latency)
    pipeline, floor, ratios = rows
    body = table(
        ["", "events", "median", "p95"],
        [
            *(
                [side["side"], str(side["events"]), f"{side['median_ms']:.0f} ms", f"{side['p95_ms']:.0f} ms"]
                for side in (pipeline, floor)
            ),
            ["pipeline / floor", "", f"**{ratios['median_ms']:.2f}x**", f"**{ratios['p95_ms']:.2f}x**"],
        ],
    )
    return f"""## Latency: publish to receive, against the floor (measured)

One WebSocket session; one event at a time through the pipeline (events queue ->
process-events: validate, store, read the subscribers, post) and one through the
floor (its own queue -> an echo function that posts the message, nothing else), in
turn (each side first every other time), to the same connection. The first event of each
side is left out (it may start a worker):
{latency["pipeline_first_ms"]:.0f} ms through the pipeline, {latency["floor_first_ms"]:.0f} ms through the floor.

{body}

![Latency CDF](benchmarks/latency-cdf.png)
"""


def render_throughput(cases: list[dict]) -> str:
    rows = [throughput_row(case) for case in cases]
    body = table(
        ["case", "topics", "events per round", "pipeline", "floor", "pipeline / floor"],
        [
            [
                row["case"],
                str(row["topics"]),
                str(row["events"]),
                f"{row['pipeline']:.0f} events/s",
                f"{row['floor']:.0f} events/s",
                f"**{row['ratio']:.2f}**",
            ]
            for row in rows
        ],
    )
    rounds = len(cases[0]["pipeline_seconds"])
    warm_ups = "; ".join(
        f"{case['case']}: {case['pipeline_warm_up_seconds']:.1f} s through the pipeline, "
        f"{case['floor_warm_up_seconds']:.1f} s through the floor"
        for case in cases
    )
    return f"""## Throughput (measured)

All events of a round sent at once (SendMessageBatch, ten at a time), timed from the
first send to the last receipt; the pipeline and the floor take turns, {rounds} rounds
each, the median round shown. "One topic": every event to one user's topic, one
session. "{max(case["topics"] for case in cases)} topics": two sessions holding 50 group topics each, event n to
topic n mod 100 (the floor posts each to the connection holding that topic). Both
sides have the same event source mapping (batch size, concurrency), so the ratio is
what the module's work per event costs on the emulator. One topic's batches take their
seqs from one counter, one after another, and post in turn (delivery turns, so that a
socket gets the topic's frames in order); "without delivery turns" is the same burst with
`delivery_order_wait_ms` at 0, to show what the order costs (the floor keeps no order); it
comes last, as changing the setting replaces process-events' workers (its warm-up is a first burst too;
a burst after it starts them again for the fan-out below).

{body}

Before the rounds, one more round of each side warms its workers. The first burst (one
topic comes first; the latency test kept one worker of each side warm) starts as many
workers as the mapping's concurrency allows, cold, so it shows what cold starts cost a
burst. Warm-up rounds: {warm_ups}.
"""


def render_fanout(fanout: dict, broadcasts: list[dict]) -> str:
    sessions = table(
        ["sessions", "publish -> last session"],
        [[str(row["size"]), f"{row['median_ms']:.0f} ms"] for row in fanout["sessions"]]
        + [[f"{fanout['serial']['size']}, DELIVERY_CONCURRENCY=1", f"{fanout['serial']['median_ms']:.0f} ms"]],
    )
    simulated_rows = []
    for result in broadcasts:
        stack, bare, size = result["stack"], result["bare"], result["size"]
        complete = "" if stack["accepted"] == size else f" (only {stack['accepted']:,} posted)"
        simulated_rows.append(
            [
                f"{size:,}",
                f"{stack['seconds']:.2f} s{complete}",
                f"{stack['accepted'] / stack['seconds']:.0f}",
                f"{bare['seconds']:.2f} s",
                f"{bare['accepted'] / bare['seconds']:.0f}",
                f"{(stack['accepted'] / stack['seconds']) / (bare['accepted'] / bare['seconds']):.2f}",
            ]
        )
    simulated = table(
        ["connections", "send -> last post", "posts/s", "bare loop", "posts/s", "stack / bare loop"], simulated_rows
    )
    speedup = fanout["serial"]["median_ms"] / fanout["sessions"][-1]["median_ms"]
    return f"""## Fan-out time against audience size

**WebSocket sessions (measured)**: one event to a group of N real sessions on the
emulator, publish to the last session's receipt, median of {fanout["rounds"]} rounds; the
module's DELIVERY_CONCURRENCY is {fanout["concurrency"]}; with 1, the same fan-out takes
{speedup:.1f}x as long.

{sessions}

**Simulated connections (simulated)**: one event to `all`, whose subscriptions are spread
over 16 keys by default (one page chain each); the connections are written straight into the
connections table and the functions post to the gateway simulator
(`scripts/lab/gateway_sim.py`), which answers each post after {SIMULATED_POST_MS} ms, as a stand-in for
API Gateway; send to the last accepted post. Beside it a bare loop: the same posts from
one process with the functions' own `@connections` client, DELIVERY_CONCURRENCY posts in
flight, against the same simulator: the ceiling of one worker. Audiences above the
module's `fanout_threshold` go through the fanout queue to parallel workers.

{simulated}

![Fan-out time against audience size](benchmarks/fanout-vs-audience.png)
"""


def render_capacity_model(results: dict) -> str:
    """The broadcast model (scripts/lab/broadcast_model.py) on this run's figures: fitted on the 1,000 and
    10,000 broadcasts, and on AWS's quotas from this run's CPU per post."""
    from scripts.lab import broadcast_model

    measured = {result["size"]: result["stack"]["seconds"] for result in results["broadcasts"]}
    if "post_cpu" not in results or not all(size in measured for size in broadcast_model.FIT_SIZES):
        return ""
    cpu = results["post_cpu"]["signed"]["cpu_ms_per_post"]["median"]
    large = (
        ""
        if broadcast_model.PREDICTED_SIZE in measured
        else (
            f"\n\nThis run has no {broadcast_model.PREDICTED_SIZE:,}-connection broadcast: `make bench-broadcast` (or "
            f"`{LARGE_COMMAND}`) measures it next to the prediction."
        )
    )
    return f"""## Broadcast model (fitted and reasoned)

`scripts/lab/broadcast_model.py`: on the emulator, t0 + N / R fitted on this run's 1,000 and 10,000
broadcasts above; on AWS, the same arithmetic from this run's CPU per post, the post budget, the account's
quota less the keepalives and the page chains (its docstring gives every assumption; docs/scaling.md
reads it).{large}

{broadcast_model.render(cpu, measured)}
"""


def render_ordering(results: dict) -> str:
    """Empty for figures measured before the ordering section existed."""
    if "ordering" not in results:
        return ""
    ordering = results["ordering"]
    rows = []
    for label in ("without turns", "with turns"):
        case = ordering[label]
        rows.append(
            [
                label if label == "without turns" else f"with turns ({ordering['deployed_wait_ms']} ms bound)",
                f"{case['late']:,} of {case['frames']:,} ({case['late'] / max(1, case['frames']):.1%})",
                f"{case['gap_reads']:,}",
                f"{median(case['seconds']):.2f} s",
            ]
        )
    header = ["process-events", "frames after a higher seq", "past the 250 ms gap grace", "burst -> last frame"]
    late = table(header, rows)
    return f"""## Frame order in a burst (measured)

{ordering["events"]} events sent at once to a group of {ordering["sockets"]} real WebSocket sessions on the
emulator, {ordering["rounds"]} bursts per row after a warm-up burst: the frames that reached their socket after
a frame with a higher seq of the same topic (each one a frame the client holds back), and of those
the ones that came more than the clients' gap grace later (each a gap the client would have read over
HTTP instead). Batches of one topic are stored in turn but posted by concurrent process-events
invocations; with delivery turns (`delivery_order_wait_ms`, docs/internals.md) a batch waits for the
one before it to have posted. Both rows in the same run: the variable is set on the function in between.

{late}
"""


def render_post_cpu(results: dict) -> str:
    """Empty for figures measured before post_cpu existed."""
    if "post_cpu" not in results:
        return ""
    from scripts.lab import post_cpu

    return post_cpu.render_markdown(results["post_cpu"])


# The AWS SDK (shipped in the layer) and what it loads: what every function pays, not its own choice.
RUNTIME_TOP_LEVEL = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six", "_cffi_backend"}


def own_packages(modules: list[str]) -> list[str]:
    """The top-level packages a handler's import loaded beyond the standard library and the AWS SDK."""
    return sorted(
        name
        for name in modules
        if name not in sys.stdlib_module_names and name not in RUNTIME_TOP_LEVEL and not name.startswith("_")
    )


def own_ms(figures: dict, boto3_ms: float) -> float:
    """The handler's import and setup after `import boto3`, in the same processes (results before this
    figure existed: the difference of the two medians)."""
    return figures["own_ms"] if "own_ms" in figures else figures["setup_ms"] - boto3_ms


def render_cold_start(cold_start: dict) -> str:
    boto3_ms = cold_start["boto3_ms"]
    body = table(
        ["function", "import", "import + setup", "its own (beyond import boto3)", "/ import boto3", "packages at init"],
        [
            [
                name,
                f"{figures['import_ms']:.0f} ms",
                f"{figures['setup_ms']:.0f} ms",
                f"{own_ms(figures, boto3_ms):.0f} ms",
                f"{own_ms(figures, boto3_ms) / boto3_ms:.2f}x",
                ", ".join(own_packages(figures.get("packages", []))),
            ]
            for name, figures in cold_start["handlers"].items()
        ],
    )
    zips = cold_start.get("zips", {})
    sizes = "; ".join(
        f"`{label}` {zips[key]['kib']:,} KiB ({zips[key]['files']:,} files, {zips[key]['unpacked_mb']} MB unpacked)"
        for key, label in (("code", "functions.zip"), ("layer", "layer.zip"), ("jwks_layer", "layer-jwks.zip"))
        if key in zips
    )
    load = cold_start.get("load_average")
    return f"""## Cold start (measured)

Each function's handler imported from the code zip and the layer in a fresh `python -I -B`
(Python {cold_start["python"]}, the runtime's stand-in), median of {cold_start["runs"]}; "setup"
adds building what its first invocation builds (`scripts/lab/cold_start.py`); "its own" is
that import and setup timed after `import boto3` in the same interpreter (median of the runs).
`import boto3` alone (the layer's SDK), in the same runs: **{boto3_ms:.0f} ms**, what every Python function pays{
        f" (load average {load} when the runs began)" if load is not None else ""
    }.
On AWS this is the first request of each new execution environment. "packages at init": the
top-level packages the handler's import and setup load besides the standard library and the
AWS SDK (boto3, botocore and what they bring; the layer ships them, their data cut to the
services the functions call).{f" Zips: {sizes}." if sizes else ""}

{body}
"""


def render_dependencies(choices: dict) -> str:
    rows = []
    for what in ("json", "validation"):
        choice = choices[what]
        for side in ("kept", "candidate"):
            rows.append(
                [
                    what if side == "kept" else "",
                    choice[side]["name"] + (" (used)" if side == "kept" else ""),
                    f"{choice[side]['import_ms']:.1f} ms",
                    f"{choice[f'{side}_us']:.2f} µs",
                    choice["call"] if side == "kept" else "",
                ]
            )
    body = table(["need", "library", "import at a cold start", "one call", "the call"], rows)
    return f"""## Dependencies (measured)

What the functions use for JSON and for validating producer messages, against the alternative
(`scripts/lab/dependency_choice.py`): the import in fresh interpreters after `import boto3` (median of
{choices["runs"]}; for validation, with the producer message's model built: pydantic's is imported by the
functions only to explain a message msgspec refused), and one call on a typical message (decoded from
JSON) in one process. What was chosen and why: docs/internals.md, "Cold starts".

{body}
"""


def render_request_counts(counts: dict) -> str:
    body = table(
        ["operation", "DynamoDB requests", "read units", "write units", "SQS requests", "posts", "requests"],
        [
            [
                f"`{name}`",
                f"{figures['dynamodb']:g}",
                f"{figures['rcu']:g}",
                f"{figures['wcu']:g}",
                f"{figures['sqs']:g}",
                f"{figures['execute-api']:g}",
                ", ".join(f"{request} {n:g}" for request, n in figures["requests"].items()),
            ]
            for name, figures in counts.items()
        ],
    )
    return f"""## Requests and capacity per operation (counted)

Every AWS request the real handlers send, counted with botocore event hooks on moto
(`scripts/lab/request_counts.py`); DynamoDB capacity units computed from the items' sizes
by DynamoDB's rules (on-demand bills them as request units). Per operation, on a warm
container.

{body}
"""


def render_machine(run: dict) -> str:
    machine = run["machine"]
    rows = [
        ["date", run["date"]],
        ["commit", run.get("commit", "unknown")],
        ["command", f"`{run['command']}`"],
        ["wall time", f"{run['wall_seconds'] / 60:.1f} min"],
        ["CPU", f"{machine['cores']} cores, {machine['cpu']}"],
        ["memory", f"{machine['memory_gb']:.0f} GB"],
        ["load average at the start", f"{machine['load_average']:.2f}"],
        ["Python", machine["python"]],
        ["emulator", f"ministack {machine['emulator']}"],
        ["OS", machine["os"]],
    ]
    return table(["", ""], rows)


def render(results: dict, cost_tables: str) -> str:
    """The whole page; `cost_tables` comes from scripts.lab.cost_model."""
    run = results["run"]
    return f"""# Benchmarks

Written by `{run["command"]}` (scripts/lab/bench.py) on {run["date"]}; do not edit by hand. Three
kinds of figures, labelled in each heading:

- **measured**: timed on this machine, on the local emulator (ministack) or in a clean
  interpreter. Emulator latencies are not AWS's: its Lambda workers, queues, tables and
  WebSocket gateway all run on one shared machine. Read them as ratios to the **floor**,
  an echo function on the same emulator measured side by side in the same run;
- **simulated**: the gateway simulator stands in for API Gateway's `@connections` at
  audiences too large for real sockets on one machine;
- **reasoned**: costs computed from counted requests at AWS list prices; nothing here
  ran on AWS.

`{LARGE_COMMAND}` takes more samples and adds a 100,000-connection broadcast. What binds
at scale and the quotas: [scaling.md](scaling.md).

{render_machine(run)}

{render_latency(results["latency"])}
{render_throughput(results["throughput"])}
{render_fanout(results["fanout"], results["broadcasts"])}
{render_capacity_model(results)}
{render_ordering(results)}
{render_post_cpu(results)}
{render_cold_start(results["cold_start"])}
{render_dependencies(results["dependencies"]) if "dependencies" in results else ""}
{render_request_counts(results["request_counts"])}
## Cost (reasoned)

{cost_tables.strip()}

![Cost per million events against connection count](benchmarks/cost-vs-connections.png)
"""


def summary(results: dict) -> str:
    """The headline figures, for the terminal."""
    _, _, ratios = latency_rows(results["latency"])
    pipeline, floor, _ = latency_rows(results["latency"])
    lines = [
        f"latency: pipeline median {pipeline['median_ms']:.0f} ms, p95 {pipeline['p95_ms']:.0f} ms; "
        f"floor median {floor['median_ms']:.0f} ms, p95 {floor['p95_ms']:.0f} ms; "
        f"ratio {ratios['median_ms']:.2f}x / {ratios['p95_ms']:.2f}x",
    ]
    for case in results["throughput"]:
        row = throughput_row(case)
        lines.append(
            f"throughput, {row['case']}: pipeline {row['pipeline']:.0f} events/s, floor {row['floor']:.0f} events/s, "
            f"ratio {row['ratio']:.2f}"
        )
    fanout = results["fanout"]
    lines.append(
        "fan-out to sessions: "
        + ", ".join(f"{row['size']}: {row['median_ms']:.0f} ms" for row in fanout["sessions"])
        + f" (serial, {fanout['serial']['size']}: {fanout['serial']['median_ms']:.0f} ms)"
    )
    lines.append(
        "broadcasts to simulated connections: "
        + ", ".join(f"{result['size']:,}: {result['stack']['seconds']:.1f} s" for result in results["broadcasts"])
    )
    if "post_cpu" in results:
        lines.append(
            "CPU per post (median, p95): "
            + ", ".join(
                f"{name} {f['cpu_ms_per_post']['median']:.2f} / {f['cpu_ms_per_post']['p95']:.2f} ms "
                f"({f['posts_per_second']:.0f} posts/s)"
                for name, f in results["post_cpu"].items()
            )
        )
    if "ordering" in results:
        ordering = results["ordering"]
        lines.append(
            "frames after a higher seq in a burst: "
            + ", ".join(
                f"{label} {ordering[label]['late'] / max(1, ordering[label]['frames']):.1%} "
                f"({ordering[label]['gap_reads']} past the gap grace)"
                for label in ("without turns", "with turns")
            )
        )
    lines.append(f"wall time {results['run']['wall_seconds'] / 60:.1f} min")
    return "\n".join(lines)


# --- plots ---------------------------------------------------------------------


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    axes.grid(True, which="both", alpha=0.3)
    return figure, axes


def _save(figure, path: Path) -> Path:
    figure.savefig(path, format="png", metadata={"Software": None})  # no version stamp: reproducible bytes
    import matplotlib.pyplot

    matplotlib.pyplot.close(figure)
    return path


def plot_latency(latency: dict, path: Path) -> Path:
    figure, axes = _figure()
    for side, label in (("pipeline", "pipeline (process-events)"), ("floor", "floor (echo function)")):
        samples = sorted(latency[f"{side}_ms"])
        axes.step(samples, [(n + 1) / len(samples) for n in range(len(samples))], where="post", label=label)
    axes.set_xlabel("publish -> receive (ms), on the emulator")
    axes.set_ylabel("share of events")
    axes.set_title("Latency CDF, measured side by side")
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_fanout(fanout: dict, broadcasts: list[dict], path: Path) -> Path:
    figure, axes = _figure()
    sessions = fanout["sessions"]
    axes.plot(
        [r["size"] for r in sessions],
        [r["median_ms"] / 1000 for r in sessions],
        "o-",
        label="WebSocket sessions (measured)",
    )
    sizes = [r["size"] for r in broadcasts]
    axes.plot(
        sizes,
        [r["stack"]["seconds"] for r in broadcasts],
        "s-",
        label=f"simulated connections ({SIMULATED_POST_MS} ms per post)",
    )
    axes.plot(sizes, [r["bare"]["seconds"] for r in broadcasts], "^:", label="bare posting loop, same simulator")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("audience (connections)")
    axes.set_ylabel("publish -> last delivery (s)")
    axes.set_title("Fan-out time against audience size")
    axes.legend(loc="upper left")
    return _save(figure, path)


def cost_curves(counts: dict) -> dict:
    """Cost per million events against the total connection count, by audience: this module and the Scan design."""
    from scripts.lab import cost_model

    connections = list(COST_CONNECTIONS)
    audiences = {}
    for label, audience in (("1", 1), ("100", 100), ("everyone", None)):
        sizes = [audience or total for total in connections]
        audiences[label] = {
            "this module": [cost_model.per_event(counts, size).total * 1e6 for size in sizes],
            "Scan per message": [
                cost_model.scan_per_event(size, total).total * 1e6
                for size, total in zip(sizes, connections, strict=True)
            ],
        }
    return {"connections": connections, "unit": "USD per million events", "audiences": audiences}


def plot_cost(curves: dict, path: Path) -> Path:
    """`curves`: {"connections": [...], "unit": ..., "audiences": {label: {design: [...]}}} (see `cost_curves`)."""
    figure, axes = _figure()
    for number, (audience, designs) in enumerate(curves["audiences"].items()):
        for design, values in designs.items():
            style = "o-" if design == "this module" else "x--"
            axes.plot(curves["connections"], values, style, color=f"C{number}", label=f"{design}, audience {audience}")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("connections")
    axes.set_ylabel(curves["unit"])
    axes.set_title("Cost per event against connection count (reasoned)")
    axes.legend(loc="upper left", fontsize="x-small")
    return _save(figure, path)


# --- the run -------------------------------------------------------------------


def emulator_version() -> str:
    site_packages = [str(path) for path in (ROOT / ".venv-ministack" / "lib").glob("python*/site-packages")]
    found = next(importlib.metadata.distributions(name="ministack", path=site_packages), None)
    return found.version if found else "unknown"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_facts(scale: str) -> dict:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": source_revision(),
        "command": COMMAND if scale == "default" else LARGE_COMMAND,
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "load_average": os.getloadavg()[0],
            "python": platform.python_version(),
            "emulator": emulator_version(),
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        },
    }


def measure_offline() -> dict:
    """Cold starts and request counts: no emulator needed."""
    from scripts.lab import cold_start, dependency_choice, post_cpu, request_counts

    return {
        "cold_start": cold_start.measure(runs=5),
        "dependencies": dependency_choice.measure(),
        "request_counts": request_counts.measure(),
        "post_cpu": post_cpu.measure(latency_ms=SIMULATED_POST_MS),
    }


def write(results: dict, out: Path) -> list[Path]:
    """docs/benchmarks.md, its plots and the figures behind them (results.json)."""
    from scripts.lab import cost_model

    plots = out / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    data = plots / RESULTS_FILE
    data.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    counts = results["request_counts"]
    page = out / "benchmarks.md"
    page.write_text(render(results, cost_model.render(counts)))
    return [
        page,
        data,
        plot_latency(results["latency"], plots / "latency-cdf.png"),
        plot_fanout(results["fanout"], results["broadcasts"], plots / "fanout-vs-audience.png"),
        plot_cost(cost_curves(counts), plots / "cost-vs-connections.png"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    results = json.loads((args.out / PLOTS_DIR / RESULTS_FILE).read_text())
    for path in write(results, args.out):
        print(path)


if __name__ == "__main__":
    main()
