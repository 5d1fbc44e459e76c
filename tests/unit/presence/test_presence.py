"""The presence state machine: sessions, flips, the delayed offline check, maintenance repair."""

from __future__ import annotations

import json

import pytest
from realtime.connections.posting import Poster
from realtime.events.audience import EventTypeRules
from realtime.events.pipeline import EventPipeline
from realtime.events.producer import parse_producer_message
from realtime.presence.announcer import (
    MAX_EVENT_ID_LENGTH,
    OfflineCheck,
    presence_event_id,
    presence_message,
)
from realtime.presence.sessions import CONNECTING_WINDOW_SECONDS
from realtime.presence.store import PresenceState

from ..support import FakeManagementClient, client_error
from .world import CHECKS_QUEUE, EVENTS_QUEUE, World, create_presence_table, interleavings, maintenance


@pytest.fixture
def presence_table(dynamodb):
    return create_presence_table(dynamodb)


@pytest.fixture
def world(dynamodb, connections_table, presence_table):
    return World(dynamodb, connections_table, grace=5)


# --- online, sessions, offline after the grace period ---------------------------------


def test_first_session_announces_online_once(world):
    world.connect("ann", groups=("ward-3",))
    world.connect("ann", groups=("ward-3",))

    [online] = world.events_of("ann")
    assert (online.type, online.id, online.version) == ("presence.online", "presence-ann-1", 1)
    assert online.audience == ["presence:ann", "group:ward-3"]
    state = world.state("ann")
    assert (state.online, state.sessions, state.version, state.state_version) == (True, 2, 2, 1)
    assert not state.unannounced


def test_closing_some_sessions_keeps_the_user_online_silently(world):
    first, second, third = (world.connect("ann") for _ in range(3))

    world.disconnect(first)
    world.advance(60)

    assert world.kinds_of("ann") == ["online"]
    assert (world.state("ann").online, world.state("ann").sessions) == (True, 2)
    assert world.sqs.messages == []  # no check while sessions remain

    world.disconnect(second)
    world.disconnect(third)
    closed_at = world.clock.now
    world.advance(4.9)
    assert world.kinds_of("ann") == ["online"]

    world.advance(0.1)
    assert world.kinds_of("ann") == ["online", "offline"]
    offline = world.events_of("ann")[-1]
    assert offline.at - closed_at == pytest.approx(5)
    state = world.state("ann")
    assert (state.online, state.sessions) == (False, 0)
    assert offline.version == state.state_version == state.version > world.events_of("ann")[0].version


def test_a_reload_inside_the_grace_period_emits_nothing(world):
    tab = world.connect("ann")
    world.advance(60)

    world.disconnect(tab)
    world.advance(1.5)
    reloaded = world.connect("ann")
    world.advance(60)

    assert world.kinds_of("ann") == ["online"]
    assert world.state("ann").sessions == 1

    world.disconnect(reloaded)
    world.advance(5)
    assert world.kinds_of("ann") == ["online", "offline"]


def test_reconnecting_after_the_offline_event_announces_online_again(world):
    world.disconnect(world.connect("ann"))
    world.advance(5)
    world.connect("ann")

    events = world.events_of("ann")
    assert [e.type for e in events] == ["presence.online", "presence.offline", "presence.online"]
    assert [e.version for e in events] == sorted({e.version for e in events})


def test_a_check_for_an_old_version_does_nothing(world):
    tab = world.connect("ann")
    world.disconnect(tab)
    stale_version = world.state("ann").version
    world.connect("ann")

    assert world.sessions.check_offline("ann", stale_version) is None
    assert world.state("ann").online


def test_group_audience_is_off_unless_enabled(dynamodb, connections_table, presence_table):
    world = World(dynamodb, connections_table, include_groups=False)

    world.connect("ann", groups=("ward-3",))

    assert world.events_of("ann")[0].audience == ["presence:ann"]


def test_clean_disconnect_moves_last_seen_but_a_dead_connection_does_not(world):
    clean, dead = world.connect("ann"), world.connect("bob")
    world.advance(30)

    world.disconnect(clean)
    world.lose(dead)
    world.sessions.remove(dead)

    assert world.state("ann").last_seen == "2026-01-01T00:00:30.000Z"
    assert world.state("bob").last_seen == "2026-01-01T00:00:00.000Z"


# --- removal is decided once ------------------------------------------------------------


def test_removing_a_connection_twice_counts_it_once(world):
    first, second = world.connect("ann"), world.connect("ann")

    assert world.disconnect(first)
    assert not world.disconnect(first)
    assert not world.sessions.remove(first)

    state = world.state("ann")
    assert (state.sessions, state.version) == (1, 3)
    assert world.sessions.end_session("ann", first) is None
    assert world.connections.get(second) is not None


