import time

from realtime.core.ttl import ExpirySample, sample_expired
from stored_events import write_events


def test_counts_the_items_past_expiry_that_ttl_has_not_deleted(events_table):
    now = int(time.time())
    write_events(events_table, "user:1", 4, expires_at=now - 60)
    write_events(events_table, "user:2", 6)

    sample = sample_expired(events_table, now)

    # Two topic counters (they never expire) besides the ten events; a small table is sampled whole.
    assert (sample.items, sample.sampled, sample.expired_in_sample) == (12, 12, 4)
    assert sample.expired_estimate == 4


def test_a_large_table_is_sampled_in_one_random_segment(events_table):
    write_events(events_table, "user:1", 250)
    segments = []

    sample_expired(events_table, int(time.time()), pick=lambda count: segments.append(count) or 0)

    assert segments == [2]  # 251 items: two segments of about a hundred


def test_the_estimate_scales_the_sample_to_the_table():
    assert ExpirySample(items=10_000, sampled=100, expired_in_sample=3).expired_estimate == 300
    assert ExpirySample(items=0, sampled=0, expired_in_sample=0).expired_estimate == 0
