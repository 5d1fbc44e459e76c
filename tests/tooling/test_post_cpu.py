"""scripts/lab/post_cpu.py: CPU per post of delivery's posting code against the gateway simulator."""

from __future__ import annotations

import pytest

from scripts.lab import bench_report, post_cpu


def test_each_client_posts_every_frame_and_the_signed_one_spends_less_cpu_per_post():
    results = post_cpu.measure(batches=3, batch_size=200, concurrency=16, latency_ms=2)

    assert list(results) == list(post_cpu.CLIENTS)
    for name, figures in results.items():
        assert (figures["posts"], figures["sent"], figures["accepted"]) == (600, 600, 600), name
        assert 0 < figures["cpu_ms_per_post"]["median"] <= figures["cpu_ms_per_post"]["p95"], name
        assert figures["posts_per_second"] > 0, name
    assert results["signed"]["cpu_ms_per_post"]["median"] < results["boto3"]["cpu_ms_per_post"]["median"]


def figures(median_ms: float, p95_ms: float, posts_per_second: float) -> dict:
    return {
        "batches": 10,
        "posts": 5000,
        "sent": 5000,
        "accepted": 5000,
        "cpu_ms_per_post": {"median": median_ms, "p95": p95_ms},
        "posts_per_second": posts_per_second,
        "concurrency": 64,
        "latency_ms": 20.0,
    }


@pytest.mark.parametrize(
    ("median_ms", "wall_rate", "expected"),
    [
        (1.0, 3000, 512 / 1769 / 0.001),  # CPU binds: 0.29 vCPU at 1 ms a post
        (0.1, 1000, 1000),  # the gateway's answers bind first
    ],
)
def test_posts_per_second_of_a_function_is_bound_by_its_share_of_a_cpu(median_ms, wall_rate, expected):
    assert post_cpu.posts_per_second_at(figures(median_ms, median_ms, wall_rate), 512) == pytest.approx(expected)


def test_the_benchmarks_page_shows_cpu_per_post_before_and_after():
    results = {"post_cpu": {"boto3": figures(0.834, 1.178, 979), "signed": figures(0.435, 0.555, 1651)}}

    section = bench_report.render_post_cpu(results)

    assert "## CPU per post (measured)" in section
    assert "| Poster, boto3's client (before) | 0.834 ms | 1.178 ms | 979 | 347 |" in section
    assert "| Poster, signed client (delivery's) | 0.435 ms | 0.555 ms | 1651 | 665 |" in section
    assert bench_report.render_post_cpu({}) == ""  # figures from before the measurement existed
