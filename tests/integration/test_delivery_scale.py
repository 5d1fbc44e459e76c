"""Delivery at scale on the emulator: one broadcast to 10,000 simulated connections.

The connections are written straight into the connections table and registered
in the gateway simulator (scripts/lab/gateway_sim.py, 20 ms per post), and for this
module every function that posts to `@connections` posts to the simulator
instead of the emulator (scripts/lab/simulated_audience.py). The simulator counts
every post each connection receives, so "exactly once" and "only the failed
posts again" are checked per connection.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import pytest
from measurements import FIGURES

from scripts.lab.gateway_sim import Behaviour, simulator_process
from scripts.lab.simulated_audience import posting_to, simulated_audience

pytestmark = [pytest.mark.integration, pytest.mark.scale]

AUDIENCE = 10_000
DELIVERY_TIMEOUT = 180  # seconds; the whole audience normally has its event well within a minute
FAILING_SHARE = 0.05
# Each failing connection refuses this many posts in a row: more than botocore's own
# tries (process-events' client retries 3 times), so the failures reach the delivery code.
FAILURES_EACH = 4


@pytest.fixture(scope="module")
def gateway(stack, aws):
    with (
        simulator_process() as simulator,
        posting_to(aws("lambda"), stack["function_names"].values(), simulator.url) as pointed,
    ):
        assert stack["function_names"]["process-events"] in pointed
        yield simulator


@pytest.fixture(scope="module")
def audience(stack, gateway):
    group = f"crowd-{uuid.uuid4().hex[:8]}"
    with simulated_audience(stack, gateway, [f"{group}-{n:05d}" for n in range(AUDIENCE)], f"group:{group}") as crowd:
        yield crowd


@pytest.fixture
def simulator(gateway, audience):
    """The module's simulator with the default behaviour (20 ms per post, no failures) and zeroed counts."""
    gateway.configure(**dataclasses.asdict(Behaviour()))
    gateway.reset()
    return gateway


def dlq_depth(sqs, queue_url: str) -> int:
    names = [f"ApproximateNumberOfMessages{state}" for state in ("", "NotVisible", "Delayed")]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def broadcast(stack, sqs, topic: str) -> tuple[str, float]:
    event_id = f"crowd-{uuid.uuid4().hex[:12]}"
    message = {"type": "crowd.notice", "id": event_id, "data": {"note": "to everyone"}, "audience": [topic]}
    sent_at = time.time()
    sqs.send_message(QueueUrl=stack["events_queue_url"], MessageBody=json.dumps(message))
    return event_id, sent_at


def record_figures(label: str, stats: dict, sent_at: float) -> None:
    if stats["last_accepted_at"] is None:
        return
    elapsed = stats["last_accepted_at"] - sent_at
    FIGURES.append(
        f"{label}: {stats['accepted']} accepted of {stats['posts']} posts, last one {elapsed:.1f} s after the send "
        f"({stats['accepted'] / elapsed:.0f} posts/s, peak {stats['peak_in_flight']} in flight)"
    )


def test_a_broadcast_to_10000_connections_is_posted_exactly_once_to_each(stack, aws, audience, simulator):
    event_id, sent_at = broadcast(stack, aws("sqs"), audience.topics[0])
    stats = simulator.wait_until_settled(accepted=AUDIENCE, timeout=DELIVERY_TIMEOUT)
    record_figures(f"broadcast to {AUDIENCE} simulated connections", stats, sent_at)

    counts = simulator.counts()
    missing = sorted(i for i in audience.connection_ids if counts[i]["accepted"] == 0)
    posted_again = sorted(i for i in audience.connection_ids if counts[i]["posts"] > 1)
    assert not missing, f"{len(missing)} of {AUDIENCE} connections never got the event, e.g. {missing[:3]}"
    assert not posted_again, f"{len(posted_again)} connections were posted more than once, e.g. {posted_again[:3]}"
    for connection_id in (audience.connection_ids[0], audience.connection_ids[-1]):
        [frame] = [json.loads(text) for text in simulator.connection(connection_id)["frames"]]
        assert (frame["id"], frame["topic"], frame["data"]) == (event_id, audience.topics[0], {"note": "to everyone"})


def test_with_5_percent_of_posts_failing_everyone_gets_the_event_and_only_failed_posts_are_retried(
    stack, aws, audience, simulator
):
    sqs = aws("sqs")
    dlq_before = dlq_depth(sqs, stack["dlq_url"])
    simulator.configure(failure_share=FAILING_SHARE, failures_per_connection=FAILURES_EACH, seed=9)

    event_id, sent_at = broadcast(stack, sqs, audience.topics[0])
    stats = simulator.wait_until_settled(accepted=AUDIENCE, timeout=DELIVERY_TIMEOUT, quiet=5)
    record_figures(f"broadcast to {AUDIENCE} with {FAILING_SHARE:.0%} failing {FAILURES_EACH} times", stats, sent_at)

    counts = simulator.counts()
    failing = [i for i in audience.connection_ids if counts[i]["failed"]]
    missing = sorted(i for i in audience.connection_ids if counts[i]["accepted"] == 0)
    # A post after an accepted one re-sends an event the connection already has: only failed posts may be retried.
    posted_again = sorted(i for i in audience.connection_ids if counts[i]["accepted"] > 1)
    assert 0.03 * AUDIENCE < len(failing) < 0.07 * AUDIENCE, "the simulator did not fail about 5% of the connections"
    assert not missing, f"{len(missing)} of {AUDIENCE} connections never got the event, e.g. {missing[:3]}"
    assert not posted_again, (
        f"{len(posted_again)} connections got the event again after an accepted post "
        f"({sum(1 for i in posted_again if not counts[i]['failed'])} of them never failed), e.g. {posted_again[:3]}"
    )
    assert dlq_depth(sqs, stack["dlq_url"]) == dlq_before, "a stored event reached the events DLQ"
    assert json.loads(simulator.connection(failing[0])["frames"][0])["id"] == event_id