def test_every_ordering_of_two_concurrent_sessions_gives_one_online_and_one_offline(
    dynamodb, connections_table, presence_table
):
    orders = 0
    for number, steps in enumerate(interleavings(["a0", "a1", "a2", "a3", "a4"], ["b0", "b1", "b2", "b3", "b4"])):
        world = World(dynamodb, connections_table, presence_table=presence_table.name)
        user = f"u{number}"
        by_name = {}
        for label in "ab":
            connection_id = f"{user}-{label}"
            lifecycle = world.opening_steps(connection_id, user) + world.removal_steps(connection_id)
            by_name |= {f"{label}{i}": step for i, step in enumerate(lifecycle)}
        for name in steps:
            by_name[name]()
        world.collect()
        assert world.kinds_of(user) == ["online"], steps

        world.advance(5)

        assert world.kinds_of(user) == ["online", "offline"], steps
        state = world.state(user)
        assert (state.online, state.sessions, state.unannounced) == (False, 0, False), steps
        versions = [e.version for e in world.events_of(user)]
        assert versions == sorted(set(versions)), steps
        orders += 1
    assert orders == 252  # C(10, 5)


def test_disconnect_and_maintenance_racing_for_one_connection_decide_once(dynamodb, connections_table, presence_table):
    orders = 0
    for number, steps in enumerate(interleavings(["r0", "r1", "r2"], ["m0", "m1", "m2"])):
        world = World(dynamodb, connections_table, presence_table=presence_table.name)
        user = f"race{number}"
        connection_id = world.connect(user)
        world.lose(connection_id)
        by_name = {f"r{i}": s for i, s in enumerate(world.removal_steps(connection_id))} | {
            f"m{i}": s for i, s in enumerate(world.removal_steps(connection_id, seen_now=False))
        }
        for name in steps:
            by_name[name]()

        state = world.state(user)
        assert (state.sessions, state.version) == (0, 2), steps  # one connect, one removal
        assert [m.queue_url for m in world.sqs.messages] == [CHECKS_QUEUE], steps  # one offline check
        assert world.connections.get(connection_id) is None
        world.advance(5)
        assert world.kinds_of(user) == ["online", "offline"], steps
        orders += 1
    assert orders == 20  # C(6, 3)


# --- maintenance -------------------------------------------------------------------------


def test_a_missed_disconnect_is_repaired_by_maintenance(world):
    kept, lost = world.connect("ann"), world.connect("ann")
    world.connect("bob")
    world.advance(60)
    world.lose(lost)
    world.advance(200)  # past the stale threshold (180 s) for everyone: only the lost one is gone

    report = world.sweep()

    assert (report.connections.checked, report.connections.alive, report.connections.removed) == (3, 2, 1)
    assert world.connections.get(lost) is None
    assert world.state("ann").sessions == 1
    assert world.connections.get(kept) is not None

    world.lose(kept)
    assert world.sweep().connections.checked == 0  # found alive a moment ago: not asked again yet
    world.advance(world.stale + 1)
    assert world.sweep().connections.removed == 1
    assert world.kinds_of("ann") == ["online"]
    world.advance(5)
    assert world.kinds_of("ann") == ["online", "offline"]
    assert world.state("ann").last_seen == "2026-01-01T00:00:00.000Z"  # found dead, not ended: seen at connect


def test_recently_seen_connections_are_not_checked(world):
    tab = world.connect("ann")
    world.lose(tab)
    world.advance(100)

    assert world.sweep().connections.checked == 0

    world.advance(100)
    assert world.sweep().connections.removed == 1


def test_a_live_connection_is_checked_once_a_stale_threshold_and_its_last_seen_moved(world):
    """Pings write nothing: maintenance's check is what moves lastSeen, so the next runs skip the connection."""
    tab = world.connect("ann")
    for _ in range(4):  # a ping a minute: the gateway answers, nothing is written
        world.advance(60)
        assert world.ping(tab)
    assert world.connections.get(tab)["lastSeen"] == "2026-01-01T00:00:00.000Z"

    assert (world.sweep().connections.checked, world.sweep().connections.checked) == (1, 0)
    assert world.connections.get(tab)["lastSeen"] == "2026-01-01T00:04:00.000Z"

    world.advance(world.stale)
    assert world.sweep().connections.checked == 0  # checked when lastSeen is more than the threshold old
    world.advance(1)
    assert (world.sweep().connections.alive, world.state("ann").sessions) == (1, 1)


