// A fake clock, WebSocket API and GET /events that follow the wire contract,
// so the client's state machine can be tested in node without a network.
import { encodeCursor, decodeCursor } from '../src/index.js';

const flush = () => new Promise((resolve) => setImmediate(resolve));

export class FakeClock {
  constructor() {
    this.t = 1_000_000;
    this.timers = new Map();
    this.nextId = 1;
  }

  now() {
    return this.t;
  }

  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(id) {
    this.timers.delete(id);
  }

  /** Run every timer due within ms, in time order, letting promises settle in between. */
  async advance(ms) {
    const end = this.t + ms;
    await flush();
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      for (let i = 0; i < 5; i += 1) await flush();
    }
    this.t = end;
    for (let i = 0; i < 5; i += 1) await flush();
  }
}

export class FakeServer {
  constructor(clock, { topics = ['user:alice', 'group:ops', 'all'] } = {}) {
    this.clock = clock;
    this.topics = topics;
    this.store = new Map(topics.map((t) => [t, []])); // topic -> events
    this.sockets = new Set();
    this.blockWebSocket = false; // constructor throws (a policy / firewall the page sees at once)
    this.hangWebSocket = false; // handshake never completes (packets dropped)
    this.silentWebSocket = false; // opens, then nothing gets through (a proxy that swallows frames)
    this.dropFrames = 0; // the next n frames are lost on the way
    this.requests = [];
    // Answers GET /events gives instead of a page, one per request, in order:
    // {status, retryAfter?} (a throttle, an overloaded or throttled backend).
    this.refusals = [];
    this.tokensSeen = [];
    this.validTokens = null; // a Set to enforce, or null for any token
    this.waiters = new Set();
    this.published = 0;
    this.presence = new Map(); // userId -> GET /presence's state of a user the token may watch
    const server = this;

    this.WebSocket = class FakeWebSocket {
      constructor(url) {
        if (server.blockWebSocket) throw new Error('WebSocket blocked');
        this.url = url;
        this.sent = [];
        this.readyState = 0;
        this.token = new URL(url).searchParams.get('token');
        server.tokensSeen.push(this.token);
        if (server.hangWebSocket) return;
        queueMicrotask(() => {
          if (this.readyState !== 0) return;
          if (server.validTokens && !server.validTokens.has(this.token)) {
            this.readyState = 3;
            this.onclose?.({ code: 1006 });
            return;
          }
          this.readyState = 1;
          if (server.silentWebSocket) this.silent = true;
          else server.sockets.add(this);
          this.onopen?.({});
        });
      }

      send(text) {
        this.sent.push(JSON.parse(text));
        if (JSON.parse(text).action === 'ping' && !this.silent) {
          queueMicrotask(() => this.onmessage?.({ data: JSON.stringify({ type: 'pong' }) }));
        }
      }

      close(code = 1000) {
        if (this.readyState === 3) return;
        this.readyState = 3;
        server.sockets.delete(this);
        queueMicrotask(() => this.onclose?.({ code }));
      }

      /** The server or the network kills the socket. */
      kill(code = 1006) {
        this.close(code);
      }

      /** The server's last frame to a socket whose token expired, then (normally) its close. */
      expireToken({ close = true } = {}) {
        server.sockets.delete(this);
        const frame = JSON.stringify({ type: 'error', error: { code: 'token_expired', message: 'expired' } });
        queueMicrotask(() => {
          this.onmessage?.({ data: frame });
          if (close) this.close(1005);
        });
      }

      /** The socket stays "open" but nothing gets through any more. */
      goSilent() {
        this.silent = true;
        server.sockets.delete(this);
      }
    };

    this.fetch = async (url, init = {}) => {
      const u = new URL(url);
      const auth = init.headers?.Authorization ?? '';
      const token = auth.replace(/^Bearer /, '');
      this.requests.push({ path: u.pathname, params: Object.fromEntries(u.searchParams), token, at: this.clock.now() });
      if (u.pathname === '/events' && this.refusals.length > 0) {
        const { status, retryAfter } = this.refusals.shift();
        const headers = retryAfter === undefined ? {} : { 'Retry-After': retryAfter };
        return response(status, { error: { code: status === 429 ? 'throttled' : 'internal_error', message: 'not now' } }, headers);
      }
      if (this.validTokens && !this.validTokens.has(token)) {
        return response(401, { error: { code: 'unauthorized', message: 'token expired' } });
      }
      if (u.pathname === '/presence') {
        const users = (u.searchParams.get('users') ?? '').split(',').filter(Boolean);
        return response(200, { users: Object.fromEntries(users.filter((id) => this.presence.has(id)).map((id) => [id, this.presence.get(id)])) });
      }
      const cursorParam = u.searchParams.get('cursor');
      const since = u.searchParams.get('since');
      let positions = cursorParam ? decodeCursor(cursorParam) : new Map();
      const ahead = positions && this.topics.some((t) => (positions.get(t) ?? 0) > this.store.get(t).length);
      if (positions === null || ahead) return response(400, { error: { code: 'invalid_cursor', message: 'bad cursor' } });
      if (since === 'now') positions = new Map(this.topics.map((t) => [t, this.store.get(t).length]));
      const limit = Number(u.searchParams.get('limit') ?? 50);
      const wait = Number(u.searchParams.get('wait') ?? 0);
      let page = this.read(positions, limit);
      if (page.events.length === 0 && wait > 0) {
        await new Promise((resolve, reject) => {
          const waiter = { resolve };
          this.waiters.add(waiter);
          const timer = this.clock.setTimeout(() => {
            this.waiters.delete(waiter);
            resolve();
          }, wait * 1000);
          init.signal?.addEventListener('abort', () => {
            this.waiters.delete(waiter);
            this.clock.clearTimeout(timer);
            reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
          });
        });
        page = this.read(positions, limit);
      }
      if (init.signal?.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
      return response(200, page);
    };
  }

  read(positions, limit) {
    const all = [];
    const next = new Map(this.topics.map((t) => [t, positions.get(t) ?? 0]));
    for (const topic of this.topics) all.push(...this.store.get(topic).filter((e) => e.seq > next.get(topic)));
    all.sort((a, b) => (a.publishedAt < b.publishedAt ? -1 : a.publishedAt > b.publishedAt ? 1 : 0));
    const events = all.slice(0, limit);
    for (const e of events) next.set(e.topic, e.seq);
    return { events, cursor: encodeCursor(next), hasMore: all.length > limit };
  }

  /** Store, then deliver to live sockets: the pipeline's order. */
  publish(topic, type = 'test.event', data = {}, id = undefined) {
    const events = this.store.get(topic);
    const seq = events.length + 1;
    const event = {
      id: id ?? `${topic}#${seq}`,
      type,
      topic,
      seq,
      data,
      occurredAt: new Date(this.clock.now()).toISOString(),
      publishedAt: new Date(this.clock.now()).toISOString() + String(++this.published).padStart(6, '0'), // unique, ordered
    };
    events.push(event);
    for (const socket of [...this.sockets]) {
      if (this.dropFrames > 0) {
        this.dropFrames -= 1;
        continue;
      }
      socket.onmessage?.({ data: JSON.stringify(event) });
    }
    for (const waiter of [...this.waiters]) waiter.resolve();
    this.waiters.clear();
    return event;
  }

  get openSockets() {
    return [...this.sockets];
  }

  eventRequests() {
    return this.requests.filter((r) => r.path === '/events');
  }
}

function response(status, body, headers = {}) {
  const byName = new Map(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: { get: (name) => byName.get(name.toLowerCase()) ?? null },
    json: async () => body,
  };
}

/** What the client uses of an EventTarget, with the listeners in view (so a test can see them removed). */
class FakeEventTarget {
  constructor() {
    this.listeners = new Map(); // type -> Set
  }

  addEventListener(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
  }

  removeEventListener(type, listener) {
    this.listeners.get(type)?.delete(listener);
  }

  dispatch(type) {
    for (const listener of [...(this.listeners.get(type) || [])]) listener({ type });
  }

  listenerCount() {
    return [...this.listeners.values()].reduce((sum, set) => sum + set.size, 0);
  }
}

/** The page's document: visible until hidden. */
export class FakeDocument extends FakeEventTarget {
  constructor() {
    super();
    this.visibilityState = 'visible';
  }

  hide() {
    this.visibilityState = 'hidden';
    this.dispatch('visibilitychange');
  }

  show() {
    this.visibilityState = 'visible';
    this.dispatch('visibilitychange');
  }
}

/** The page's window: the browser says it is back online. */
export class FakeWindow extends FakeEventTarget {
  goOnline() {
    this.dispatch('online');
  }
}
