// Pure logic of the browser client beyond the cases it shares with the Python
// client (contract/vectors/client.json, run by contract.test.js).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Backoff, HttpError, retryAfterMs } from '../src/index.js';

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

describe('Backoff with full jitter', () => {
  it('returns anything from zero to the ceiling', () => {
    const backoff = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 'full' });
    const delays = Array.from({ length: 200 }, () => backoff.next());
    assert.ok(delays.every((d) => d >= 0 && d <= 1000));
    assert.ok(delays.some((d) => d < 500), 'below the equal-jitter floor');
  });

  it('refuses a jitter it does not know', () => {
    assert.throws(() => new Backoff({ jitter: 'none' }), TypeError);
  });
});

describe('Retry-After', () => {
  const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');

  it('reads delay-seconds and HTTP dates', () => {
    assert.equal(retryAfterMs('3', now), 3000);
    assert.equal(retryAfterMs(' 0 ', now), 0);
    assert.equal(retryAfterMs('Wed, 21 Oct 2026 07:28:05 GMT', now), 5000);
    assert.equal(retryAfterMs('Wed, 21 Oct 2026 07:27:00 GMT', now), 0, 'a date past is now');
  });

  it('ignores what it cannot read, and caps what is too long', () => {
    for (const value of [null, undefined, '', '-1', '1.5', 'soon', '12 parsecs']) {
      assert.equal(retryAfterMs(value, now), null, String(value));
    }
    assert.equal(retryAfterMs('86400', now), 300000);
  });

  it('is carried by the error of a throttled answer', () => {
    const error = new HttpError(429, { code: 'throttled' }, { retryAfterMs: 2000 });
    assert.equal(error.retryAfterMs, 2000);
    assert.equal(error.throttled, true);
    assert.equal(new HttpError(503, null).throttled, true);
    assert.equal(new HttpError(400, { code: 'invalid_cursor' }).throttled, false);
    assert.equal(new HttpError(400, null).retryAfterMs, null);
  });
});
