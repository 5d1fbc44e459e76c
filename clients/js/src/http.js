// GET /events on the wire: the URL of a page and the error of a failed one.
// The client (client.js) reads the pages; the tracker decides what they hand on.

// Answers that mean "too many requests now": throttled (429), or an overloaded or
// throttled backend (5xx; a Lambda throttle reaches the client as a 500). The
// client backs off with full jitter before the next poll, and waits Retry-After first.
export const isThrottled = (status) => status === 429 || (status >= 500 && status <= 599);

// A Retry-After longer than this is taken as this: a wrong header must not park a client for hours.
export const RETRY_AFTER_MAX_MS = 300000;

export class HttpError extends Error {
  constructor(status, error, { retryAfterMs = null } = {}) {
    super(`GET /events failed: ${status} ${error?.code ?? ''} ${error?.message ?? ''}`.trim());
    this.name = 'HttpError';
    this.status = status;
    this.code = error?.code;
    this.retryAfterMs = retryAfterMs; // what Retry-After asked for, in ms; null when absent or unreadable
  }

  get throttled() {
    return isThrottled(this.status);
  }
}

/**
 * A Retry-After header in ms from `nowMs`: delay-seconds or an HTTP date (RFC 9110);
 * null when absent or unreadable, never below 0 nor above RETRY_AFTER_MAX_MS.
 * (A browser only sees the header when the API exposes it to CORS.)
 */
export function retryAfterMs(value, nowMs) {
  if (typeof value !== 'string' || value.trim() === '') return null;
  const text = value.trim();
  let ms;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else if (/[a-z]/i.test(text)) ms = Date.parse(text) - nowMs; // an HTTP date always names a day and month
  else return null;
  if (Number.isNaN(ms)) return null;
  return Math.min(RETRY_AFTER_MAX_MS, Math.max(0, ms));
}

/** The URL of one GET /events page: the tracker's query, a page size and, for a long poll, a wait in seconds. */
export function eventsUrl(httpUrl, query, { limit, wait = 0 }) {
  const params = new URLSearchParams({ ...query, limit: String(limit) });
  if (wait > 0) params.set('wait', String(wait));
  return `${httpUrl}/events?${params}`;
}

/** The URL of GET /presence for some users (comma-separated, as the API takes them). */
export function presenceUrl(httpUrl, users) {
  return `${httpUrl}/presence?${new URLSearchParams({ users: [...users].join(',') })}`;
}
