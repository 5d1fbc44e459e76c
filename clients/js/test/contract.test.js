// The browser client against contract/: the logic cases it shares with the
// Python client (contract/vectors/client.json), the cursor (cursor.json) and
// the server limits it uses.
// It validates no topics, so the grammar vectors have nothing to run here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import {
  Backoff,
  EventTracker,
  PresenceTracker,
  RealtimeClient,
  TOKEN_EXPIRED,
  decodeCursor,
  encodeCursor,
} from '../src/index.js';

const load = (path) => JSON.parse(readFileSync(new URL(`../../../contract/${path}`, import.meta.url), 'utf8'));
const WIRE = load('wire.json');
const VECTORS = load('vectors/client.json');
const CURSOR = load('vectors/cursor.json');

/** A frame as the vectors write it: 'topic#seq' shorthand, or the object itself. */
function frame(value) {
  if (typeof value !== 'string') return value;
  const at = value.lastIndexOf('#');
  const seq = Number(value.slice(at + 1));
  return {
    id: value,
    type: 'test.event',
    topic: value.slice(0, at),
    seq,
    data: {},
    occurredAt: '2026-11-26T10:00:00.000Z',
    publishedAt: `2026-11-26T10:00:00.${String(seq).padStart(3, '0')}Z`,
  };
}

const isV1 = (value) => value !== null && typeof value === 'object';
const cursor = (value) => (isV1(value) ? encodeCursor(value.v1) : value);
const keys = (events) => events.map((event) => `${event.topic}#${event.seq}`);

function assertCursor(actual, expected) {
  if (!isV1(expected)) return assert.equal(actual, expected);
  const positions = decodeCursor(actual);
  assert.notEqual(positions, null, `${actual} is not a v1 cursor`);
  assert.deepEqual(Object.fromEntries(positions), expected.v1);
}

function assertQuery(actual, expected) {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  if ('cursor' in expected) assertCursor(actual.cursor, expected.cursor);
  else assert.deepEqual(actual, expected);
}

function page(value) {
  const events = Array.isArray(value.events) ? value.events.map(frame) : value.events;
  return { ...value, events, cursor: cursor(value.cursor) };
}

function assertDelivered(events, step) {
  assert.deepEqual(keys(events), step.deliver);
  if (step.deliverSeqs !== undefined) assert.deepEqual(events.map((event) => event.seqs), step.deliverSeqs);
}

function runStep(tracker, step) {
  if ('live' in step) {
    const { deliver, needSync } = tracker.offerLive(frame(step.live));
    assertDelivered(deliver, step);
    assert.equal(needSync, step.needSync ?? false);
  } else if ('page' in step) {
    assertDelivered(tracker.applyPage(page(step.page)), step);
  } else if ('beginSync' in step) {
    tracker.beginSync();
  } else if ('endSync' in step) {
    const { deliver, gapRemaining } = tracker.endSync(step.endSync);
    assertDelivered(deliver, step);
    assert.equal(gapRemaining, step.gapRemaining);
  } else if ('restore' in step) {
    tracker.restore(cursor(step.restore));
  } else if ('reset' in step) {
    tracker.reset();
  } else if ('fetchQuery' in step) {
    assertQuery(tracker.fetchQuery(), step.fetchQuery);
  } else if ('fetchCursor' in step) {
    assertCursor(tracker.fetchCursor(), step.fetchCursor);
  } else if ('expect' in step) {
    const { positions, syncing, serverCursor, stats = {} } = step.expect;
    if (positions !== undefined) assert.deepEqual(Object.fromEntries(tracker.positions), positions);
    if (syncing !== undefined) assert.equal(tracker.syncing, syncing);
    if (serverCursor !== undefined) assertCursor(tracker.serverCursor, serverCursor);
    for (const [name, value] of Object.entries(stats)) assert.equal(tracker.stats[name], value, `stats.${name}`);
  } else {
    throw new Error(`unknown step ${JSON.stringify(step)}`);
  }
}

for (const [category, cases] of Object.entries(VECTORS.tracker)) {
  describe(`EventTracker vectors: ${category}`, () => {
    for (const { name, options, steps } of cases) {
      it(name, () => {
        const tracker = new EventTracker(options);
        steps.forEach((step, index) => {
          try {
            runStep(tracker, step);
          } catch (error) {
            error.message = `step ${index} ${JSON.stringify(step)}: ${error.message}`;
            throw error;
          }
        });
      });
    }
  });
}

describe('Backoff vectors', () => {
  for (const { name, options, steps } of VECTORS.backoff.cases) {
    it(name, () => {
      const lowest = new Backoff({ ...options, random: () => 0 });
      const highest = new Backoff({ ...options, random: () => 1 });
      for (const step of steps) {
        if (step === 'reset') {
          lowest.reset();
          highest.reset();
        } else {
          assert.deepEqual([lowest.next(), highest.next()], step);
        }
      }
    });
  }
});

describe('cursor vectors', () => {
  for (const { positions, cursor: expected } of CURSOR.encode) {
    it(`encodes ${JSON.stringify(positions)}`, () => assert.equal(encodeCursor(positions), expected));
  }
  for (const { name, cursor: given, positions } of CURSOR.decode) {
    it(`decodes: ${name}`, () => {
      const decoded = decodeCursor(given);
      assert.deepEqual(decoded === null ? null : Object.fromEntries(decoded), positions);
    });
  }
});

describe('PresenceTracker vectors', () => {
  for (const { name, updates } of VECTORS.presence.cases) {
    it(name, () => {
      const presence = new PresenceTracker();
      for (const { event, update } of updates) {
        const got = presence.update(frame(event));
        const seen = got && { userId: got.userId, online: got.online, version: got.version ?? null };
        assert.deepEqual(seen, update, JSON.stringify(event));
      }
    });
  }
});

it("uses the server's limits as its defaults and its codes (contract/wire.json)", () => {
  const client = new RealtimeClient({ wsUrl: 'wss://ws.test', httpUrl: 'https://api.test', getToken: () => 't' });
  assert.equal(client.options.pageLimit, WIRE.limits.pageEventsMax);
  assert.equal(client.options.longPollWaitSeconds, WIRE.limits.waitSecondsMax);
  assert.equal(Number.MAX_SAFE_INTEGER, WIRE.limits.seqMax, 'decodeCursor takes safe integers only');
  assert.equal(TOKEN_EXPIRED, WIRE.socketErrors.tokenExpired);
});
