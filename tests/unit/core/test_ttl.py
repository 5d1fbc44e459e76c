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


def test_a_large_table_is_sampled_from_a_random_segment_on_until_the_sample_is_full(events_table):
    now = int(time.time())
    write_events(events_table, "user:big", 250)  # one topic: all of it in one segment
    write_events(events_table, "user:small", 20, expires_at=now - 60)
    segments = []

    samples = [
        sample_expired(events_table, now, pick=lambda count, s=first: segments.append(count) or s) for first in (0, 1)
    ]

    assert segments == [2, 2]  # 272 items: two segments of about a hundred
    assert [sample.sampled for sample in samples] == [100, 100]  # whichever segment comes first


def test_the_estimate_scales_the_sample_to_the_table():
    assert ExpirySample(items=10_000, sampled=100, expired_in_sample=3).expired_estimate == 300
    assert ExpirySample(items=0, sampled=0, expired_in_sample=0).expired_estimate == 0
