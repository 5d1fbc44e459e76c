// Browser client for realtime events and presence. One ES module, no dependencies.
//
//   import { connect } from './realtime.js';
//   const client = connect({ wsUrl, httpUrl, getToken: async () => (await fetch('/token')).text() });
//   client.on('order.updated', (event) => render(event.data));
//   client.onPresence(({ userId, online }) => mark(userId, online));
//   client.onState((state) => badge(state));   // connecting | open | fallback | closed
//
// What it guarantees to the application: every event of the token's topics is
// handed over once, in `seq` order per topic, whichever transport carried it.
// The WebSocket is preferred; HTTP long polling of GET /events takes over when
// the socket cannot open or keeps dropping, and the socket is retried in the
// background. Every (re)connection and every seq jump is repaired from
// GET /events before newer events are handed on.
//
// The pure logic (backoff, cursor, ordering and dedup) is exported separately
// so that it can be tested without a network; it runs the same cases as the
// Python client (contract/vectors/client.json).
//
// Source: clients/js/src, split as the Python client is: backoff.js, cursor.js,
// tracker.js and presence.js hold the pure logic, http.js, websocket.js and
// client.js the I/O, and index.js (this header) names the public API.
// clients/js/build.mjs joins them into realtime.js, the one file shipped.
//
// Generated file: edit clients/js/src, then run `npm run build` in clients/js.

// ---- src/backoff.js -------------------------------------------------------
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

// ---- src/cursor.js --------------------------------------------------------
// Cursor, version 1 of the contract (contract/vectors/cursor.json): base64url
// JSON {"v":1,"t":{topic: seq}}. The client advances the server's cursor with
// the positions it already holds (so a catch-up after an hour on the socket
// does not re-download the hour). A cursor of another version is sent as it is.

