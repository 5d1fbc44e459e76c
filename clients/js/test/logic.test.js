// Pure logic of the browser client beyond the cases it shares with the Python
// client (contract/vectors/client.json, run by contract.test.js).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Backoff, EventTracker } from '../realtime.js';

const ev = (topic, seq) => ({ id: `${topic}#${seq}`, type: 'test.event', topic, seq, data: {} });

describe('Backoff with real randomness', () => {
  it('never returns zero or more than the cap', () => {
    const backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
    for (let i = 0; i < 200; i += 1) {
      const d = backoff.next();
      assert.ok(d >= 100 && d <= 5000, `${d}`);
    }
  });

  it('spreads clients out (jitter is not constant)', () => {
    const backoff = new Backoff({ initialMs: 1000 });
    const seen = new Set(Array.from({ length: 20 }, () => (backoff.reset(), Math.round(backoff.next()))));
    assert.ok(seen.size > 10);
  });
});

describe('EventTracker', () => {
  it('only moves positions for a page applied with deliver: false', () => {
    const t = new EventTracker();
    const page = { events: [ev('user:a', 1), ev('user:a', 2)], cursor: 'opaque', hasMore: false };
    assert.deepEqual(t.applyPage(page, { deliver: false }), []);
    assert.equal(t.positions.get('user:a'), 2);
    assert.equal(t.serverCursor, 'opaque');
    assert.deepEqual(
      t.offerLive(ev('user:a', 3)).deliver.map((e) => e.seq),
      [3],
    );
  });
});