def test_a_failing_get_connection_leaves_the_connection_for_the_next_run(world):
    tab = world.connect("ann")
    world.management.failing.add(tab)
    world.advance(200)

    report = world.sweep()

    assert (report.connections.unknown, report.connections.removed) == (1, 0)
    assert world.state("ann").sessions == 1


def test_a_connection_whose_token_expired_is_told_why_and_closed(world):
    expiring, other = world.connect("ann", token_lifetime=120), world.connect("ann")
    world.advance(119)
    assert world.sweep().connections.expired == 0

    world.advance(1)
    report = world.sweep()

    assert (report.connections.checked, report.connections.expired) == (1, 1)
    assert world.management.frames[expiring] == [
        {
            "type": "error",
            "error": {"code": "token_expired", "message": "the token has expired; reconnect with a new token"},
        }
    ]
    assert expiring not in world.management.alive
    assert world.connections.get(expiring) is None  # removed by the $disconnect the close ran
    assert world.connections.get(other) is not None
    assert world.state("ann").sessions == 1
    assert world.sweep().connections.checked == 0


def test_maintenance_runs_are_idempotent(world):
    world.lose(world.connect("ann"))
    world.advance(200)

    assert world.sweep().connections.removed == 1
    assert world.sweep().connections.removed == 0
    world.advance(5)
    world.sweep()
    world.advance(300)
    world.sweep()

    assert world.kinds_of("ann") == ["online", "offline"]


def test_maintenance_stops_when_its_time_is_up(world):
    for _ in range(3):
        world.lose(world.connect("ann"))
    world.advance(200)
    calls = iter([False, True])

    report = world.maintenance.run(lambda: next(calls, True))

    assert (report.complete, report.connections.removed) == (False, 1)
    assert world.sweep().connections.removed == 2


def test_a_session_whose_record_vanished_is_dropped(world):
    tab = world.connect("ann")
    world.connections.remove(tab)  # e.g. a delivery without presence, or TTL
    world.advance(world.stale + 1)

    assert maintenance_sampling(world, rand=0.5).run().presence.orphan_sessions_removed == 0  # not sampled
    report = maintenance_sampling(world, rand=0.0).run()  # the run that samples the user
    world.collect()

    assert report.presence.orphan_sessions_removed == 1
    world.advance(5)
    assert world.kinds_of("ann") == ["online", "offline"]


def maintenance_sampling(world, rand):
    return maintenance(world, rand=lambda: rand)


def test_records_of_users_seen_lately_are_read_only_in_a_sample_of_runs(world):
    """An orphan session beside a live one is found when a run samples the user (1 in ORPHAN_SAMPLE_RUNS)."""
    tabs = [world.connect("ann"), world.connect("ann")]
    world.advance(CONNECTING_WINDOW_SECONDS)  # no longer connecting: a session without its record is an orphan
    world.connections.remove(tabs[0])

    assert maintenance_sampling(world, rand=0.5).run().presence.orphan_sessions_removed == 0
    assert maintenance_sampling(world, rand=0.0).run().presence.orphan_sessions_removed == 1
    assert world.state("ann").connection_ids == {tabs[1]}


def test_maintenance_leaves_the_session_of_a_connect_still_writing_its_record(world):
    """A $connect counts its session before writing the record: for a while, no record is no orphan."""
    world.connect("ann")
    world.presence.session_started("ann", "connecting", (), 10)  # its record is not written yet

    assert maintenance_sampling(world, rand=0.0).run().presence.orphan_sessions_removed == 0
    world.advance(CONNECTING_WINDOW_SECONDS)  # its $connect is over: it never wrote the record
    assert maintenance_sampling(world, rand=0.0).run().presence.orphan_sessions_removed == 1
    assert "connecting" not in world.state("ann").connection_ids


def test_one_record_read_covers_many_users(world, monkeypatch):
    for user in range(30):
        world.connections.remove(world.connect(f"user-{user}"))
    world.advance(world.stale + 1)
    reads = []
    existing = world.connections.existing
    monkeypatch.setattr(world.connections, "existing", lambda ids: reads.append(list(ids)) or existing(ids))

    assert maintenance_sampling(world, rand=0.0).run().presence.orphan_sessions_removed == 30
    assert [len(ids) for ids in reads] == [30]


def test_a_lost_offline_check_is_decided_by_maintenance(world):
    tab = world.connect("ann")
    world.sqs.failing.add(CHECKS_QUEUE)
    world.disconnect(tab)  # the check cannot be sent; the disconnect still succeeds
    world.sqs.failing.clear()
    assert world.connections.get(tab) is None

    world.advance(30)
    assert world.sweep().presence.offline_decided == 0  # not overdue yet: grace + margin

    world.advance(60)
    assert world.sweep().presence.offline_decided == 1
    assert world.kinds_of("ann") == ["online", "offline"]


