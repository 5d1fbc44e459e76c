"""Delivery turns: a topic's batches posted in seq order across process-events invocations.

Batches of one topic are stored one after another (each takes the next seqs
from the topic's counter) but posted by concurrent invocations: without turns,
a socket gets the frames of two batches interleaved, and its client holds each
early frame back (`gapGraceMs`) or reads the gap over HTTP. With turns, an
invocation that has stored seqs n.. of a topic with subscribers to post waits,
before posting, until the topic's `postedSeq` (item (topic, -1) of the events
table) reaches n - 1, that is until the batch before it has posted, and marks
its own last seq when it has. The wait is bounded (`delivery_order_wait_ms`, and
never more than half of what is left of the invocation, so that waiting can
never make it time out: two batches can wait on each other when their events
share two topics committed in opposite orders): a batch whose predecessor
crashed, or is still posting a large page, goes on after the bound, and
clients put the frames in order as before. A topic never
marked (new, or stored by a version without turns) has nobody to wait for.
A batch that follows one this container posted itself does not read the mark:
marks only grow, so the one it wrote still holds (the latency of a topic
written by one warm invocation at a time is then no read longer).

Only inline posts take turns: fan-out pages of a larger audience are posted by
parallel workers as before, and retries come later by design.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import msgspec

from realtime.core.observability import logger
from realtime.events.store import EventStore

POLL_SECONDS = 0.02  # between two reads of the marks while waiting
# Next in line (at most a batch's worth of seqs still to post ahead): read the mark four times as often,
# so the turn passes within a few milliseconds of the mark, without every waiter reading that often.
NEXT_IN_LINE_POLL_SECONDS = 0.005
NEXT_IN_LINE_SEQS = 10
MAX_KNOWN_MARKS = 10_000  # topics whose last mark this container remembers


class TurnReport(msgspec.Struct):
    waited_ms: int = 0  # how long the batch waited for the batches before it
    late: list[str] = msgspec.field(default_factory=list)  # topics whose predecessor had not posted within the bound


class DeliveryTurns:
    def __init__(
        self,
        store: EventStore,
        wait_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._wait_seconds = wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._marked: dict[str, int] = {}  # topic -> the highest seq this container marked posted

    def wait(self, first_seqs: Mapping[str, int], *, deadline: float | None = None) -> TurnReport:
        """Wait, at most the bound (and half the time left before `deadline`, on this clock), until each
        topic has been posted up to the seq before `first_seqs`'."""
        report = TurnReport()
        pending = {topic: seq for topic, seq in first_seqs.items() if self._marked.get(topic, -1) < seq - 1}
        started = self._clock()
        bound = self._wait_seconds if deadline is None else min(self._wait_seconds, (deadline - started) / 2)
        while pending:
            marks = self._store.posted_through(pending)
            pending = {topic: seq for topic, seq in pending.items() if topic in marks and marks[topic] < seq - 1}
            elapsed = self._clock() - started
            if not pending or elapsed >= bound:
                break
            next_in_line = all(seq - 1 - marks[topic] <= NEXT_IN_LINE_SEQS for topic, seq in pending.items())
            self._sleep(min(NEXT_IN_LINE_POLL_SECONDS if next_in_line else POLL_SECONDS, bound - elapsed))
        report.waited_ms = round((self._clock() - started) * 1000)
        report.late = sorted(pending)
        return report

    def done(self, last_seqs: Mapping[str, int]) -> None:
        """This batch has posted: the next one of each topic may go. A mark that fails only makes the
        next batch wait out the bound: logged, never raised (the events are stored and posted)."""
        for topic, seq in last_seqs.items():
            try:
                self._store.mark_posted(topic, seq)
            except Exception as error:  # throttling, network: the next batch waits its bound
                logger.warning("Delivery turn not marked", extra={"topic": topic, "seq": seq, "error": repr(error)})
            else:  # the mark is now at least `seq` (a higher one written by another invocation stays)
                self._marked[topic] = max(seq, self._marked.pop(topic, 0))  # re-inserted last: oldest go first
                while len(self._marked) > MAX_KNOWN_MARKS:
                    del self._marked[next(iter(self._marked))]
