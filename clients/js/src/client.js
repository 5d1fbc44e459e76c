// The client: transports, timers, handlers. The WebSocket is preferred; HTTP
// long polling of GET /events takes over when it cannot open or keeps dropping,
// and every (re)connection and seq jump is repaired over HTTP before newer
// events are handed on. What to hand on, and in which order, is the tracker's.
// Python: realtime_client/client.py RealtimeClient.
import { Backoff } from './backoff.js';
import { HttpError, eventsUrl, presenceUrl, retryAfterMs } from './http.js';
import { PresenceRoster, PresenceTracker } from './presence.js';
import { EventTracker } from './tracker.js';
import { detach, safeClose, socketUrl } from './websocket.js';

export const STATES = Object.freeze(['connecting', 'open', 'fallback', 'closed']);

// The error frame the server sends just before it closes a socket whose token has expired (contract/wire.json).
export const TOKEN_EXPIRED = 'token_expired';

// API Gateway closes a WebSocket that carried no message for 10 minutes.
const IDLE_CLOSE_MS = 600000;

const DEFAULTS = {
  since: 'now', // 'now': only events after connect; 'retention': replay what the server still holds first
  cursor: null, // resume after a cursor saved from client.cursor (e.g. across a page reload)
  // Each ping and its pong are billed messages. While the page is visible, a silent socket is found
  // within pingIntervalMs + pongTimeoutMs (70 s). A hidden page's timers are throttled to about once
  // a minute anyway, and API Gateway closes a socket idle for 10 min: 8 min leaves room for both.
  pingIntervalMs: 60000,
  hiddenPingIntervalMs: 480000,
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
    const { pingIntervalMs, hiddenPingIntervalMs } = this.options;
    if (!(hiddenPingIntervalMs >= pingIntervalMs && hiddenPingIntervalMs < IDLE_CLOSE_MS)) {
      throw new TypeError(`hiddenPingIntervalMs must be at least pingIntervalMs and under ${IDLE_CLOSE_MS}`);
    }
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
    // The page's visibility (document) and the browser's `online` event (window); without them
    // (node) the page counts as always visible.
    this._document = options.document || globalThis.document || null;
    this._window = options.window || globalThis;
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
      pings: 0, // pings sent (the first of each socket included): each is a billed message, and so is its pong
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
    this._lastPingAt = null;
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
    // Back online or back in view: a socket that died meanwhile is found now, not at the next ping.
    this._onOnline = () => (this._wsOpen ? this._pingNow() : this.reconnectNow());
    this._onVisibilityChange = () => (this._pageHidden() ? this._schedulePing() : this._pingNow());
  }

  // -- public API -----------------------------------------------------------

  /** Where this client is: pass it as `cursor` to a later client to resume without loss. */
  get cursor() {
    return this.tracker.fetchCursor();
  }

  start() {
    if (this._started) return this;
    this._started = true;
    this._window.addEventListener?.('online', this._onOnline);
    this._document?.addEventListener?.('visibilitychange', this._onVisibilityChange);
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

  /**
   * The presence of `users` now (GET /presence): `{ users: { <id>: { online, sessions, lastSeen, version } } }`,
   * only users the token may watch (its own user, presence:<id> topics, shared groups). Throws HttpError.
   */
  async getPresence(users) {
    const url = presenceUrl(this.httpUrl, users);
    let token = this._token || (await this._freshToken());
    for (let attempt = 0; ; attempt += 1) {
      const response = await this._request(url, token, null, 15000);
      if (response.status === 401 && attempt === 0) {
        token = await this._freshToken();
        continue;
      }
      if (!response.ok) throw await this._httpError(response);
      return response.json();
    }
  }

  /**
   * A live members view of `users`: who of them is online, from GET /presence merged with the
   * presence events this client hands on (the token must carry them: presence:<id> topics, or
   * group presence). `roster.ready` settles once the first answer is merged; `roster.refresh()`
   * reads it again; `roster.close()` stops following.
   */
  presenceRoster(users) {
    const roster = new PresenceRoster(users);
    const stop = this.onPresence((update) => roster.applyUpdate(update));
    roster.refresh = async () => {
      roster.applySnapshot(await this.getPresence([...roster.users]));
      return roster;
    };
    roster.close = () => stop();
    roster.ready = roster.refresh();
    roster.ready.catch(() => {}); // the caller awaits it; an unobserved failure must not crash the page
    return roster;
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
    this._window.removeEventListener?.('online', this._onOnline);
    this._document?.removeEventListener?.('visibilitychange', this._onVisibilityChange);
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
      this._sendPing(ws); // if it is closing already, onclose follows
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
    this._schedulePing();
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

  _pageHidden() {
    return this._document?.visibilityState === 'hidden';
  }

  _sendPing(ws) {
    this.stats.pings += 1;
    this._lastPingAt = this._clock.now();
    try {
      ws.send(JSON.stringify({ action: 'ping' }));
    } catch {
      // send on a closing socket: the close handler deals with it
    }
  }

  /** The next ping of the open socket: one interval, by the page's visibility, after the last ping sent. */
  _schedulePing() {
    this._clearTimer('_pingTimer');
    if (!this._wsOpen || this._closed) return;
    const interval = this._pageHidden() ? this.options.hiddenPingIntervalMs : this.options.pingIntervalMs;
    const delay = Math.max(0, (this._lastPingAt ?? this._clock.now()) + interval - this._clock.now());
    this._pingTimer = this._after(delay, () => {
      this._pingTimer = null;
      this._pingNow();
    });
  }

  /** Ping the open socket now; no frame within pongTimeoutMs declares it dead. */
  _pingNow() {
    if (!this._wsOpen || this._closed) return;
    const ws = this._ws;
    const gen = this._wsGen;
    // A ping still unanswered has its timeout running already: another would only cost a message.
    if (this._pongTimer === null) {
      this._sendPing(ws);
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
    this._schedulePing();
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
        const error = await this._httpError(response);
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

  /** An answer other than 2xx as the HttpError it means, with its Retry-After. */
  async _httpError(response) {
    const body = await response.json().catch(() => null);
    return new HttpError(response.status, body?.error, {
      retryAfterMs: retryAfterMs(response.headers?.get?.('Retry-After') ?? null, this._clock.now()),
    });
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