def test_an_unsent_online_event_is_sent_by_maintenance_with_the_same_id(world):
    world.sqs.failing.add(EVENTS_QUEUE)
    world.connect("ann")  # accepted; the event is not
    world.sqs.failing.clear()
    assert world.events_of("ann") == []
    assert world.state("ann").unannounced

    world.advance(10)
    assert world.sweep().presence.events_resent == 0  # may still be in flight

    world.advance(30)
    assert world.sweep().presence.events_resent == 1
    assert [(e.type, e.id) for e in world.events_of("ann")] == [("presence.online", "presence-ann-1")]
    assert not world.state("ann").unannounced
    assert world.sweep().presence.events_resent == 0


def test_a_check_whose_event_was_not_sent_sends_it_on_retry(world):
    world.disconnect(world.connect("ann"))
    [check] = [OfflineCheck.from_json(m.body) for m in world.sqs.messages if m.queue_url == CHECKS_QUEUE]
    world.sqs.failing.add(EVENTS_QUEUE)

    with pytest.raises(Exception, match="ServiceUnavailable"):
        world.sessions.check_offline(check.user_id, check.version)
    assert not world.state("ann").online

    world.sqs.failing.clear()
    assert world.sessions.check_offline(check.user_id, check.version) == "presence-ann-3"
    assert world.sessions.check_offline(check.user_id, check.version) is None  # announced: nothing more
    world.collect()
    assert world.kinds_of("ann") == ["online", "offline"]


def test_delivery_that_finds_a_connection_gone_ends_its_session(world):
    tab = world.connect("ann")
    world.advance(60)
    client = FakeManagementClient(failures={tab: client_error("GoneException", 410)})

    report = Poster(client, concurrency=2, on_gone=world.sessions.remove).post([(tab, b"frame")])

    assert report.gone == 1
    assert world.state("ann").sessions == 0
    world.advance(5)
    assert world.kinds_of("ann") == ["online", "offline"]


def test_delivery_keeps_a_connection_whose_connect_may_still_be_running(world):
    """A teammate's presence.online can reach a socket whose $connect has not returned: the gateway says gone."""
    tab = world.connect("ann")
    world.advance(5)
    client = FakeManagementClient(failures={tab: client_error("GoneException", 410)})

    Poster(client, concurrency=2, on_gone=world.sessions.remove).post([(tab, b"frame")])

    assert world.connections.get(tab) is not None
    assert world.state("ann").sessions == 1
    assert world.sessions.close(tab)  # $disconnect is never doubted
    assert world.state("ann").sessions == 0


# --- the events themselves -------------------------------------------------------------------


def test_presence_events_are_valid_producer_messages(world):
    world.connect("ann", groups=("ward-3", "not a topic"))
    state = world.state("ann")

    message = presence_message(state, include_groups=True)
    parsed = parse_producer_message(message)

    assert parsed.audience == ["presence:ann", "group:ward-3"]
    assert message["data"] == {"userId": "ann", "version": 1, "lastSeen": "2026-01-01T00:00:00.000Z"}
    [sent] = [m.body for m in world.sqs.messages_sent if m.queue_url == EVENTS_QUEUE]
    pipeline = EventPipeline(store=None, delivery=None, rules=EventTypeRules([]), max_data_bytes=1024)
    pending = pipeline.parse(sent, "m1", internal=True)  # from the presence-events queue: the module's own
    assert json.loads(sent) == message
    assert (pending.event_id, pending.type, pending.occurred_at) == (
        "presence-ann-1",
        "presence.online",
        "2026-01-01T00:00:00.000Z",
    )


def test_event_ids_stay_within_the_id_limit():
    long_user = "u" * 128

    assert presence_event_id("ann", 7) == "presence-ann-7"
    event_id = presence_event_id(long_user, 123456789)
    assert len(event_id) <= MAX_EVENT_ID_LENGTH
    assert event_id == presence_event_id(long_user, 123456789)
    assert event_id != presence_event_id(long_user, 123456790)


def test_offline_checks_round_trip_and_refuse_foreign_bodies():
    assert OfflineCheck.from_json(OfflineCheck("ann", 4).to_json()) == OfflineCheck("ann", 4)
    for body in ["[]", '{"userId": "", "version": 1}', '{"userId": "a", "version": 0}', '{"userId": "a"}', "x"]:
        with pytest.raises(ValueError):  # noqa: PT011 - each body fails for its own reason
            OfflineCheck.from_json(body)


def test_unknown_users_read_as_offline():
    assert PresenceState("nobody").public_view() == {"online": False, "sessions": 0, "lastSeen": None, "version": 0}
