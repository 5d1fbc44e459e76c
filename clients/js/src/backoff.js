// Backoff: exponential up to a cap, with jitter so that retries spread out.
// "equal" jitter (the default: half fixed, half random) never collapses to zero
// delay, for reconnects; "full" jitter (anywhere from zero to the ceiling)
// spreads a crowd furthest, for a server that says it is overloaded.
// Python: realtime_client/tracker.py Backoff.

export class Backoff {
  constructor({ initialMs = 500, maxMs = 30000, factor = 2, jitter = 'equal', random = Math.random } = {}) {
    if (jitter !== 'equal' && jitter !== 'full') throw new TypeError("jitter must be 'equal' or 'full'");
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.factor = factor;
    this.jitter = jitter;
    this.random = random;
    this.attempt = 0;
  }

  /** The ceiling for the current attempt (before jitter). */
  ceiling(attempt = this.attempt) {
    return Math.min(this.maxMs, this.initialMs * this.factor ** attempt);
  }

  /** Delay before the next retry, in ms; each call moves one attempt further. */
  next() {
    const ceiling = this.ceiling();
    this.attempt += 1;
    if (this.jitter === 'full') return this.random() * ceiling;
    return ceiling / 2 + this.random() * (ceiling / 2);
  }

  reset() {
    this.attempt = 0;
  }
}
