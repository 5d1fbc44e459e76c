"""Pure logic of the Python client: backoff, cursor, ordering, dedup, gaps, presence."""

from __future__ import annotations

import base64
import json

import pytest
from realtime_client import (
    Backoff,
    EventTracker,
    PresenceTracker,
    decode_cursor,
    encode_cursor,
    exactly_once_in_order,
)


def ev(topic: str, seq: int, *, id: str | None = None, type: str = "test.event", published_at: str | None = None):
    return {
        "id": id or f"{topic}#{seq}",
        "type": type,
        "topic": topic,
        "seq": seq,
        "data": {},
        "occurredAt": "2026-11-26T10:00:00Z",
        "publishedAt": published_at or f"2026-11-26T10:00:{seq:02d}Z",
    }


def keys(events) -> list[str]:
    return [f"{e['topic']}#{e['seq']}" for e in events]


class TestBackoff:
    def test_grows_to_the_cap_with_jitter_between_half_and_all_of_the_ceiling(self):
        low = Backoff(initial=0.1, maximum=1.0, rand=lambda: 0.0)
        assert [round(low.next(), 3) for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
        high = Backoff(initial=0.1, maximum=1.0, rand=lambda: 1.0)
        assert [round(high.next(), 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.0]

    def test_never_zero_never_over_the_cap(self):
        backoff = Backoff(initial=0.2, maximum=5.0)
        assert all(0.1 <= backoff.next() <= 5.0 for _ in range(200))

    def test_reset_starts_over(self):
        backoff = Backoff(initial=0.1, rand=lambda: 0.0)
        backoff.next()
        backoff.next()
        backoff.reset()
        assert backoff.next() == pytest.approx(0.05)


class TestCursor:
    def test_round_trip_is_base64url_without_padding(self):
        cursor = encode_cursor({"user:alice": 3, "group:ops": 12, "all": 0})
        assert "=" not in cursor
        assert "+" not in cursor
        assert "/" not in cursor
        assert decode_cursor(cursor) == {"user:alice": 3, "group:ops": 12, "all": 0}

    def test_decodes_the_server_format(self):
        server = base64.urlsafe_b64encode(b'{"v": 1, "t": {"user:b": 7}}').decode().rstrip("=")
        assert decode_cursor(server) == {"user:b": 7}

    def test_compatible_with_the_js_client(self):
        # What clients/js/realtime.js encodeCursor({"user:a": 4}) produces.
        assert encode_cursor({"user:a": 4}) == "eyJ2IjoxLCJ0Ijp7InVzZXI6YSI6NH19"

    @pytest.mark.parametrize(
        "cursor",
        [
            None,
            "",
            "not base64!",
            base64.urlsafe_b64encode(b'{"v":2,"t":{}}').decode(),
            base64.urlsafe_b64encode(b'{"v":1,"t":{"a":-1}}').decode(),
            base64.urlsafe_b64encode(b'{"v":1,"t":{"a":true}}').decode(),
            base64.urlsafe_b64encode(b'{"v":1,"t":{},"sig":"x"}').decode(),
            base64.urlsafe_b64encode(b"[1,2]").decode(),
        ],
    )
    def test_anything_else_is_opaque(self, cursor):
        assert decode_cursor(cursor) is None


class TestLiveFrames:
    def test_in_order_and_duplicates_dropped_by_topic_and_seq(self):
        t = EventTracker()
        out = []
        for frame in [ev("user:a", 1), ev("user:a", 2), ev("user:a", 2), ev("group:g", 1), ev("user:a", 1)]:
            result = t.offer_live(frame)
            assert not result.need_sync
            out += result.deliver
        assert keys(out) == ["user:a#1", "user:a#2", "group:g#1"]
        assert t.stats.duplicates == 2

    def test_non_events_are_ignored(self):
        t = EventTracker()
        for frame in [{"type": "pong"}, {"type": "error", "error": {}}, None, {"topic": "a", "seq": True}]:
            result = t.offer_live(frame)
            assert result.deliver == []
            assert not result.need_sync

    def test_a_jump_holds_frames_until_the_gap_is_read(self):
        t = EventTracker()
        t.offer_live(ev("user:a", 1))
        jump = t.offer_live(ev("user:a", 3))
        assert jump.deliver == []
        assert jump.need_sync
        assert t.offer_live(ev("user:a", 4)).deliver == []
        assert t.offer_live(ev("group:g", 1)).deliver == []
        page = t.apply_page({"events": [ev("user:a", 2), ev("user:a", 3)], "cursor": "x", "hasMore": False})
        assert keys(page) == ["user:a#2", "user:a#3"]
        result = t.end_sync()
        assert not result.gap_remaining
        assert keys(result.deliver) == ["group:g#1", "user:a#4"]
        assert not t.syncing

    def test_first_frame_past_one_on_an_unknown_topic_is_a_gap(self):
        assert EventTracker().offer_live(ev("user:a", 5)).need_sync

    def test_frames_held_during_a_catch_up_come_out_once_in_order(self):
        t = EventTracker()
        t.offer_live(ev("user:a", 1))
        t.begin_sync()
        for seq in (4, 3, 2, 3):
            assert t.offer_live(ev("user:a", seq)).deliver == []
        assert keys(t.apply_page({"events": [ev("user:a", 2)], "cursor": "c", "hasMore": False})) == ["user:a#2"]
        assert keys(t.end_sync().deliver) == ["user:a#3", "user:a#4"]

    def test_a_gap_the_server_cannot_fill_is_kept_then_forced(self):
        t = EventTracker()
        t.offer_live(ev("user:a", 1))
        t.offer_live(ev("user:a", 4))
        t.apply_page({"events": [ev("user:a", 2)], "cursor": "c", "hasMore": False})
        first = t.end_sync()
        assert first.gap_remaining
        assert first.deliver == []
        assert t.syncing
        forced = t.end_sync(force=True)
        assert keys(forced.deliver) == ["user:a#4"]
        assert t.stats.gaps_lost == 1
        assert not t.syncing

    def test_released_topics_interleave_by_published_at_without_reordering_a_topic(self):
        t = EventTracker()
        t.begin_sync()
        t.offer_live(ev("a", 2, published_at="2026-01-01T00:00:05Z"))
        t.offer_live(ev("a", 1, published_at="2026-01-01T00:00:09Z"))
        t.offer_live(ev("b", 1, published_at="2026-01-01T00:00:03Z"))
        t.apply_page({"events": [], "cursor": encode_cursor({"a": 0, "b": 0}), "hasMore": False})
        assert keys(t.end_sync().deliver) == ["b#1", "a#1", "a#2"]


class TestPagesAndCursors:
    def test_server_positions_are_adopted_for_unseen_topics(self):
        t = EventTracker()
        t.apply_page({"events": [], "cursor": encode_cursor({"user:a": 9, "all": 2}), "hasMore": False}, deliver=False)
        assert len(t.offer_live(ev("user:a", 10)).deliver) == 1
        assert len(t.offer_live(ev("all", 3)).deliver) == 1

    def test_since_now_skips_history_but_moves_positions(self):
        t = EventTracker()
        page = {"events": [ev("user:a", 1), ev("user:a", 2)], "cursor": "opaque", "hasMore": False}
        assert t.apply_page(page, deliver=False) == []
        assert t.positions["user:a"] == 2
        assert t.server_cursor == "opaque"

    def test_v1_cursor_is_advanced_with_own_positions(self):
        t = EventTracker()
        assert t.fetch_cursor() is None
        t.apply_page({"events": [], "cursor": encode_cursor({"user:a": 2, "group:g": 1}), "hasMore": False})
        t.offer_live(ev("user:a", 3))
        t.offer_live(ev("user:a", 4))
        assert decode_cursor(t.fetch_cursor()) == {"user:a": 4, "group:g": 1}

    def test_opaque_cursor_passes_through(self):
        t = EventTracker()
        t.apply_page({"events": [ev("user:a", 1)], "cursor": "opaque-123", "hasMore": False})
        t.offer_live(ev("user:a", 2))
        assert t.fetch_cursor() == "opaque-123"
        v1 = encode_cursor({"user:a": 1})
        t.apply_page({"events": [], "cursor": v1, "hasMore": False})
        t.opaque = True
        assert t.fetch_cursor() == v1

    def test_http_duplicates_of_socket_frames_are_dropped(self):
        t = EventTracker()
        t.offer_live(ev("user:a", 1))
        t.offer_live(ev("user:a", 2))
        page = {"events": [ev("user:a", 1), ev("user:a", 2), ev("user:a", 3)], "cursor": "c", "hasMore": False}
        assert keys(t.apply_page(page)) == ["user:a#3"]

    def test_seqs_gone_from_the_server_are_counted_as_lost(self):
        t = EventTracker()
        t.offer_live(ev("user:a", 1))
        assert keys(t.apply_page({"events": [ev("user:a", 5)], "cursor": "c", "hasMore": False})) == ["user:a#5"]
        assert t.stats.gaps_lost == 3


class TestOneEventOnSeveralTopics:
    def test_once_by_default_once_per_topic_on_request(self):
        copies = [ev("user:a", 1, id="e1"), ev("group:g", 7, id="e1")]
        cursor = {"events": [], "cursor": encode_cursor({"group:g": 6}), "hasMore": False}
        once = EventTracker()
        once.apply_page(cursor)
        assert keys([e for f in copies for e in once.offer_live(f).deliver]) == ["user:a#1"]
        assert once.positions["group:g"] == 7
        each = EventTracker(dedupe_by_id=False)
        each.apply_page(cursor)
        assert keys([e for f in copies for e in each.offer_live(f).deliver]) == ["user:a#1", "group:g#7"]

    def test_oldest_ids_are_forgotten(self):
        t = EventTracker(id_memory=3)
        for seq in range(1, 6):
            t.offer_live(ev("user:a", seq, id=f"e{seq}"))
        assert list(t.recent_ids) == ["e3", "e4", "e5"]


def test_presence_never_lets_a_stale_version_win():
    p = PresenceTracker()

    def presence(kind: str, user: str, version: int):
        return {**ev(f"presence:{user}", version, type=kind), "data": {"userId": user, "version": version}}

    first = p.update(presence("presence.online", "bob", 1))
    assert (first.user_id, first.online, first.version) == ("bob", True, 1)
    assert p.update(presence("presence.offline", "bob", 3)).online is False
    assert p.update(presence("presence.online", "bob", 2)) is None
    assert p.update(presence("presence.online", "bob", 4)).online is True
    assert p.update(ev("user:bob", 1)) is None


def test_exactly_once_in_order_reports_problems():
    assert exactly_once_in_order([ev("a", 3), ev("a", 4), ev("b", 1)]) == []
    assert exactly_once_in_order([ev("a", 1), ev("a", 1)]) == ["duplicate ('a', 1)"]
    assert exactly_once_in_order([ev("a", 1), ev("a", 3)]) == ["a: expected seq 2, got 3"]


def test_encoded_cursor_is_plain_json_inside():
    raw = base64.urlsafe_b64decode(encode_cursor({"x": 1}) + "==")
    assert json.loads(raw) == {"v": 1, "t": {"x": 1}}
