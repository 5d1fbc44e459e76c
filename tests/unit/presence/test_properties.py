"""Property test: random interleavings of connect, disconnect, lost disconnect, ping, sweep and time.

Hypothesis drives several users through random histories (including two
removers racing for one connection, a connect racing a disconnect of the same
user, redelivered checks and queue outages) on the real stores, trackers and
maintenance, over an in-memory DynamoDB (moto is too slow for thousands of
histories; test_fake_agrees_with_moto checks the stand-in). It asserts that

- a live session is never dropped and nothing is counted that is not a session;
- presence events never go back in version, and without outages alternate
  online/offline;
- no offline follows an online, or a connect, within the grace period (no flap);
- once the system has settled (stale threshold, grace period, a sweep), the
  state equals the truth: records, sessions, online flag and last event.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from realtime.connections.scan_positions import POSITION_SK
from realtime.connections.store import META_SK
from realtime.core.encoding import parse_timestamp
from realtime.presence.repair import OVERDUE_CHECK_MARGIN_SECONDS, UNCONFIRMED_EVENT_AGE_SECONDS

from ..fake_dynamodb import FakeDynamoDB
from .world import CHECKS_QUEUE, EVENTS_QUEUE, Message, World, create_presence_table, interleavings

GRACE = 5
STALE = 180
USERS = ("ann", "bob", "cyd")
GROUPS = {"ann": ("ward-1",), "bob": ("ward-1", "ward-2"), "cyd": ()}
EXAMPLES = 600
HISTORIES_RUN: list[int] = []


def fake_world() -> tuple[World, FakeDynamoDB]:
    db = FakeDynamoDB(page_size=7)  # small pages: maintenance must page through both tables
    connections = db.create_table("connections", "pk", "sk")
    db.create_table("presence", "userId")
    return World(db, connections, grace=GRACE, stale=STALE, presence_table="presence"), db


class PresenceHistories(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.world, self.db = fake_world()
        self.owner: dict[str, str] = {}  # connection id -> user, for every connection ever opened
        self.live: set[str] = set()  # the gateway still has these sockets
        self.lost: set[str] = set()  # dead without a $disconnect
        self.connects: dict[str, list[float]] = defaultdict(list)
        self.outage_happened = False

    # --- what clients, the gateway and the queues do --------------------------------------

    @rule(user=st.sampled_from(USERS))
    def connect(self, user: str) -> None:
        self._tick()
        self._opened(self.world.connect(user, GROUPS[user]), user)

    def _tick(self) -> None:
        """Every step takes a millisecond (the stored timestamps' resolution), so steps are ordered in time."""
        self.world.clock.advance(0.001)

    def _opened(self, connection_id: str, user: str) -> None:
        self.owner[connection_id] = user
        self.live.add(connection_id)
        self.connects[user].append(self.world.clock.now)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        self._tick()
        connection_id = data.draw(st.sampled_from(sorted(self.live)))
        self.live.discard(connection_id)
        self.world.disconnect(connection_id)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def lose_disconnect(self, data: st.DataObject) -> None:
        self._tick()
        connection_id = data.draw(st.sampled_from(sorted(self.live)))
        self.live.discard(connection_id)
        self.lost.add(connection_id)
        self.world.lose(connection_id)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def ping(self, data: st.DataObject) -> None:
        self._tick()
        assert self.world.ping(data.draw(st.sampled_from(sorted(self.live))))

    @rule()
    def sweep(self) -> None:
        self._tick()
        self.world.sweep()

    @rule(seconds=st.sampled_from([0.5, 1, 2, 3, 4.5, 5, 6, 20, 60, 200]))
    def wait(self, seconds: float) -> None:
        self.world.advance(seconds)

    @precondition(lambda self: self.live or self.lost)
    @rule(data=st.data())
    def disconnect_racing_maintenance(self, data: st.DataObject) -> None:
        """A $disconnect and a maintenance run remove one connection, their writes interleaved."""
        self._tick()
        connection_id = data.draw(st.sampled_from(sorted(self.live | self.lost)))
        self.live.discard(connection_id)
        self.lost.discard(connection_id)
        self.world.lose(connection_id)
        steps = list(
            interleavings(
                self.world.removal_steps(connection_id), self.world.removal_steps(connection_id, seen_now=False)
            )
        )
        for step in data.draw(st.sampled_from(steps)):
            step()
        self.world.collect()

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def connect_racing_disconnect(self, data: st.DataObject) -> None:
        """A new tab opens while another tab of the same user closes (a reload), writes interleaved."""
        self._tick()
        closing = data.draw(st.sampled_from(sorted(self.live)))
        user = self.owner[closing]
        opening = f"r{len(self.owner)}"
        self.live.discard(closing)
        self.world.management.alive.discard(closing)
        steps = list(
            interleavings(self.world.opening_steps(opening, user, GROUPS[user]), self.world.removal_steps(closing))
        )
        for step in data.draw(st.sampled_from(steps)):
            step()
        self._opened(opening, user)
        self.world.collect()

    @precondition(lambda self: self.world.delivered_checks)
    @rule(data=st.data())
    def redeliver_check(self, data: st.DataObject) -> None:
        """SQS delivers at least once: an old check comes again."""
        self._tick()
        body = data.draw(st.sampled_from(self.world.delivered_checks))
        self.world.sqs.messages.append(Message(CHECKS_QUEUE, body, self.world.clock.now))
        self.world.run_due_checks()

    @rule(failing=st.booleans())
    def queue_outage(self, failing: bool) -> None:
        """SendMessage fails (both queues) until the next outage rule says otherwise."""
        self.outage_happened |= failing
        self.world.sqs.failing = {EVENTS_QUEUE, CHECKS_QUEUE} if failing else set()

    # --- invariants, after every step -------------------------------------------------------

    @invariant()
    def live_sessions_are_never_dropped_and_nothing_else_is_counted(self) -> None:
        for user in USERS:
            state = self.world.state(user)
            counted = state.connection_ids if state else frozenset()
            live = {c for c in self.live if self.owner[c] == user}
            assert live <= counted, (user, live, counted)
            assert counted <= live | {c for c in self.lost if self.owner[c] == user}
            if live:
                assert state.online

    @invariant()
    def events_never_go_back_and_never_flap(self) -> None:
        for user in USERS:
            events = self.world.events_of(user)
            versions = [e.version for e in events]
            assert versions == sorted(set(versions)), versions
            kinds = [e.type for e in events]
            if not self.outage_happened:
                assert kinds == [("presence.online", "presence.offline")[i % 2] for i in range(len(kinds))], kinds
            flips = [(parse_timestamp(e.occurred_at), e.type) for e in events]
            for (earlier, kind), (later, next_kind) in itertools.pairwise(flips):
                if (kind, next_kind) == ("presence.online", "presence.offline"):
                    assert later - earlier >= GRACE, flips
            for at, kind in flips:
                if kind == "presence.offline":
                    assert not [c for c in self.connects[user] if at - GRACE < c <= at], (at, self.connects[user])

    # --- settle, then compare with the truth ---------------------------------------------

    def teardown(self) -> None:
        if not hasattr(self, "world"):
            return
        HISTORIES_RUN.append(1)
        self.queue_outage(False)
        world = self.world
        world.advance(STALE + 1)  # every lost connection is now stale
        world.sweep()
        world.advance(GRACE)
        world.advance(OVERDUE_CHECK_MARGIN_SECONDS + UNCONFIRMED_EVENT_AGE_SECONDS)
        world.sweep()  # overdue offline decisions, unconfirmed events
        world.advance(GRACE)
        world.sweep()

        records = {i["connectionId"] for i in self.db.all_items("connections") if i["sk"] == META_SK}
        subscribed = {  # the scans' saved positions are neither records nor subscriptions
            i["connectionId"] for i in self.db.all_items("connections") if i["sk"] not in (META_SK, POSITION_SK)
        }
        assert records == self.live
        assert subscribed == self.live
        for user in USERS:
            state = world.state(user)
            live = {c for c in self.live if self.owner[c] == user}
            if state is None:
                assert not live
                assert not self.connects[user]
                continue
            assert state.connection_ids == live
            assert state.online == bool(live)
            assert not state.unannounced
            events = world.events_of(user)
            assert events, user  # everyone who connected was announced at least once
            assert events[-1].type == ("presence.online" if live else "presence.offline")
            assert events[-1].version == state.state_version


PresenceHistories.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same histories every run; change the seed by editing EXAMPLES
)


