// Backoff: exponential with "equal jitter" (half fixed, half random), so
// retries spread out but never collapse to zero delay.
// Python: realtime_client/tracker.py Backoff.

export class Backoff {
  constructor({ initialMs = 500, maxMs = 30000, factor = 2, random = Math.random } = {}) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.factor = factor;
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
    return ceiling / 2 + this.random() * (ceiling / 2);
  }

  reset() {
    this.attempt = 0;
  }
}
