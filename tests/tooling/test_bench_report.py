"""docs/benchmarks.md shows the figures `make bench` measured, as ratios to the floor (scripts/lab/bench_report.py)."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from io import BytesIO
from unittest import mock

import pytest

from scripts.lab import bench_report
from scripts.lab.bench_floor import echo_zip, floor_message


@pytest.fixture
def results():
    return {
        "run": {
            "date": "2026-12-01 07:00 UTC",
            "command": "make bench",
            "wall_seconds": 480.0,
            "machine": {
                "cores": 2,
                "cpu": "AMD EPYC",
                "memory_gb": 23.5,
                "load_average": 1.5,
                "python": "3.12.1",
                "emulator": "1.5.33",
                "os": "Linux 6.1 x86_64",
            },
        },
        "latency": {
            "pipeline_ms": [40.0, 50.0, 60.0, 70.0, 200.0],
            "floor_ms": [20.0, 25.0, 30.0, 35.0, 40.0],
            "pipeline_first_ms": 900.0,
            "floor_first_ms": 600.0,
        },
        "throughput": [
            {
                "case": "one topic",
                "topics": 1,
                "events": 200,
                "pipeline_seconds": [4.0, 5.0],
                "floor_seconds": [1.0, 1.0],
                "pipeline_warm_up_seconds": 20.0,
                "floor_warm_up_seconds": 2.0,
            },
            {
                "case": "100 topics",
                "topics": 100,
                "events": 200,
                "pipeline_seconds": [8.0],
                "floor_seconds": [2.0],
                "pipeline_warm_up_seconds": 9.0,
                "floor_warm_up_seconds": 3.0,
            },
        ],
        "fanout": {
            "concurrency": 32,
            "rounds": 5,
            "sessions": [{"size": 1, "median_ms": 60.0}, {"size": 100, "median_ms": 500.0}],
            "serial": {"size": 100, "median_ms": 2000.0},
        },
        "broadcasts": [
            {"size": 1000, "stack": {"seconds": 2.0, "accepted": 1000}, "bare": {"seconds": 1.0, "accepted": 1000}},
            {"size": 10000, "stack": {"seconds": 10.0, "accepted": 9000}, "bare": {"seconds": 8.0, "accepted": 10000}},
        ],
        "cold_start": {
            "python": "3.12.1",
            "runs": 5,
            "boto3_ms": 150.0,
            "handlers": {"ws-disconnect": {"import_ms": 170.0, "setup_ms": 190.0}},
        },
        "request_counts": {
            "ping": {
                "requests": {"dynamodb:UpdateItem": 2, "execute-api:PostToConnection": 1},
                "dynamodb": 2,
                "rcu": 0.0,
                "wcu": 2.0,
                "sqs": 0,
                "execute-api": 1,
            }
        },
    }


def test_percentiles_interpolate_between_samples():
    samples = [float(n) for n in range(1, 101)]
    assert bench_report.percentile(samples, 50) == pytest.approx(50.5)
    assert bench_report.percentile(samples, 95) == pytest.approx(95.05)
    assert bench_report.percentile([7.0], 95) == 7.0


def test_latency_is_given_as_a_ratio_to_the_floor(results):
    pipeline, floor, ratio = bench_report.latency_rows(results["latency"])
    assert (pipeline["median_ms"], floor["median_ms"]) == (60.0, 30.0)
    assert ratio["median_ms"] == pytest.approx(2.0)
    assert ratio["p95_ms"] == pytest.approx(pipeline["p95_ms"] / floor["p95_ms"])


def test_throughput_takes_the_median_round_of_each_side(results):
    row = bench_report.throughput_row(results["throughput"][0])
    assert row["pipeline"] == pytest.approx(200 / 4.5)
    assert row["floor"] == pytest.approx(200.0)
    assert row["ratio"] == pytest.approx(1 / 4.5)


def test_the_page_labels_each_kind_of_figure_and_names_the_machine(results):
    page = bench_report.render(results, "| cost table |")
    for heading in (
        "## Latency: publish to receive, against the floor (measured)",
        "## Throughput (measured)",
        "**WebSocket sessions (measured)**",
        "**Simulated connections (simulated)**",
        "## Cold start (measured)",
        "## Requests and capacity per operation (counted)",
        "## Cost (reasoned)",
    ):
        assert heading in page
    assert "Emulator latencies are not AWS's" in page
    assert "| pipeline / floor |  | **2.00x** |" in page
    assert "| one topic | 1 | 200 | 44 events/s | 200 events/s | **0.22** |" in page
    assert "one topic: 20.0 s through the pipeline, 2.0 s through the floor" in page
    assert "only 9,000 posted" in page
    assert "| ws-disconnect | 170 ms | 190 ms | 40 ms |" in page
    for machine in ("ministack 1.5.33", "2 cores, AMD EPYC", "`make bench`", "2026-12-01 07:00 UTC"):
        assert machine in page
    assert "| cost table |" in page
    assert "| `ping` | 2 | 0 | 2 | 0 | 1 | dynamodb:UpdateItem 2, execute-api:PostToConnection 1 |" in page


def test_frame_order_is_shown_with_turns_off_and_on_side_by_side(results):
    results["ordering"] = {
        "sockets": 200,
        "events": 30,
        "rounds": 2,
        "deployed_wait_ms": 1000,
        "without turns": {"frames": 12000, "late": 6600, "gap_reads": 30, "seconds": [2.0, 3.0]},
        "with turns": {"frames": 12000, "late": 120, "gap_reads": 0, "seconds": [2.5, 3.5]},
    }

    page = bench_report.render(results, "")

    assert "## Frame order in a burst (measured)" in page
    assert "| without turns | 6,600 of 12,000 (55.0%) | 30 | 2.50 s |" in page
    assert "| with turns (1000 ms bound) | 120 of 12,000 (1.0%) | 0 | 3.00 s |" in page
    assert "without turns 55.0% (30 past the gap grace), with turns 1.0% (0 past the gap grace)" in (
        bench_report.summary(results)
    )


def test_the_broadcast_model_is_fitted_on_the_runs_1k_and_10k_broadcasts(results):
    figures = {"accepted": 500, "batches": 1, "concurrency": 64, "latency_ms": 20, "posts": 500, "sent": 500}
    results["post_cpu"] = {
        name: figures | {"cpu_ms_per_post": {"median": 0.6, "p95": 1.0}, "posts_per_second": 1500.0}
        for name in ("boto3", "signed", "bare")
    }
    results["broadcasts"][1]["stack"]["accepted"] = 10000

    page = bench_report.render(results, "")

    assert "## Broadcast model (fitted and reasoned)" in page
    # 1,000 in 2.0 s, 10,000 in 10.0 s: R = 9,000 / 8 s = 1,125 posts/s, t0 = 2.0 - 1,000 / 1,125 = 1.11 s.
    assert "t0 = 1.11 s, R = 1,125 posts/s" in page
    assert "| 10,000 | 10.0 s | 10.0 s | 1.00 |" in page
    assert "`make bench-broadcast`" in page  # no 100,000 in this run: where to get it
    assert "| 1M sockets, quota 30,000/s, fanout_maximum_concurrency = 100 | 1,000,000 |" in page


def test_plots_are_small_pngs(results, tmp_path):
    written = [
        bench_report.plot_latency(results["latency"], tmp_path / "latency.png"),
        bench_report.plot_fanout(results["fanout"], results["broadcasts"], tmp_path / "fanout.png"),
        bench_report.plot_cost(
            {
                "connections": [1, 100, 10_000],
                "unit": "USD per million events",
                "audiences": {"1": {"this module": [1, 1, 1], "Scan per message": [1, 2, 3]}},
            },
            tmp_path / "cost.png",
        ),
    ]
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG")
        assert path.stat().st_size < 100_000


def test_the_floor_posts_the_frame_it_is_given(tmp_path):
    zipfile.ZipFile(BytesIO(echo_zip())).extractall(tmp_path)
    spec = importlib.util.spec_from_file_location("echo", tmp_path / "echo.py")
    echo = importlib.util.module_from_spec(spec)
    client = mock.Mock()
    with mock.patch("boto3.client", return_value=client), mock.patch.dict("os.environ", {"CONNECTIONS_ENDPOINT": "x"}):
        spec.loader.exec_module(echo)
    frame = {"id": "e1", "type": "bench.tick"}
    echo.handler({"Records": [{"body": floor_message("conn-1", frame)}]}, None)
    client.post_to_connection.assert_called_once_with(ConnectionId="conn-1", Data=json.dumps(frame).encode())


def test_the_dependency_choices_show_what_is_used_beside_its_candidate(results):
    results = results | {
        "dependencies": {
            "runs": 7,
            "json": {
                "kept": {"name": "json (standard library)", "import_ms": 0.0},
                "candidate": {"name": "orjson", "import_ms": 0.9},
                "call": "serialize a frame",
                "kept_us": 4.5,
                "candidate_us": 0.24,
            },
            "validation": {
                "kept": {"name": "pydantic", "import_ms": 41.3},
                "candidate": {"name": "msgspec", "import_ms": 4.2},
                "call": "parse and validate a producer message",
                "kept_us": 7.2,
                "candidate_us": 4.6,
            },
        }
    }

    page = bench_report.render(results, "| cost table |")

    assert "## Dependencies (measured)" in page
    assert "| validation | pydantic (used) | 41.3 ms | 7.20 µs | parse and validate a producer message |" in page
    assert "|  | msgspec | 4.2 ms | 4.60 µs |  |" in page
    assert "| json | json (standard library) (used) | 0.0 ms | 4.50 µs | serialize a frame |" in page


def test_a_functions_own_cold_start_share_is_timed_after_import_boto3_in_the_same_interpreters(results):
    cold_start = results["cold_start"]
    cold_start["handlers"]["ws-disconnect"]["own_ms"] = 30.0  # its medians: boto3 alone 150, import + setup 190
    assert "| ws-disconnect | 170 ms | 190 ms | 30 ms | 0.20x |" in bench_report.render_cold_start(cold_start)
    del cold_start["handlers"]["ws-disconnect"]["own_ms"]  # results from before: the difference of the medians
    assert "| ws-disconnect | 170 ms | 190 ms | 40 ms | 0.27x |" in bench_report.render_cold_start(cold_start)
