// Pure logic of the browser client: backoff, cursor, ordering, dedup, gaps, presence.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Backoff, EventTracker, PresenceTracker, decodeCursor, encodeCursor } from '../realtime.js';

const ev = (topic, seq, extra = {}) => ({
  id: extra.id ?? `${topic}#${seq}`,
  type: extra.type ?? 'test.event',
  topic,
  seq,
  data: extra.data ?? {},
  occurredAt: '2026-11-26T10:00:00Z',
  publishedAt: extra.publishedAt ?? `2026-11-26T10:00:${String(seq).padStart(2, '0')}Z`,
});
const keys = (events) => events.map((e) => `${e.topic}#${e.seq}`);

describe('Backoff', () => {
  it('grows exponentially up to the cap, with jitter between half and all of the ceiling', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => low.next()), [50, 100, 200, 400, 500, 500]);
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    const delays = [1, 2, 3, 4, 5].map(() => high.next());
    delays.forEach((d, i) => assert.ok(Math.abs(d - Math.min(1000, 100 * 2 ** i)) < 0.01, `${d}`));
  });

  it('never returns zero or more than the cap with real randomness', () => {
    const backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
    for (let i = 0; i < 200; i += 1) {
      const d = backoff.next();
      assert.ok(d >= 100 && d <= 5000, `${d}`);
    }
  });

  it('starts over after reset', () => {
    const backoff = new Backoff({ initialMs: 100, random: () => 0 });
    backoff.next();
    backoff.next();
    backoff.reset();
    assert.equal(backoff.next(), 50);
  });

  it('spreads clients out (jitter is not constant)', () => {
    const backoff = new Backoff({ initialMs: 1000 });
    const seen = new Set(Array.from({ length: 20 }, () => (backoff.reset(), Math.round(backoff.next()))));
    assert.ok(seen.size > 10);
  });
});

