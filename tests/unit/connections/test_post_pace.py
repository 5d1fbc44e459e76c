"""One post budget: each invocation spaces its posts to its share, whatever its threads do."""

import threading

from realtime.connections.posting import Poster, PostPace

from ..support import FakeManagementClient


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept = []
        self._lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        with self._lock:
            self.slept.append(seconds)


def test_posts_take_evenly_spaced_slots_of_the_invocations_share():
    clock = Clock()
    pace = PostPace(4, clock=clock, sleep=clock.sleep)  # 4 posts a second: a slot every 0.25 s

    for _ in range(5):
        pace.wait()

    assert clock.slept == [0.25, 0.5, 0.75, 1.0]  # the first goes at once; time did not move meanwhile


def test_a_paced_poster_makes_every_post_and_waits_its_share_across_threads():
    clock = Clock()
    client = FakeManagementClient()
    poster = Poster(client, 8, on_gone=lambda _id: None, pace=PostPace(100, clock=clock, sleep=clock.sleep))

    report = poster.post([(f"c{n}", b"x") for n in range(50)])

    assert report.sent == 50
    assert len(client.posts) == 50
    # 50 posts at 100/s from 8 threads: 49 of them waited, for distinct slots up to 0.49 s.
    assert sorted(round(s, 2) for s in clock.slept) == [round(0.01 * n, 2) for n in range(1, 50)]
