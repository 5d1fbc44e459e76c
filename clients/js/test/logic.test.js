// Pure logic of the browser client beyond the cases it shares with the Python
// client (contract/vectors/client.json, run by contract.test.js).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Backoff } from '../realtime.js';

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
