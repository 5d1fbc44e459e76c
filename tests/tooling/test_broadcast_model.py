"""The broadcast model: what binds a broadcast on AWS, and the emulator's fit on two sizes."""

import pytest

from scripts.lab.broadcast_model import Account, Deployment, fit, on_aws, scenarios, worker_rate

CPU_MS = 0.576  # make bench's signed poster, median (docs/benchmarks.md)


def test_a_worker_is_cpu_bound_until_posts_are_slow():
    deployment = Deployment(fanout_concurrency=64, fanout_memory_size=1769)  # one vCPU
    assert worker_rate(deployment, 1.0, post_latency=0.02) == pytest.approx(1000)  # 1 ms of CPU a post
    assert worker_rate(deployment, 1.0, post_latency=0.2) == pytest.approx(320)  # 64 in flight / 0.2 s


def test_the_documented_1m_broadcast_is_within_1_5x_of_the_quota_bound_and_says_what_binds():
    predictions = scenarios(CPU_MS)

    defaults = predictions["1M sockets, quota 30,000/s, otherwise defaults"]
    sized = predictions["1M sockets, quota 30,000/s, fanout_maximum_concurrency = 100"]
    assert defaults.quota_bound_seconds == pytest.approx(1_000_000 / (30_000 - 1_000_000 / 60))
    # The budget (30,000 - 16,667 - 250 - 250) is split over 2 x 10 + 20 invocations: fanout gets half of it.
    assert defaults.binds == "the post budget (12,833/s, 320 per invocation x 20 fanout)"
    assert defaults.ratio > 1.5
    assert sized.ratio <= 1.5
    assert sized.invocations == 1 + 1000  # process-events, then a page job per 1,000 past the first 500


def test_the_post_budget_is_never_passed_whatever_the_workers():
    account = Account(100_000)
    for workers in (2, 20, 60, 200):
        deployment = Deployment(fanout_maximum_concurrency=workers)
        at_once = 2 * deployment.process_events_maximum_concurrency + workers
        assert deployment.share(account) * at_once <= deployment.budget(account) == 7_833


def test_one_key_makes_the_page_chain_bind():
    one_key = on_aws(1_000_000, Deployment(shards=1), Account(1_000_000, requests_per_second=30_000), CPU_MS)

    assert one_key.binds.startswith("the page chains (1000 pages")
    assert one_key.seconds > 1.5 * one_key.quota_bound_seconds


def test_keepalives_past_the_quota_are_refused_with_the_arithmetic():
    with pytest.raises(ValueError, match="16,667 requests/s, the whole quota of 10,000"):
        on_aws(1_000_000, Deployment(), Account(1_000_000), CPU_MS)


def test_the_emulator_fit_goes_through_the_two_sizes():
    fitted = fit({1_000: 1.5, 10_000: 7.0})

    assert fitted.seconds(1_000) == pytest.approx(1.5)
    assert fitted.seconds(10_000) == pytest.approx(7.0)
    assert fitted.posts_per_second == pytest.approx(9_000 / 5.5)