function base64UrlEncode(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function base64UrlDecode(cursor) {
  // Strict: atob alone would also take white space and the standard alphabet.
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(cursor)) throw new SyntaxError('not base64url');
  const text = cursor.replace(/=+$/, '');
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

/** Per-topic positions from a v1 cursor, or null when the cursor is not one. */
export function decodeCursor(cursor) {
  if (typeof cursor !== 'string') return null;
  try {
    const value = JSON.parse(base64UrlDecode(cursor));
    if (!value || value.v !== 1 || typeof value.t !== 'object' || value.t === null || Array.isArray(value.t)) {
      return null;
    }
    if (Object.keys(value).some((key) => key !== 'v' && key !== 't')) return null; // unknown shape: stay opaque
    const positions = new Map();
    for (const [topic, seq] of Object.entries(value.t)) {
      if (!Number.isSafeInteger(seq) || seq < 0) return null;
      positions.set(topic, seq);
    }
    return positions;
  } catch {
    return null;
  }
}

/** A v1 cursor for the given positions (Map or plain object of topic -> seq). */
export function encodeCursor(positions) {
  const t = {};
  const entries = positions instanceof Map ? positions.entries() : Object.entries(positions);
  for (const [topic, seq] of entries) t[topic] = seq;
  return base64UrlEncode(JSON.stringify({ v: 1, t }));
}

// ---- src/tracker.js -------------------------------------------------------
// EventTracker: positions per topic, a buffer for frames that arrive ahead of
// a gap or during a catch-up, and dedup. No I/O: the client feeds it frames
// and pages and hands on whatever it returns, in the order returned.
// Python: realtime_client/tracker.py EventTracker; both run contract/vectors/client.json.

function isEvent(frame) {
  return (
    frame !== null &&
    typeof frame === 'object' &&
    typeof frame.topic === 'string' &&
    Number.isInteger(frame.seq) &&
    frame.seq > 0
  );
}

/**
 * The (topic, seq) pairs of a frame: its `seqs` (every topic through which the
 * event reached this connection) when well formed, else its own topic and seq.
 */
function framePairs(frame) {
  const seqs = frame.seqs;
  if (seqs !== null && typeof seqs === 'object' && !Array.isArray(seqs)) {
    const pairs = Object.entries(seqs);
    if (pairs.length > 0 && pairs.every(([, seq]) => Number.isInteger(seq) && seq > 0)) return pairs;
  }
  return [[frame.topic, frame.seq]];
}

/** One copy per (topic, seq) pair, each as if it had arrived alone; all of them share the frame's `seqs`. */
function copiesOf(frame) {
  const pairs = framePairs(frame);
  const seqs = Object.fromEntries(pairs);
  return pairs.map(([topic, seq]) => ({ ...frame, topic, seq, seqs }));
}

const pairKey = (topic, seq) => `${topic}\n${seq}`;

/**
 * What makes two frames or items one event: the server's opaque `key`, unique
 * per stored event (two producers' events that share an id differ in it); an
 * event stored before keys existed has none and falls back to its `id`.
 * Prefixed, so a key never meets an id. null: no identity, never deduped.
 */
function identityOf(event) {
  if (typeof event.key === 'string' && event.key !== '') return `key:${event.key}`;
  if (typeof event.id === 'string') return `id:${event.id}`;
  return null;
}

/** The key that interleaves topics on release; a frame without one goes first. */
function publishedAt(frame) {
  return typeof frame.publishedAt === 'string' ? frame.publishedAt : '';
}

export class EventTracker {
  /**
   * dedupeEvents: hand on each event once however many of the client's topics
   * carry it (by `key`, else `id`); false: once per topic. dedupeById is its
   * former name, still accepted. idMemory: how many events are remembered.
   */
  constructor({ dedupeEvents, dedupeById, idMemory = 10000, since = 'now' } = {}) {
    this.positions = new Map(); // topic -> last seq handed on, or skipped as history or past retention
    this.serverCursor = null; // the last cursor the server gave
    // 'now': the first read asks the server where the topics are (since=now) and
    // hands nothing on; 'retention': it reads from the start of retention.
    this.since = since;
    this.started = false; // a first page was read, or a cursor restored
    this.syncing = false; // a catch-up is running: hold live frames until it ends
    this.pending = new Map(); // `${topic}\n${seq}` -> frame held back
    this.dedupeEvents = dedupeEvents ?? dedupeById ?? true;
    this.idMemory = idMemory;
    this.recentEvents = new Map(); // identityOf -> Set of its (topic, seq) keys seen; insertion-ordered: the oldest go first
    this.stats = { delivered: 0, duplicates: 0, gapsDetected: 0, gapsLost: 0 };
  }

  /**
   * A frame from the WebSocket. Returns { deliver: [...], needSync: bool }:
   * needSync means a seq jumped (or a topic starts mid-way) and the caller
   * must catch up over HTTP; the frame is held until then. A frame carries
   * one event and the seq of each of its topics that reach this connection
   * (`seqs`): each pair moves its own topic, the event is handed on once.
   */
  offerLive(frame) {
    const result = { deliver: [], needSync: false };
    if (!isEvent(frame)) return result;
    for (const copy of copiesOf(frame)) this._offerCopy(copy, result);
    return result;
  }

  _offerCopy(copy, result) {
    const key = pairKey(copy.topic, copy.seq);
    const position = this.positions.get(copy.topic);
    if ((position !== undefined && copy.seq <= position) || this.pending.has(key)) {
      this.stats.duplicates += 1;
      return;
    }
    if (this.syncing) {
      this.pending.set(key, copy);
      return;
    }
    const expected = position === undefined ? 1 : position + 1;
    if (copy.seq === expected) {
      this._accept(copy, result.deliver);
      return;
    }
    // A jump: frames in between were missed (or this topic is new to us). Hold
    // this one and everything after it until the gap is read over HTTP.
    this.stats.gapsDetected += 1;
    this.pending.set(key, copy);
    this.syncing = true;
    result.needSync = true;
  }

  /** Start from a cursor saved earlier (e.g. across a page reload): everything after it is handed on. */
  restore(cursor) {
    this.serverCursor = cursor;
    for (const [topic, seq] of decodeCursor(cursor) || []) this.positions.set(topic, seq);
    this.started = true;
  }

  /** The server refused the cursor (400 invalid_cursor): start again as `since` says. */
  reset() {
    this.positions.clear();
    this.serverCursor = null;
    this.started = false;
  }

  /** The query of the next GET /events: {since: 'now'}, {cursor} or {} (from the start of retention). */
  fetchQuery() {
    if (this.since === 'now' && !this.started) return { since: 'now' };
    const cursor = this.fetchCursor();
    return cursor === null ? {} : { cursor };
  }

  /** The cursor to fetch with: the server's, advanced by our own positions when it is a v1 cursor. */
  fetchCursor() {
    const server = this.serverCursor === null ? new Map() : decodeCursor(this.serverCursor);
    if (server === null) return this.serverCursor;
    if (this.serverCursor === null && this.positions.size === 0) return null;
    for (const [topic, seq] of this.positions) {
      if (!server.has(topic) || server.get(topic) < seq) server.set(topic, seq);
    }
    return encodeCursor(server);
  }

  beginSync() {
    this.syncing = true;
  }

  /**
   * A page of GET /events: returns the events to hand on. A seq jump inside a
   * page is not a gap: the server holds every event still within retention,
   * so the seqs in between are past it.
   */
  applyPage(page) {
    const out = [];
    const events = (Array.isArray(page.events) ? page.events : []).filter(isEvent);
    // One item per (event, topic): the items of one event are handed on once, with every pair the page has.
    const seqsByEvent = new Map();
    for (const event of events) {
      const identity = identityOf(event);
      if (identity === null) continue;
      if (!seqsByEvent.has(identity)) seqsByEvent.set(identity, []);
      seqsByEvent.get(identity).push([event.topic, event.seq]);
    }
    for (const [identity, pairs] of seqsByEvent) {
      seqsByEvent.set(identity, Object.fromEntries(pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    }
    for (const item of events) {
      const event = { ...item, seqs: seqsByEvent.get(identityOf(item)) ?? { [item.topic]: item.seq } };
      const position = this.positions.get(event.topic);
      if (position !== undefined && event.seq <= position) {
        this.stats.duplicates += 1;
        continue;
      }
      this._accept(event, out);
    }
    if (typeof page.cursor === 'string' && page.cursor !== '') {
      this.started = true;
      this.serverCursor = page.cursor;
      // The server's positions are authoritative where they are ahead: history
      // before 'now', events past retention, topics we have not seen yet.
      const server = decodeCursor(page.cursor);
      if (server) {
        for (const [topic, seq] of server) {
          const position = this.positions.get(topic);
          if (position === undefined || position < seq) this.positions.set(topic, seq);
        }
      }
    }
    return out;
  }

  /**
   * End a catch-up: hand on the held frames that now follow on. With
   * force=false a frame still ahead of a gap stays held and gapRemaining is
   * true (catch up once more); with force=true it is handed on anyway and the
   * missing seqs are counted as lost.
   */
  endSync({ force = false } = {}) {
    const deliver = [];
    const byTopic = new Map();
    for (const frame of this.pending.values()) {
      if (!byTopic.has(frame.topic)) byTopic.set(frame.topic, []);
      byTopic.get(frame.topic).push(frame);
    }
    this.pending.clear();
    const chains = [];
    let gapRemaining = false;
    for (const [topic, frames] of byTopic) {
      frames.sort((a, b) => a.seq - b.seq);
      let position = this.positions.get(topic);
      const chain = [];
      for (const frame of frames) {
        if (position !== undefined && frame.seq <= position) {
          this.stats.duplicates += 1;
          continue;
        }
        const contiguous = position === undefined ? frame.seq === 1 : frame.seq === position + 1;
        if (!contiguous && !force) {
          gapRemaining = true;
          this.pending.set(`${frame.topic}\n${frame.seq}`, frame);
          continue;
        }
        if (!contiguous && position !== undefined) this.stats.gapsLost += frame.seq - position - 1;
        chain.push(frame);
        position = frame.seq;
      }
      if (chain.length) chains.push(chain);
    }
    // Interleave topics by publishedAt, never reordering within a topic.
    const heads = chains.map(() => 0);
    for (;;) {
      let best = -1;
      for (let i = 0; i < chains.length; i += 1) {
        if (heads[i] >= chains[i].length) continue;
        if (best < 0 || publishedAt(chains[i][heads[i]]) < publishedAt(chains[best][heads[best]])) {
          best = i;
        }
      }
      if (best < 0) break;
      this._accept(chains[best][heads[best]], deliver);
      heads[best] += 1;
    }
    this.syncing = gapRemaining;
    return { deliver, gapRemaining };
  }

  _accept(copy, out) {
    this.positions.set(copy.topic, copy.seq);
    // One event can reach us through several topics (one frame, or one HTTP item per topic, or
    // both): the application gets it once, with every (topic, seq) pair known for it.
    const identity = this.dedupeEvents ? identityOf(copy) : null;
    if (identity !== null) {
      const seen = this.recentEvents.get(identity);
      if (seen !== undefined) {
        // A pair the event was handed on with is its own copy, not a duplicate.
        if (!seen.has(pairKey(copy.topic, copy.seq))) this.stats.duplicates += 1;
        seen.add(pairKey(copy.topic, copy.seq));
        return;
      }
      this.recentEvents.set(identity, new Set(Object.entries(copy.seqs).map(([topic, seq]) => pairKey(topic, seq))));
      if (this.recentEvents.size > this.idMemory) this.recentEvents.delete(this.recentEvents.keys().next().value);
    }
    this.stats.delivered += 1;
    out.push(copy);
  }
}

// ---- src/presence.js ------------------------------------------------------
// Presence: keep the newest version per user so a late, stale update never wins.

export class PresenceTracker {
  constructor() {
    this.versions = new Map();
  }

  /** A presence update for the application, or null when stale / not presence. */
  update(event) {
    if (!event || (event.type !== 'presence.online' && event.type !== 'presence.offline')) return null;
    const data = event.data !== null && typeof event.data === 'object' && !Array.isArray(event.data) ? event.data : {};
    const topic = typeof event.topic === 'string' ? event.topic : '';
    const userId = typeof data.userId === 'string' && data.userId !== '' ? data.userId : topic.replace(/^presence:/, '');
    // Without a version an update cannot be stale.
    const version = Number.isInteger(data.version) ? data.version : undefined;
    if (version !== undefined) {
      const seen = this.versions.get(userId);
      if (seen !== undefined && version <= seen) return null;
      this.versions.set(userId, version);
    }
    return { userId, online: event.type === 'presence.online', version, data, event };
  }
}

// ---- src/http.js ----------------------------------------------------------
// GET /events on the wire: the URL of a page and the error of a failed one.
// The client (client.js) reads the pages; the tracker decides what they hand on.

// Answers that mean "too many requests now": throttled (429), or an overloaded or
// throttled backend (5xx; a Lambda throttle reaches the client as a 500). The
// client backs off with full jitter before the next poll, and waits Retry-After first.
const isThrottled = (status) => status === 429 || (status >= 500 && status <= 599);

// A Retry-After longer than this is taken as this: a wrong header must not park a client for hours.
const RETRY_AFTER_MAX_MS = 300000;

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
function eventsUrl(httpUrl, query, { limit, wait = 0 }) {
  const params = new URLSearchParams({ ...query, limit: String(limit) });
  if (wait > 0) params.set('wait', String(wait));
  return `${httpUrl}/events?${params}`;
}

// ---- src/websocket.js -----------------------------------------------------
// The WebSocket on the wire: the URL with the token, and handlers that may be
// dropped and sockets that may be closed at any moment without throwing.

/** The socket URL with the token as ?token= (browsers cannot set headers on a WebSocket). */
function socketUrl(wsUrl, token) {
  const separator = wsUrl.includes('?') ? '&' : '?';
  return `${wsUrl}${separator}token=${encodeURIComponent(token)}`;
}

/** Drop every handler, so a superseded socket can no longer reach the client. */
function detach(ws) {
  ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
}

/** Close, whatever state the socket is in. */
function safeClose(ws, code, reason) {
  try {
    if (code) ws.close(code, reason);
    else ws.close();
  } catch {
    // already closed
  }
}

// ---- src/client.js --------------------------------------------------------
// The client: transports, timers, handlers. The WebSocket is preferred; HTTP
// long polling of GET /events takes over when it cannot open or keeps dropping,
// and every (re)connection and seq jump is repaired over HTTP before newer
// events are handed on. What to hand on, and in which order, is the tracker's.
// Python: realtime_client/client.py RealtimeClient.

export const STATES = Object.freeze(['connecting', 'open', 'fallback', 'closed']);

// The error frame the server sends just before it closes a socket whose token has expired (contract/wire.json).
export const TOKEN_EXPIRED = 'token_expired';

const DEFAULTS = {
  since: 'now', // 'now': only events after connect; 'retention': replay what the server still holds first
  cursor: null, // resume after a cursor saved from client.cursor (e.g. across a page reload)
  pingIntervalMs: 30000, // API Gateway drops idle sockets after 10 min; a ping also proves the socket is alive
  pongTimeoutMs: 10000, // no frame this long after a ping: the socket died silently
  openTimeoutMs: 10000, // handshake and a first answer: a firewall may hang the one, a proxy swallow the other
  fallbackAfterFailures: 2, // consecutive failed opens before HTTP takes over
  fallbackDelayMs: 5000, // ... or this long without a usable socket
  dropWindowMs: 60000, // sockets that open and drop this often count as broken:
  maxDropsInWindow: 3, // ... HTTP takes over and the socket is retried with backoff
  stableAfterMs: 30000, // a socket up this long resets the backoff
  gapGraceMs: 250, // a seq jump waits this long for the late frame before reading the gap over HTTP
  longPollWaitSeconds: 20, // the server's maximum (API Gateway cuts requests at 29 s)
  pageLimit: 200,
  backoff: {},
  dedupeEvents: true, // one event reaching the client through several topics is handed on once (by key, else id)
};

export function connect(options) {
  const client = new RealtimeClient(options);
  // Started in a microtask, so handlers added right after connect() see every state.
  queueMicrotask(() => client.start());
  return client;
}

export class RealtimeClient {
  constructor(options) {
    const { wsUrl, httpUrl, getToken } = options || {};
    if (!wsUrl || !httpUrl || typeof getToken !== 'function') {
      throw new TypeError('connect() needs wsUrl, httpUrl and getToken');
    }
    // dedupeById: the former name of dedupeEvents, still accepted.
    this.options = { ...DEFAULTS, ...options, dedupeEvents: options.dedupeEvents ?? options.dedupeById ?? true };
    if (!['now', 'retention'].includes(this.options.since)) throw new TypeError("since must be 'now' or 'retention'");
    this.wsUrl = wsUrl;
    this.httpUrl = httpUrl.replace(/\/+$/, '');
    this.getToken = getToken;
    // Looked up at connect time, not import time, so a page can wrap or block it.
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    this._fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this._clock = options.clock || {
      now: () => Date.now(),
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (id) => clearTimeout(id),
    };
    this._log = options.logger || null;

    this.tracker = new EventTracker({ dedupeEvents: this.options.dedupeEvents, since: this.options.since });
    if (this.options.cursor) this.tracker.restore(this.options.cursor);
    this.presence = new PresenceTracker();
    this.backoff = new Backoff(this.options.backoff);
    this.state = 'connecting';
    this.transport = null; // 'websocket' | 'http' | null
    this.stats = {
      opens: 0,
      drops: 0,
      failedOpens: 0,
      tokenExpiries: 0, // sockets the server closed because their token expired (reopened at once)
      fallbacks: 0,
      syncs: 0,
      lastSyncMs: null,
      lastSyncEvents: 0,
      lastGapRepairMs: null, // seq jump seen -> the held frames handed on
      throttled: 0, // GET /events answers that said "not now" (429, 5xx): each backed off with full jitter
      tracker: this.tracker.stats,
    };

    this._handlers = new Map(); // type or '*' -> Set
    this._presenceHandlers = new Set();
    this._stateHandlers = new Set();
    this._errorHandlers = new Set();
    this._token = null;
    this._ws = null;
    this._wsGen = 0;
    this._wsOpen = false;
    this._expiredGen = null; // the socket (generation) whose token expired: it closes, a new one opens at once
    this._failures = 0;
    this._dropTimes = [];
    this._timers = new Set();
    this._reconnectTimer = null;
    this._fallbackTimer = null;
    this._pingTimer = null;
    this._pongTimer = null;
    this._stableTimer = null;
    this._gapTimer = null;
    this._gapSeenAt = null;
    this._pollGen = 0;
    this._pollAbort = null;
    this._syncPromise = null;
    this._syncAgain = false;
    this._syncAbort = null;
    this._closed = false;
    this._started = false;
    this._onOnline = () => this.reconnectNow();
  }

  // -- public API -----------------------------------------------------------

  /** Where this client is: pass it as `cursor` to a later client to resume without loss. */
  get cursor() {
    return this.tracker.fetchCursor();
  }

  start() {
    if (this._started) return this;
    this._started = true;
    globalThis.addEventListener?.('online', this._onOnline);
    this._setState('connecting');
    this._armFallbackTimer();
    this._openSocket();
    return this;
  }

  /** Handle events of one type ('*' for every type). Returns a function that unsubscribes. */
  on(type, handler) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(handler);
    return () => this.off(type, handler);
  }

  off(type, handler) {
    this._handlers.get(type)?.delete(handler);
  }

  onPresence(handler) {
    this._presenceHandlers.add(handler);
    return () => this._presenceHandlers.delete(handler);
  }

  /** handler(state, info) on every change of connecting | open | fallback | closed. */
  onState(handler) {
    this._stateHandlers.add(handler);
    return () => this._stateHandlers.delete(handler);
  }

  onError(handler) {
    this._errorHandlers.add(handler);
    return () => this._errorHandlers.delete(handler);
  }

  /** Retry the WebSocket now (e.g. the network came back) instead of waiting for the backoff. */
  reconnectNow() {
    if (this._closed || this._wsOpen) return;
    this.backoff.reset();
    this._clearTimer('_reconnectTimer');
    this._openSocket();
  }

  close() {
    if (this._closed) return;
    this._closed = true;
    globalThis.removeEventListener?.('online', this._onOnline);
    for (const id of this._timers) this._clock.clearTimeout(id);
    this._timers.clear();
    this._stopPolling();
    this._syncAbort?.abort();
    this._wsGen += 1;
    if (this._ws) {
      detach(this._ws);
      safeClose(this._ws, 1000, 'client closed');
      this._ws = null;
    }
    this._wsOpen = false;
    this.transport = null;
    this._setState('closed');
  }

  // -- timers -----------------------------------------------------------------

  _after(ms, fn) {
    const id = this._clock.setTimeout(() => {
      this._timers.delete(id);
      fn();
    }, ms);
    this._timers.add(id);
    return id;
  }

  _clearTimer(name) {
    if (this[name] !== null) {
      this._clock.clearTimeout(this[name]);
      this._timers.delete(this[name]);
      this[name] = null;
    }
  }

  // -- WebSocket --------------------------------------------------------------

  async _openSocket() {
    if (this._closed || this._wsOpen) return;
    this._clearTimer('_reconnectTimer');
    if (this._ws) {
      // An attempt still under way is superseded by this one.
      detach(this._ws);
      safeClose(this._ws);
      this._ws = null;
    }
    const gen = ++this._wsGen;
    let settled = false;
    const fail = (reason) => {
      if (settled || gen !== this._wsGen) return;
      settled = true;
      this._socketFailed(reason);
    };
    let token;
    try {
      token = await this._freshToken();
    } catch (error) {
      this._emitError(error);
      return fail('token');
    }
    if (gen !== this._wsGen || this._closed) return;
    let ws;
    try {
      ws = new this._WebSocket(socketUrl(this.wsUrl, token));
    } catch (error) {
      return fail(error); // blocked by policy, or the page forbids it
    }
    this._ws = ws;
    const openTimer = this._after(this.options.openTimeoutMs, () => {
      if (settled) return;
      const silent = ws.readyState === 1;
      detach(ws);
      safeClose(ws);
      fail(silent ? 'open but no answer to ping' : 'open timeout');
    });
    ws.onopen = () => {
      if (settled || gen !== this._wsGen) return;
      // Open is not enough: a proxy may accept the upgrade and then pass nothing.
      // The socket counts as open once something comes back (within openTimeoutMs).
      try {
        ws.send(JSON.stringify({ action: 'ping' }));
      } catch {
        // closing already: onclose follows
      }
    };
    ws.onmessage = (message) => {
      if (gen !== this._wsGen) return;
      if (!settled) {
        settled = true;
        this._clock.clearTimeout(openTimer);
        this._timers.delete(openTimer);
        this._socketOpened(ws, gen);
      }
      this._socketMessage(message.data);
    };
    ws.onerror = () => {
      if (!settled) {
        this._clock.clearTimeout(openTimer);
        this._timers.delete(openTimer);
        detach(ws);
        safeClose(ws);
        fail('error');
      }
    };
    ws.onclose = (event) => {
      this._clock.clearTimeout(openTimer);
      this._timers.delete(openTimer);
      if (gen !== this._wsGen) return;
      if (!settled) fail(`closed ${event?.code ?? ''}`);
      else if (gen === this._expiredGen) this._socketExpired();
      else this._socketDropped(`closed ${event?.code ?? ''}`);
    };
  }

  _socketFailed(reason) {
    if (this._closed) return;
    this._ws = null;
    this._failures += 1;
    this.stats.failedOpens += 1;
    this._debug('websocket failed to open', reason);
    if (this._failures >= this.options.fallbackAfterFailures) this._enterFallback('websocket cannot open');
    this._scheduleReconnect();
  }

  _socketOpened(ws, gen) {
    this._wsOpen = true;
    this._failures = 0;
    this.stats.opens += 1;
    this.transport = 'websocket';
    this._clearTimer('_fallbackTimer');
    this._stopPolling(); // the socket carries events again
    this._heartbeat(ws, gen);
    this._clearTimer('_stableTimer');
    this._stableTimer = this._after(this.options.stableAfterMs, () => {
      this._stableTimer = null;
      this.backoff.reset();
    });
    // Anything published while we had no socket is read over HTTP first; live
    // frames that arrive meanwhile are held by the tracker and released in order.
    this.tracker.beginSync();
    this._requestSync().then(() => {
      if (gen === this._wsGen && this._wsOpen && !this._closed) this._setState('open');
    });
  }

  _socketMessage(raw) {
    this._clearTimer('_pongTimer'); // any frame proves the socket is alive
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (frame?.type === 'pong') return;
    if (frame?.type === 'error' && frame.seq === undefined) {
      if (frame.error?.code === TOKEN_EXPIRED) return this._tokenExpiring();
      this._emitError(Object.assign(new Error(frame.error?.message || 'error frame'), { frame }));
      return;
    }
    const { deliver, needSync } = this.tracker.offerLive(frame);
    this._dispatch(deliver, 'websocket');
    if (needSync) this._gapDetected();
    else if (this._gapTimer !== null && !this._syncPromise) this._tryCloseGap();
  }

  _gapDetected() {
    this._gapSeenAt ??= this._clock.now();
    // Frames of one topic can overtake each other (the server delivers from
    // concurrent workers), so a missing frame is usually just late: wait a
    // moment for it before reading the gap over HTTP.
    if (this._syncPromise || this.options.gapGraceMs <= 0) {
      this._requestSync();
    } else if (this._gapTimer === null) {
      this._gapTimer = this._after(this.options.gapGraceMs, () => {
        this._gapTimer = null;
        this._requestSync();
      });
    }
  }

  _tryCloseGap() {
    const { deliver, gapRemaining } = this.tracker.endSync({ force: false });
    this._dispatch(deliver, 'websocket');
    if (!gapRemaining) {
      this._clearTimer('_gapTimer'); // the late frame came: no HTTP needed
      this._gapClosed();
    }
  }

  _gapClosed() {
    if (this._gapSeenAt != null) {
      this.stats.lastGapRepairMs = this._clock.now() - this._gapSeenAt;
      this._gapSeenAt = null;
    }
  }

  _heartbeat(ws, gen) {
    const ping = () => {
      this._pingTimer = null;
      if (gen !== this._wsGen || !this._wsOpen) return;
      try {
        ws.send(JSON.stringify({ action: 'ping' }));
      } catch {
        // send on a closing socket: the close handler deals with it
      }
      if (this._pongTimer === null) {
        this._pongTimer = this._after(this.options.pongTimeoutMs, () => {
          this._pongTimer = null;
          if (gen !== this._wsGen) return;
          // Silently dead (no FIN, no RST): give up on it without waiting for the OS.
          this._wsGen += 1;
          detach(ws);
          safeClose(ws, 4000, 'no pong');
          this._socketDropped('heartbeat timeout');
        });
      }
      this._pingTimer = this._after(this.options.pingIntervalMs, ping);
    };
    this._clearTimer('_pingTimer');
    this._pingTimer = this._after(this.options.pingIntervalMs, ping);
  }

  /** The server said the socket's token expired: close it (the server does too), then reopen at once. */
  _tokenExpiring() {
    this._expiredGen = this._wsGen;
    if (this._ws) safeClose(this._ws, 1000, 'token expired');
  }

  _socketExpired() {
    // Not a drop: it counts toward no fallback, and the next socket opens without a backoff.
    if (this._closed) return;
    this._socketEnded();
    this.stats.tokenExpiries += 1;
    this._debug('websocket closed: token expired');
    this._setState('connecting', { reason: TOKEN_EXPIRED });
    this._armFallbackTimer();
    this.backoff.reset();
    this._openSocket();
  }

  _socketDropped(reason) {
    if (this._closed) return;
    this._socketEnded();
    this.stats.drops += 1;
    this._debug('websocket dropped', reason);
    const now = this._clock.now();
    this._dropTimes = this._dropTimes.filter((at) => now - at < this.options.dropWindowMs);
    this._dropTimes.push(now);
    if (this._dropTimes.length >= this.options.maxDropsInWindow || this.state === 'fallback') {
      this._enterFallback('websocket keeps dropping');
    } else {
      this._setState('connecting', { reason });
      this._armFallbackTimer();
    }
    this._scheduleReconnect();
  }

  _socketEnded() {
    this._ws = null;
    this._wsOpen = false;
    this.transport = this._pollAbort ? 'http' : null;
    this._clearTimer('_pingTimer');
    this._clearTimer('_pongTimer');
    this._clearTimer('_stableTimer');
  }

  _scheduleReconnect() {
    if (this._closed || this._reconnectTimer !== null) return;
    const delay = this.backoff.next();
    this._reconnectTimer = this._after(delay, () => {
      this._reconnectTimer = null;
      this._openSocket();
    });
  }

  // -- HTTP ------------------------------------------------------------------

  async _freshToken() {
    this._token = await this.getToken();
    return this._token;
  }

  async _getEvents({ wait = 0, signal } = {}) {
    const query = this.tracker.fetchQuery();
    const url = eventsUrl(this.httpUrl, query, { limit: this.options.pageLimit, wait });
    let token = this._token || (await this._freshToken());
    for (let attempt = 0; ; attempt += 1) {
      const response = await this._request(url, token, signal, (wait + 15) * 1000);
      if (response.status === 401 && attempt === 0) {
        token = await this._freshToken(); // expired or rotated: one retry with a new token
        continue;
      }
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        const error = new HttpError(response.status, body?.error, {
          retryAfterMs: retryAfterMs(response.headers?.get?.('Retry-After') ?? null, this._clock.now()),
        });
        if (error.code === 'invalid_cursor' && query.cursor) {
          // Not a cursor of this deployment (a saved one from elsewhere, a table rebuilt): say so, start over.
          this._emitError(error);
          this.tracker.reset();
          return this._getEvents({ wait, signal });
        }
        throw error;
      }
      return response.json();
    }
  }

  _request(url, token, signal, timeoutMs) {
    // One controller per request: the caller can abort it, and so can a timeout.
    const controller = new AbortController();
    const abort = () => controller.abort();
    signal?.addEventListener('abort', abort, { once: true });
    if (signal?.aborted) controller.abort();
    const timer = this._after(timeoutMs, abort);
    return this._fetch(url, {
      headers: { Authorization: `Bearer ${token}` },
      signal: controller.signal,
      cache: 'no-store',
    }).finally(() => {
      this._clock.clearTimeout(timer);
      this._timers.delete(timer);
      signal?.removeEventListener('abort', abort);
    });
  }

  /** Catch up over HTTP (one at a time; a request during one runs once more after it). */
  _requestSync() {
    this._clearTimer('_gapTimer');
    if (this._syncPromise) {
      this._syncAgain = true;
      return this._syncPromise;
    }
    this._syncPromise = (async () => {
      try {
        do {
          this._syncAgain = false;
          await this._syncOnce();
        } while (this._syncAgain && !this._closed);
      } finally {
        this._syncPromise = null;
      }
    })();
    return this._syncPromise;
  }

  async _syncOnce() {
    const started = this._clock.now();
    const retry = this._retryBackoffs();
    let events = 0;
    this.tracker.beginSync();
    for (let pass = 0; !this._closed; pass += 1) {
      try {
        events += await this._drain();
      } catch (error) {
        if (this._closed || error?.name === 'AbortError') return;
        this._emitError(error);
        await this._sleep(this._retryDelay(error, retry));
        continue;
      }
      // A frame still ahead of a gap after a full read means the server lost
      // those events (retention); hand it on rather than stall for ever.
      const { deliver, gapRemaining } = this.tracker.endSync({ force: pass >= 1 });
      this._dispatch(deliver, 'websocket');
      events += deliver.length;
      if (!gapRemaining) break;
      this.tracker.beginSync();
    }
    this.stats.syncs += 1;
    this.stats.lastSyncMs = this._clock.now() - started;
    this._gapClosed();
    this.stats.lastSyncEvents = events;
  }

  /** Read GET /events from the cursor until hasMore is false; returns how many events were handed on. */
  async _drain() {
    this._syncAbort = new AbortController();
    let count = 0;
    try {
      for (;;) {
        const read = await this._readPage({ signal: this._syncAbort.signal });
        if (!read) return count;
        count += read.handedOn;
        if (!read.page.hasMore) return count;
      }
    } finally {
      this._syncAbort = null;
    }
  }

  /** One page of GET /events, handed on unless `current()` says its reader was stopped meanwhile. */
  async _readPage({ wait = 0, signal, current = () => !this._closed }) {
    const page = await this._getEvents({ wait, signal });
    if (!current()) return null;
    const deliver = this.tracker.applyPage(page);
    this._dispatch(deliver, 'http');
    return { page, handedOn: deliver.length };
  }

  /** The backoffs of one reader: `failed` for errors, `throttled` (full jitter) for "not now" answers. */
  _retryBackoffs() {
    return {
      failed: new Backoff(this.options.backoff),
      throttled: new Backoff({ ...this.options.backoff, jitter: 'full' }),
    };
  }

  /**
   * How long a reader waits after a failed read. A throttled answer (429, 5xx)
   * waits what Retry-After asks, then a full-jitter share of the backoff, so
   * clients told the same moment do not all come back at it; anything else
   * (network, 4xx) takes the reader's usual backoff.
   */
  _retryDelay(error, { failed, throttled }) {
    if (!(error instanceof HttpError) || !error.throttled) return failed.next();
    this.stats.throttled += 1;
    return (error.retryAfterMs ?? 0) + throttled.next();
  }

  _sleep(ms) {
    return new Promise((resolve) => this._after(ms, resolve));
  }

  // -- fallback: HTTP long polling ------------------------------------------

  _armFallbackTimer() {
    if (this._fallbackTimer !== null || this.state === 'fallback' || this._closed) return;
    this._fallbackTimer = this._after(this.options.fallbackDelayMs, () => {
      this._fallbackTimer = null;
      if (!this._wsOpen) this._enterFallback('no websocket yet');
    });
  }

  _enterFallback(reason) {
    this._clearTimer('_fallbackTimer');
    if (this._closed || this._wsOpen) return;
    this._poll(reason); // no-op when already polling
  }

  async _poll(reason) {
    if (this._pollAbort) return;
    const gen = ++this._pollGen;
    const abort = new AbortController();
    this._pollAbort = abort;
    this.transport = 'http';
    const retry = this._retryBackoffs();
    try {
      await this._requestSync(); // the first read (or a catch-up) without waiting
      if (gen === this._pollGen && !this._closed && !this._wsOpen && this.state !== 'fallback') {
        // Announced once HTTP has read the cursor: from here on nothing is missed.
        this.stats.fallbacks += 1;
        this._setState('fallback', { reason });
      }
      while (gen === this._pollGen && !this._closed) {
        try {
          // Only one reader at a time: a catch-up started by the socket goes first.
          if (this._syncPromise) await this._syncPromise;
          const wait = this.tracker.syncing ? 0 : this.options.longPollWaitSeconds;
          const current = () => gen === this._pollGen && !this._closed;
          if (!(await this._readPage({ wait, signal: abort.signal, current }))) return;
          retry.failed.reset();
          retry.throttled.reset();
        } catch (error) {
          if (gen !== this._pollGen || this._closed || error?.name === 'AbortError') return;
          this._emitError(error);
          await this._sleep(this._retryDelay(error, retry));
        }
      }
    } finally {
      if (this._pollAbort === abort) this._pollAbort = null;
    }
  }

  _stopPolling() {
    this._pollGen += 1;
    this._pollAbort?.abort();
    this._pollAbort = null;
  }

  // -- delivery to the application ------------------------------------------

  _dispatch(events, transport) {
    for (const event of events) {
      const meta = { transport, receivedAt: this._clock.now() };
      for (const handler of [...(this._handlers.get(event.type) || []), ...(this._handlers.get('*') || [])]) {
        this._call(handler, event, meta);
      }
      const presence = this.presence.update(event);
      if (presence) for (const handler of [...this._presenceHandlers]) this._call(handler, presence, meta);
    }
  }

  _call(handler, ...args) {
    try {
      handler(...args);
    } catch (error) {
      this._emitError(error); // one broken handler must not stop delivery
    }
  }

  _setState(state, info = {}) {
    if (this.state === state && this._announced) return;
    this._announced = true;
    this.state = state;
    this._debug('state', state, info);
    for (const handler of [...this._stateHandlers]) this._call(handler, state, { ...info, at: this._clock.now() });
  }

  _emitError(error) {
    this._debug('error', error);
    for (const handler of [...this._errorHandlers]) {
      try {
        handler(error);
      } catch {
        // an error handler that throws is ignored
      }
    }
  }

  _debug(...args) {
    this._log?.debug?.('[realtime]', ...args);
  }
}