class TestPresenceHistories(PresenceHistories.TestCase):
    @classmethod
    def tearDownClass(cls) -> None:
        print(f"\npresence property test: {len(HISTORIES_RUN)} random histories (interleavings) checked")
        assert len(HISTORIES_RUN) >= 200


# --- the in-memory DynamoDB agrees with moto --------------------------------------------------


def _normalized(items):
    def plain(value):
        if isinstance(value, Decimal):
            return int(value)
        if isinstance(value, set):
            return sorted(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return sorted(json.dumps({k: plain(v) for k, v in item.items()}, sort_keys=True) for item in items)


def _random_history(world: World, rng: random.Random) -> None:
    live: list[str] = []
    for _ in range(60):
        action = rng.choice(["connect", "connect", "disconnect", "lose", "ping", "wait", "sweep", "race"])
        if action == "connect" or not live:
            user = rng.choice(USERS)
            live.append(world.connect(user, GROUPS[user]))
        elif action == "disconnect":
            world.disconnect(live.pop(rng.randrange(len(live))))
        elif action == "lose":
            world.lose(live.pop(rng.randrange(len(live))))
        elif action == "ping":
            world.ping(rng.choice(live))
        elif action == "wait":
            world.advance(rng.choice([1, 3, 6, 200]))
        elif action == "race":
            connection_id = live.pop(rng.randrange(len(live)))
            world.lose(connection_id)
            a, b = world.removal_steps(connection_id), world.removal_steps(connection_id, seen_now=False)
            for step in rng.choice(list(interleavings(a, b))):
                step()
            world.collect()
        else:
            world.sweep()
    world.advance(STALE + 1)
    world.sweep()
    world.advance(GRACE)


@pytest.mark.parametrize("seed", [1, 2])
def test_fake_agrees_with_moto(dynamodb, connections_table, seed):
    create_presence_table(dynamodb)
    moto_world = World(dynamodb, connections_table, grace=GRACE, stale=STALE)
    fake, db = fake_world()

    _random_history(moto_world, random.Random(seed))
    _random_history(fake, random.Random(seed))

    assert [(e.type, e.id, e.at) for e in fake.emitted] == [(e.type, e.id, e.at) for e in moto_world.emitted]
    assert _normalized(db.all_items("presence")) == _normalized(
        dynamodb.Table("realtime-test-presence").scan()["Items"]
    )
    assert _normalized(db.all_items("connections")) == _normalized(connections_table.scan()["Items"])