describe('cursor', () => {
  it('round-trips v1 cursors as base64url without padding', () => {
    const cursor = encodeCursor({ 'user:alice': 3, 'group:ops': 12, all: 0 });
    assert.match(cursor, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(Object.fromEntries(decodeCursor(cursor)), { 'user:alice': 3, 'group:ops': 12, all: 0 });
    const raw = Buffer.from(cursor, 'base64url').toString();
    assert.deepEqual(JSON.parse(raw), { v: 1, t: { 'user:alice': 3, 'group:ops': 12, all: 0 } });
  });

  it('decodes what the server writes (Python base64.urlsafe_b64encode, padding stripped)', () => {
    const server = Buffer.from('{"v": 1, "t": {"user:b": 7}}').toString('base64url');
    assert.deepEqual(Object.fromEntries(decodeCursor(server)), { 'user:b': 7 });
  });

  it('treats anything else as opaque', () => {
    for (const cursor of [
      null,
      '',
      'not base64!',
      Buffer.from('{"v":2,"t":{}}').toString('base64url'),
      Buffer.from('{"v":1,"t":{"a":-1}}').toString('base64url'),
      Buffer.from('{"v":1,"t":{},"sig":"x"}').toString('base64url'),
      Buffer.from('[1,2]').toString('base64url'),
    ]) {
      assert.equal(decodeCursor(cursor), null, String(cursor));
    }
  });
});

describe('EventTracker: live frames', () => {
  it('hands on frames in order and drops duplicates by (topic, seq)', () => {
    const t = new EventTracker();
    const out = [];
    for (const frame of [ev('user:a', 1), ev('user:a', 2), ev('user:a', 2), ev('group:g', 1), ev('user:a', 1)]) {
      const r = t.offerLive(frame);
      assert.equal(r.needSync, false);
      out.push(...r.deliver);
    }
    assert.deepEqual(keys(out), ['user:a#1', 'user:a#2', 'group:g#1']);
    assert.equal(t.stats.duplicates, 2);
    assert.equal(t.positions.get('user:a'), 2);
  });

  it('ignores frames that are not events (pong, error)', () => {
    const t = new EventTracker();
    assert.deepEqual(t.offerLive({ type: 'pong' }), { deliver: [], needSync: false });
    assert.deepEqual(t.offerLive({ type: 'error', error: {} }), { deliver: [], needSync: false });
    assert.deepEqual(t.offerLive(null), { deliver: [], needSync: false });
  });

  it('holds a frame after a seq jump, and everything after it, until the gap is read', () => {
    const t = new EventTracker();
    t.offerLive(ev('user:a', 1));
    const jump = t.offerLive(ev('user:a', 3));
    assert.deepEqual(jump, { deliver: [], needSync: true });
    assert.equal(t.stats.gapsDetected, 1);
    // Later frames, on any topic, wait too (the catch-up will hand them on in order).
    assert.deepEqual(t.offerLive(ev('user:a', 4)).deliver, []);
    assert.deepEqual(t.offerLive(ev('group:g', 1)).deliver, []);
    const fromHttp = t.applyPage({ events: [ev('user:a', 2), ev('user:a', 3)], cursor: 'x', hasMore: false });
    assert.deepEqual(keys(fromHttp), ['user:a#2', 'user:a#3']);
    const { deliver, gapRemaining } = t.endSync();
    assert.equal(gapRemaining, false);
    assert.deepEqual(keys(deliver), ['group:g#1', 'user:a#4']);
    assert.equal(t.syncing, false);
  });

  it('treats a first frame past seq 1 on an unknown topic as a gap', () => {
    const t = new EventTracker();
    assert.equal(t.offerLive(ev('user:a', 5)).needSync, true);
  });

  it('holds live frames while a catch-up runs and releases them once, in order', () => {
    const t = new EventTracker();
    t.offerLive(ev('user:a', 1));
    t.beginSync();
    for (const s of [4, 3, 2, 3]) assert.deepEqual(t.offerLive(ev('user:a', s)).deliver, []);
    const page = t.applyPage({ events: [ev('user:a', 2)], cursor: 'c', hasMore: false });
    assert.deepEqual(keys(page), ['user:a#2']);
    assert.deepEqual(keys(t.endSync().deliver), ['user:a#3', 'user:a#4']);
  });

  it('keeps a frame still ahead of a gap unless forced, then counts the lost seqs', () => {
    const t = new EventTracker();
    t.offerLive(ev('user:a', 1));
    t.offerLive(ev('user:a', 4));
    t.applyPage({ events: [ev('user:a', 2)], cursor: 'c', hasMore: false });
    const first = t.endSync();
    assert.equal(first.gapRemaining, true);
    assert.deepEqual(first.deliver, []);
    assert.equal(t.syncing, true);
    const forced = t.endSync({ force: true });
    assert.deepEqual(keys(forced.deliver), ['user:a#4']);
    assert.equal(t.stats.gapsLost, 1);
    assert.equal(t.syncing, false);
  });

  it('interleaves released topics by publishedAt without reordering a topic', () => {
    const t = new EventTracker();
    t.beginSync();
    t.offerLive(ev('a', 2, { publishedAt: '2026-01-01T00:00:05Z' }));
    t.offerLive(ev('a', 1, { publishedAt: '2026-01-01T00:00:09Z' })); // clock skew: still seq order
    t.offerLive(ev('b', 1, { publishedAt: '2026-01-01T00:00:03Z' }));
    t.applyPage({ events: [], cursor: encodeCursor({ a: 0, b: 0 }), hasMore: false });
    assert.deepEqual(keys(t.endSync().deliver), ['b#1', 'a#1', 'a#2']);
  });
});

describe('EventTracker: HTTP pages and cursors', () => {
  it('adopts the server cursor positions for topics it has not seen', () => {
    const t = new EventTracker();
    t.applyPage({ events: [], cursor: encodeCursor({ 'user:a': 9, all: 2 }), hasMore: false }, { deliver: false });
    assert.equal(t.positions.get('user:a'), 9);
    assert.equal(t.offerLive(ev('user:a', 10)).deliver.length, 1);
    assert.equal(t.offerLive(ev('all', 3)).deliver.length, 1);
  });

  it("skips history for a client that starts 'now' but still moves its positions", () => {
    const t = new EventTracker();
    const out = t.applyPage({ events: [ev('user:a', 1), ev('user:a', 2)], cursor: 'opaque', hasMore: false }, { deliver: false });
    assert.deepEqual(out, []);
    assert.equal(t.positions.get('user:a'), 2);
    assert.equal(t.serverCursor, 'opaque');
  });

  it('advances a v1 server cursor with its own positions before fetching', () => {
    const t = new EventTracker();
    assert.equal(t.fetchCursor(), null); // first read: from the start of retention
    t.applyPage({ events: [], cursor: encodeCursor({ 'user:a': 2, 'group:g': 1 }), hasMore: false });
    t.offerLive(ev('user:a', 3));
    t.offerLive(ev('user:a', 4));
    assert.deepEqual(Object.fromEntries(decodeCursor(t.fetchCursor())), { 'user:a': 4, 'group:g': 1 });
  });

  it('passes an opaque server cursor through unchanged', () => {
    const t = new EventTracker();
    t.applyPage({ events: [ev('user:a', 1)], cursor: 'opaque-123', hasMore: false });
    t.offerLive(ev('user:a', 2));
    assert.equal(t.fetchCursor(), 'opaque-123');
    t.opaque = false;
    const v1 = encodeCursor({ 'user:a': 1 });
    t.applyPage({ events: [], cursor: v1, hasMore: false });
    t.opaque = true; // the server refused a built cursor once: never build again
    assert.equal(t.fetchCursor(), v1);
  });

  it('drops HTTP duplicates of frames already seen on the socket', () => {
    const t = new EventTracker();
    t.offerLive(ev('user:a', 1));
    t.offerLive(ev('user:a', 2));
    const out = t.applyPage({ events: [ev('user:a', 1), ev('user:a', 2), ev('user:a', 3)], cursor: 'c', hasMore: false });
    assert.deepEqual(keys(out), ['user:a#3']);
    assert.equal(t.stats.duplicates, 2);
  });

  it('counts seqs the server no longer holds as lost, and carries on', () => {
    const t = new EventTracker();
    t.offerLive(ev('user:a', 1));
    const out = t.applyPage({ events: [ev('user:a', 5)], cursor: 'c', hasMore: false });
    assert.deepEqual(keys(out), ['user:a#5']);
    assert.equal(t.stats.gapsLost, 3);
  });
});

describe('EventTracker: one event on several topics', () => {
  it('hands it on once by default, and once per topic with dedupeById=false', () => {
    const copies = [ev('user:a', 1, { id: 'e1' }), ev('group:g', 7, { id: 'e1' })];
    const once = new EventTracker();
    once.applyPage({ events: [], cursor: encodeCursor({ 'group:g': 6 }), hasMore: false });
    const outOnce = copies.flatMap((f) => once.offerLive(f).deliver);
    assert.deepEqual(keys(outOnce), ['user:a#1']);
    assert.equal(once.positions.get('group:g'), 7); // the dropped copy still moves its topic on

    const each = new EventTracker({ dedupeById: false });
    each.applyPage({ events: [], cursor: encodeCursor({ 'group:g': 6 }), hasMore: false });
    assert.deepEqual(keys(copies.flatMap((f) => each.offerLive(f).deliver)), ['user:a#1', 'group:g#7']);
  });

  it('forgets the oldest ids beyond its memory', () => {
    const t = new EventTracker({ idMemory: 3 });
    for (let s = 1; s <= 5; s += 1) t.offerLive(ev('user:a', s, { id: `e${s}` }));
    assert.deepEqual([...t.recentIds], ['e3', 'e4', 'e5']);
  });
});

describe('PresenceTracker', () => {
  const presence = (type, user, version) => ({ ...ev(`presence:${user}`, version), type, data: { userId: user, version } });

  it('turns presence events into updates and never lets a stale version win', () => {
    const p = new PresenceTracker();
    assert.deepEqual(
      (({ userId, online, version }) => ({ userId, online, version }))(p.update(presence('presence.online', 'bob', 1))),
      { userId: 'bob', online: true, version: 1 },
    );
    assert.equal(p.update(presence('presence.offline', 'bob', 3)).online, false);
    assert.equal(p.update(presence('presence.online', 'bob', 2)), null);
    assert.equal(p.update(presence('presence.online', 'bob', 4)).online, true);
    assert.equal(p.update(ev('user:bob', 1)), null);
  });
});
