"""Property test: writers storing batches on shared topics, interleaved request by request.

Each writer is one process-events invocation storing its batch; several
deliveries of one message are writers sharing an event id. Hypothesis picks
which writer's next DynamoDB request runs (each request is atomic, as in
DynamoDB), over the in-memory fake (test_store.py runs the same write path on
moto and on the fake). Whatever the order:

- every (topic, event id) is stored exactly once, and every writer that has it
  in its batch gets that one seq back;
- a writer storing a second batch may condition on the counter it left instead
  of reading it (EventStore's guess): a guess made stale by another writer
  changes none of the above;
- each topic's seqs are 1..n without a gap, and its counter is n.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from realtime.events import store as store_module
from realtime.events.store import BatchResult, EventStore, NewEvent

from ..fake_dynamodb import FakeDynamoDB

# An event's audience is part of its message: every delivery of an id has the same topics.
AUDIENCES = {"a": ["t1"], "b": ["t1", "t2"], "c": ["t2"], "d": ["t1", "t2"], "e": ["t1"], "f": ["t2", "t1"]}
PUBLISHED = "2026-01-01T00:00:00.000Z"


class Interleaver:
    """Runs each writer in a thread and lets one DynamoDB request through at a time, in the order `choose` picks."""

    def __init__(self, db: FakeDynamoDB, choose: Callable[[list[str]], str]) -> None:
        self._choose = choose
        self._changed = threading.Condition()
        self._running: set[str] = set()
        self._waiting: set[str] = set()
        self._turn: str | None = None
        self._free = False  # the schedule was abandoned (hypothesis stopped drawing): let everyone finish
        db.before_call = self._gate

    def _gate(self, _operation: str) -> None:
        me = threading.current_thread().name
        with self._changed:
            self._running.discard(me)
            self._waiting.add(me)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._turn == me or self._free)
            self._waiting.discard(me)
            self._turn = None

    def run(self, writers: dict[str, Callable[[], BatchResult]]) -> dict[str, BatchResult]:
        results: dict[str, BatchResult] = {}
        errors: list[BaseException] = []

        def body(name: str, writer: Callable[[], BatchResult]) -> None:
            try:
                results[name] = writer()
            except BaseException as error:  # reported by the test, not lost in the thread
                errors.append(error)
            finally:
                with self._changed:
                    self._running.discard(name)
                    self._changed.notify_all()

        self._running = set(writers)
        threads = [threading.Thread(target=body, args=item, name=item[0]) for item in writers.items()]
        for thread in threads:
            thread.start()
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: not self._running)
                    if not self._waiting:
                        break
                    chosen = self._choose(sorted(self._waiting))
                    self._running.add(chosen)
                    self._turn = chosen
                    self._changed.notify_all()
        finally:
            with self._changed:
                self._free = True
                self._changed.notify_all()
            for thread in threads:
                thread.join()
        assert not errors, errors
        return results


batch = st.lists(st.sampled_from(sorted(AUDIENCES)), min_size=1, max_size=4, unique=True)
# Per writer, one to three batches stored one after the other (the third may be a guess).
writers = st.lists(st.lists(batch, min_size=1, max_size=3), min_size=2, max_size=3)


@settings(max_examples=300, deadline=None)
@given(writers=writers, chunk=st.sampled_from([1, 2, 49]), data=st.data())
def test_interleaved_batches_store_each_event_once_with_gapless_seqs(writers, chunk, data):
    db = FakeDynamoDB()
    table = db.create_table("events", "topic", "seq")
    interleaver = Interleaver(db, lambda waiting: data.draw(st.sampled_from(waiting)))

    def writer(batches: list[list[str]]) -> Callable[[], BatchResult]:
        # One topic at a time: the interleaver schedules by thread, one per writer.
        store = EventStore(table, 3600, sleep=lambda _seconds: None, parallel_topics=1)

        def run() -> BatchResult:
            merged = BatchResult()
            for ids in batches:
                events = [
                    NewEvent(topic, event_id, "t", lambda seq, at, event_id=event_id: event_id)
                    for event_id in ids
                    for topic in AUDIENCES[event_id]
                ]
                result = store.append_batch(events, PUBLISHED)
                merged.failed |= result.failed
                for key, found in result.stored.items():
                    # A second batch may hold an id of the first: it is created once, by the first.
                    if key not in merged.stored or not merged.stored[key].created:
                        merged.stored[key] = found
            return merged

        return run

    batches = [ids for batches in writers for ids in batches]
    with mock.patch.object(store_module, "EVENTS_PER_TRANSACTION", chunk):
        results = interleaver.run({f"writer-{n}": writer(batches) for n, batches in enumerate(writers)})

    expected = {(topic, event_id) for ids in batches for event_id in ids for topic in AUDIENCES[event_id]}
    for topic in ("t1", "t2"):
        items = [item for (key_topic, _), item in table.items.items() if key_topic == topic]
        events = sorted((int(item["seq"]), item["id"]) for item in items if item["seq"] > 0)
        counter = next((item["lastSeq"] for item in items if item["seq"] == 0), 0)
        stored_here = [event_id for _, event_id in events]
        assert [seq for seq, _ in events] == list(range(1, len(events) + 1)), f"{topic}: gap in {events}"
        assert counter == len(events)
        assert sorted(stored_here) == sorted({event_id for t, event_id in expected if t == topic}), "not exactly once"
        seq_of = {event_id: seq for seq, event_id in events}
        for result in results.values():
            assert not result.failed
            for (result_topic, event_id), found in result.stored.items():
                if result_topic == topic:
                    assert found.seq == seq_of[event_id], f"{event_id} on {topic}: told {found.seq}, stored {seq_of}"
    created = [key for result in results.values() for key, found in result.stored.items() if found.created]
    assert sorted(created) == sorted(expected), "each (topic, id) is created by exactly one writer"
