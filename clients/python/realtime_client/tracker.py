"""The client's pure logic, without I/O: backoff, the cursor, ordering and dedup.

The same rules as the browser client (clients/js/src), so both behave
alike: every event is handed on once, in ``seq`` order per topic, whichever
transport carried it, and a seq jump is repaired from ``GET /events`` before
newer events are handed on. Both run the cases of contract/vectors/client.json.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import random
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Event = dict[str, Any]
Since = Literal["now", "retention"]


Jitter = Literal["equal", "full"]


class Backoff:
    """Exponential backoff up to a cap, with jitter so that retries spread out.

    "equal" jitter (the default: half fixed, half random) never collapses to
    zero delay, for reconnects; "full" jitter (anywhere from zero to the
    ceiling) spreads a crowd furthest, for a server that says it is overloaded.
    """

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        factor: float = 2.0,
        rand: Callable[[], float] = random.random,
        jitter: Jitter = "equal",
    ) -> None:
        if jitter not in ("equal", "full"):
            raise ValueError("jitter must be 'equal' or 'full'")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.rand = rand
        self.jitter = jitter
        self.attempt = 0

    def ceiling(self, attempt: int | None = None) -> float:
        return min(self.maximum, self.initial * self.factor ** (self.attempt if attempt is None else attempt))

    def next(self) -> float:
        """Seconds to wait before the next retry; each call moves one attempt further."""
        ceiling = self.ceiling()
        self.attempt += 1
        if self.jitter == "full":
            return self.rand() * ceiling
        return ceiling / 2 + self.rand() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0


# The cursor, version 1 of the contract (contract/vectors/cursor.json): base64url
# JSON {"v": 1, "t": {topic: seq}}. The client advances the server's cursor with
# the positions it already holds, so a catch-up after an hour on the socket does
# not re-download the hour. A cursor of another version is sent as it is.
MAX_SEQ = 2**53 - 1  # contract/wire.json seqMax
BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


def decode_cursor(cursor: str | None) -> dict[str, int] | None:
    """Per-topic positions of a v1 cursor, or None when the cursor is not one."""
    if not isinstance(cursor, str) or not BASE64URL.fullmatch(cursor):
        return None
    text = cursor.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or set(value) != {"v", "t"} or value["v"] != 1 or isinstance(value["v"], bool):
        return None
    positions = value["t"]
    if not isinstance(positions, dict) or not all(_is_integer(seq) and seq <= MAX_SEQ for seq in positions.values()):
        return None
    return dict(positions)


def _is_integer(value: object, minimum: int = 0) -> bool:
    """A JSON integer (not a boolean) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def encode_cursor(positions: Mapping[str, int]) -> str:
    text = json.dumps({"v": 1, "t": dict(positions)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def is_event(frame: object) -> bool:
    return isinstance(frame, dict) and isinstance(frame.get("topic"), str) and _is_integer(frame.get("seq"), 1)


def frame_pairs(frame: Event) -> dict[str, int]:
    """The (topic, seq) pairs of a frame: its ``seqs`` (every topic through which
    the event reached this connection) when well formed, else its own topic and seq."""
    seqs = frame.get("seqs")
    if isinstance(seqs, dict) and seqs and all(_is_integer(seq, 1) for seq in seqs.values()):
        return dict(seqs)
    return {frame["topic"]: frame["seq"]}


def copies_of(frame: Event) -> list[Event]:
    """One copy per (topic, seq) pair, each as if it had arrived alone; all of them share the frame's ``seqs``."""
    pairs = frame_pairs(frame)
    return [{**frame, "topic": topic, "seq": seq, "seqs": pairs} for topic, seq in pairs.items()]


def identity_of(event: Event) -> str | None:
    """What makes two frames or items one event: the server's opaque ``key``, unique per
    stored event (two producers' events that share an id differ in it); an event stored
    before keys existed has none and falls back to its ``id``. Prefixed, so a key never
    meets an id. None: no identity, never deduped."""
    key = event.get("key")
    if isinstance(key, str) and key:
        return f"key:{key}"
    event_id = event.get("id")
    return f"id:{event_id}" if isinstance(event_id, str) else None


def published_at(frame: Event) -> str:
    """The key that interleaves topics on release; a frame without one goes first."""
    value = frame.get("publishedAt")
    return value if isinstance(value, str) else ""


@dataclass
class TrackerStats:
    delivered: int = 0
    duplicates: int = 0
    gaps_detected: int = 0
    gaps_lost: int = 0


@dataclass
class LiveResult:
    deliver: list[Event] = field(default_factory=list)
    need_sync: bool = False


@dataclass
class SyncResult:
    deliver: list[Event]
    gap_remaining: bool


class EventTracker:
    """Positions per topic, frames held back during a catch-up, dedup.

    The client feeds it WebSocket frames (:meth:`offer_live`) and HTTP pages
    (:meth:`apply_page`) and hands on whatever it returns, in that order.
    """

    def __init__(
        self,
        *,
        dedupe_events: bool | None = None,
        dedupe_by_id: bool | None = None,
        id_memory: int = 10000,
        since: Since = "now",
    ) -> None:
        """``dedupe_events`` (default True): hand on each event once however many of the
        client's topics carry it (by ``key``, else ``id``); False: once per topic.
        ``dedupe_by_id`` is its former name, still accepted (deprecated).
        ``id_memory``: how many events are remembered."""
        self.positions: dict[str, int] = {}  # topic -> last seq handed on, or skipped as history or past retention
        self.server_cursor: str | None = None
        # "now": the first read asks the server where the topics are (since=now)
        # and hands nothing on; "retention": it reads from the start of retention.
        self.since = since
        self.started = False  # a first page was read, or a cursor restored
        self.syncing = False  # a catch-up is running: hold live frames until it ends
        self.pending: dict[tuple[str, int], Event] = {}
        self.dedupe_events = _dedupe_events(dedupe_events, dedupe_by_id)
        self.id_memory = id_memory
        # identity_of -> its (topic, seq) pairs seen; the oldest events are forgotten first.
        self.recent_events: OrderedDict[str, set[tuple[str, int]]] = OrderedDict()
        self.stats = TrackerStats()

    def offer_live(self, frame: object) -> LiveResult:
        """A WebSocket frame. ``need_sync``: a seq jumped (or a topic starts
        mid-way); the frame is held until the caller has caught up over HTTP.
        A frame carries one event and the seq of each of its topics that reach
        this connection (``seqs``): each pair moves its own topic, the event is
        handed on once."""
        result = LiveResult()
        if not is_event(frame):
            return result
        assert isinstance(frame, dict)
        for copy in copies_of(frame):
            self._offer_copy(copy, result)
        return result

    def _offer_copy(self, copy: Event, result: LiveResult) -> None:
        topic, seq = copy["topic"], copy["seq"]
        position = self.positions.get(topic)
        if (position is not None and seq <= position) or (topic, seq) in self.pending:
            self.stats.duplicates += 1
            return
        if self.syncing:
            self.pending[(topic, seq)] = copy
            return
        expected = 1 if position is None else position + 1
        if seq == expected:
            self._accept(copy, result.deliver)
            return
        # A jump: frames in between were missed. Hold this one and everything
        # after it until the gap is read over HTTP.
        self.stats.gaps_detected += 1
        self.pending[(topic, seq)] = copy
        self.syncing = True
        result.need_sync = True

    def restore(self, cursor: str) -> None:
        """Start from a cursor saved earlier: everything after it is handed on."""
        self.server_cursor = cursor
        self.positions.update(decode_cursor(cursor) or {})
        self.started = True

    def reset(self) -> None:
        """The server refused the cursor (400 invalid_cursor): start again as ``since`` says."""
        self.positions.clear()
        self.server_cursor = None
        self.started = False

    def fetch_query(self) -> dict[str, str]:
        """The query of the next GET /events: {"since": "now"}, {"cursor": ...} or {} (from the start of retention)."""
        if self.since == "now" and not self.started:
            return {"since": "now"}
        cursor = self.fetch_cursor()
        return {} if cursor is None else {"cursor": cursor}

    def fetch_cursor(self) -> str | None:
        """The cursor to fetch with: the server's, advanced by our own positions when it is a v1 cursor."""
        server = {} if self.server_cursor is None else decode_cursor(self.server_cursor)
        if server is None:
            return self.server_cursor
        if self.server_cursor is None and not self.positions:
            return None
        for topic, seq in self.positions.items():
            if server.get(topic, -1) < seq:
                server[topic] = seq
        return encode_cursor(server)

    def begin_sync(self) -> None:
        self.syncing = True

    def apply_page(self, page: Mapping[str, Any]) -> list[Event]:
        """A page of GET /events: the events to hand on. A seq jump inside a page
        is not a gap: the server holds every event still within retention, so the
        seqs in between are past it."""
        out: list[Event] = []
        listed = page.get("events")
        events = [event for event in listed if is_event(event)] if isinstance(listed, list) else []
        # One item per (event, topic): the items of one event are handed on once, with every pair the page has.
        seqs_by_event: dict[str, dict[str, int]] = {}
        for event in events:
            identity = identity_of(event)
            if identity is not None:
                seqs_by_event.setdefault(identity, {})[event["topic"]] = event["seq"]
        for item in events:
            pairs = seqs_by_event.get(identity_of(item) or "") or {item["topic"]: item["seq"]}
            event = {**item, "seqs": dict(sorted(pairs.items()))}
            topic, seq = event["topic"], event["seq"]
            position = self.positions.get(topic)
            if position is not None and seq <= position:
                self.stats.duplicates += 1
                continue
            self._accept(event, out)
        cursor = page.get("cursor")
        if isinstance(cursor, str) and cursor:
            self.started = True
            self.server_cursor = cursor
            # The server's positions are authoritative where they are ahead: history
            # before "now", events past retention, topics we have not seen yet.
            for topic, seq in (decode_cursor(cursor) or {}).items():
                if self.positions.get(topic, -1) < seq:
                    self.positions[topic] = seq
        return out

    def end_sync(self, *, force: bool = False) -> SyncResult:
        """End a catch-up: hand on the held frames that now follow on.

        A frame still ahead of a gap stays held (``gap_remaining``: catch up
        once more) unless ``force``, which hands it on and counts the missing
        seqs as lost.
        """
        by_topic: dict[str, list[Event]] = {}
        for frame in self.pending.values():
            by_topic.setdefault(frame["topic"], []).append(frame)
        self.pending = {}
        chains: list[list[Event]] = []
        gap_remaining = False
        for topic, frames in by_topic.items():
            frames.sort(key=lambda frame: frame["seq"])
            position = self.positions.get(topic)
            chain: list[Event] = []
            for frame in frames:
                seq = frame["seq"]
                if position is not None and seq <= position:
                    self.stats.duplicates += 1
                    continue
                contiguous = seq == 1 if position is None else seq == position + 1
                if not contiguous and not force:
                    gap_remaining = True
                    self.pending[(topic, seq)] = frame
                    continue
                if not contiguous and position is not None:
                    self.stats.gaps_lost += seq - position - 1
                chain.append(frame)
                position = seq
            if chain:
                chains.append(chain)
        deliver: list[Event] = []
        # Interleave topics by publishedAt; heapq.merge never reorders within a chain.
        for frame in heapq.merge(*chains, key=published_at):
            self._accept(frame, deliver)
        self.syncing = gap_remaining
        return SyncResult(deliver, gap_remaining)

    def _accept(self, copy: Event, out: list[Event]) -> None:
        pair = (copy["topic"], copy["seq"])
        self.positions[pair[0]] = pair[1]
        # One event can reach us through several topics (one frame, or one HTTP item per topic,
        # or both): the application gets it once, with every (topic, seq) pair known for it.
        identity = identity_of(copy) if self.dedupe_events else None
        if identity is not None:
            seen = self.recent_events.get(identity)
            if seen is not None:
                if pair not in seen:  # a pair the event was handed on with is its own copy, not a duplicate
                    self.stats.duplicates += 1
                seen.add(pair)
                return
            self.recent_events[identity] = set(copy["seqs"].items())
            if len(self.recent_events) > self.id_memory:
                self.recent_events.popitem(last=False)
        self.stats.delivered += 1
        out.append(copy)


def _dedupe_events(dedupe_events: bool | None, dedupe_by_id: bool | None) -> bool:
    if dedupe_by_id is not None:
        warnings.warn(
            "dedupe_by_id is deprecated: use dedupe_events (events are deduplicated by their key, else id)",
            DeprecationWarning,
            stacklevel=3,
        )
    if dedupe_events is not None:
        return dedupe_events
    return True if dedupe_by_id is None else dedupe_by_id


@dataclass(frozen=True)
class PresenceUpdate:
    user_id: str
    online: bool
    version: int | None
    data: dict[str, Any]
    event: Event


class PresenceTracker:
    """The newest version per user, so a late, stale update never wins."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}

    def update(self, event: Event) -> PresenceUpdate | None:
        if event.get("type") not in ("presence.online", "presence.offline"):
            return None
        data = event.get("data")
        data = data if isinstance(data, dict) else {}
        user_id = data.get("userId")
        if not isinstance(user_id, str) or not user_id:
            topic = event.get("topic")
            user_id = topic.removeprefix("presence:") if isinstance(topic, str) else ""
        version = data.get("version")
        if isinstance(version, int) and not isinstance(version, bool):
            seen = self.versions.get(user_id)
            if seen is not None and version <= seen:
                return None
            self.versions[user_id] = version
        else:
            version = None  # without a version an update cannot be stale
        return PresenceUpdate(user_id, event["type"] == "presence.online", version, data, event)


def exactly_once_in_order(events: Iterable[Event]) -> list[str]:
    """Problems with a sequence of handed-on events (duplicates, gaps, disorder per topic); empty if none.

    A helper for tests and benchmarks: every (topic, seq) pair of an event counts (``seqs``);
    the first event seen on a topic sets where it starts.
    """
    problems: list[str] = []
    last: dict[str, int] = {}
    seen: set[tuple[str, int]] = set()
    for event in events:
        for topic, seq in frame_pairs(event).items():
            if (topic, seq) in seen:
                problems.append(f"duplicate {(topic, seq)}")
                continue
            seen.add((topic, seq))
            expected = last.get(topic, seq - 1) + 1
            if seq != expected:
                problems.append(f"{topic}: expected seq {expected}, got {seq}")
            last[topic] = seq
    return problems


@dataclass
class PresenceMember:
    """One user of a roster who is online now."""

    user_id: str
    sessions: int | None = None
    last_seen: str | None = None
    version: int | None = None


class PresenceRoster:
    """Who of some users is online: fed by a ``GET /presence`` answer (``apply_snapshot``) and by the
    presence updates the client hands on (``apply_update``). Per user the higher version wins, whichever
    arrives first, so a snapshot read before a flip never undoes it and a stale update never undoes a
    newer snapshot. ``on_added`` handlers run when a user comes online, ``on_removed`` when one goes
    offline (with what was known of it)."""

    def __init__(self, users: Iterable[str]) -> None:
        self.users = set(users)
        self.members: dict[str, PresenceMember] = {}
        self._versions: dict[str, int] = {}
        self._added: list[Callable[[PresenceMember], Any]] = []
        self._removed: list[Callable[[PresenceMember], Any]] = []

    def on_added(self, handler: Callable[[PresenceMember], Any]) -> Callable[[], None]:
        self._added.append(handler)
        return lambda: self._added.remove(handler)

    def on_removed(self, handler: Callable[[PresenceMember], Any]) -> Callable[[], None]:
        self._removed.append(handler)
        return lambda: self._removed.remove(handler)

    def apply_snapshot(self, answer: Mapping[str, Any]) -> None:
        """A ``GET /presence`` answer: ``{"users": {<id>: {"online", "sessions", "lastSeen", "version"}}}``."""
        users = answer.get("users") if isinstance(answer, Mapping) else None
        for user_id, state in (users if isinstance(users, Mapping) else {}).items():
            if user_id in self.users and isinstance(state, Mapping):
                self._apply(user_id, bool(state.get("online")), state.get("sessions"), state.get("lastSeen"),
                            state.get("version"))  # fmt: skip

    def apply_update(self, update: PresenceUpdate) -> None:
        """A presence update as the client hands it on (PresenceTracker.update)."""
        if update.user_id in self.users:
            self._apply(update.user_id, update.online, None, update.data.get("lastSeen"), update.version)

    def _apply(self, user_id: str, online: bool, sessions: Any, last_seen: Any, version: Any) -> None:
        if isinstance(version, int) and not isinstance(version, bool):
            held = self._versions.get(user_id)
            if held is not None and version <= held:
                return  # older than what the roster shows
            self._versions[user_id] = version
        else:
            version = None
        before = self.members.get(user_id)
        if online:
            member = PresenceMember(
                user_id,
                sessions if isinstance(sessions, int) else (before.sessions if before else None),
                last_seen if isinstance(last_seen, str) else (before.last_seen if before else None),
                version,
            )
            self.members[user_id] = member
            if before is None:
                for handler in list(self._added):
                    handler(member)
        elif before is not None:
            del self.members[user_id]
            last = last_seen if isinstance(last_seen, str) else before.last_seen
            gone = PresenceMember(user_id, before.sessions, last, version)
            for handler in list(self._removed):
                handler(gone)
