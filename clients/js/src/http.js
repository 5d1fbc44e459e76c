// GET /events on the wire: the URL of a page and the error of a failed one.
// The client (client.js) reads the pages; the tracker decides what they hand on.

export class HttpError extends Error {
  constructor(status, error) {
    super(`GET /events failed: ${status} ${error?.code ?? ''} ${error?.message ?? ''}`.trim());
    this.name = 'HttpError';
    this.status = status;
    this.code = error?.code;
  }
}

/** The URL of one GET /events page: the tracker's query, a page size and, for a long poll, a wait in seconds. */
export function eventsUrl(httpUrl, query, { limit, wait = 0 }) {
  const params = new URLSearchParams({ ...query, limit: String(limit) });
  if (wait > 0) params.set('wait', String(wait));
  return `${httpUrl}/events?${params}`;
}
