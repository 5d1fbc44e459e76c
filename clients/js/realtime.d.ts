// Type declarations for realtime.js (the browser client). No dependencies.

/**
 * A delivered event, handed on once per event (by `key`, else `id`). It may
 * reach the client through several of the token's topics: `seqs` holds every
 * (topic, seq) pair known for it; `topic` and `seq` are the pair it was handed
 * on through.
 */
export interface RealtimeEvent<T = Record<string, unknown>> {
  /** The producer's id; two producers may use the same one for different events. */
  id: string;
  /**
   * Opaque, unique per stored event (the same on each of its topics): what the
   * client dedupes on. Absent on events stored before the server had keys.
   */
  key?: string;
  type: string;
  topic: string;
  /** Strictly increasing per topic, from 1, without gaps on the server. */
  seq: number;
  /** topic -> seq, sorted by topic. On the wire a WebSocket frame carries it; GET /events items do not. */
  seqs: Record<string, number>;
  data: T;
  occurredAt: string;
  publishedAt: string;
}

export type ConnectionState = 'connecting' | 'open' | 'fallback' | 'closed';

/**
 * The code of the error frame the server sends just before it closes a socket
 * whose token has expired. The client then reopens at once, with a token from
 * `getToken`, and reads what it missed over HTTP; the state goes to
 * `connecting` with reason `token_expired`, and it counts as no drop.
 */
export declare const TOKEN_EXPIRED: 'token_expired';
export type Transport = 'websocket' | 'http';

export interface DeliveryMeta {
  /** Which transport carried this event to the client. */
  transport: Transport;
  /** Client clock (ms since the epoch) when it was handed to the application. */
  receivedAt: number;
}

export interface PresenceUpdate {
  userId: string;
  online: boolean;
  /** Per-user version; an update older than one already seen is never handed on. */
  version?: number;
  data: Record<string, unknown>;
  event: RealtimeEvent;
}

/** One user of a roster who is online now. */
export interface PresenceMember {
  userId: string;
  sessions?: number;
  lastSeen?: string | null;
  version?: number;
}

/** GET /presence's answer: the users the token may watch, the others left out. */
export interface PresenceAnswer {
  users: Record<string, { online: boolean; sessions: number; lastSeen: string | null; version: number }>;
}

/** A roster the client feeds: GET /presence merged with its presence updates. */
export interface LiveRoster extends PresenceRoster {
  /** Settles once the first GET /presence answer is merged. */
  readonly ready: Promise<LiveRoster>;
  /** Read GET /presence again and merge it. */
  refresh(): Promise<LiveRoster>;
  /** Stop following the client's presence updates. */
  close(): void;
}

export interface StateInfo {
  reason?: string;
  at: number;
}

export interface BackoffOptions {
  /** First retry ceiling in ms (default 500). */
  initialMs?: number;
  /** Largest retry ceiling in ms (default 30000). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /**
   * 'equal' (default): half the ceiling fixed, half random. 'full': anywhere
   * from 0 to the ceiling (the client uses it for throttled polls whatever is set here).
   */
  jitter?: 'equal' | 'full';
  /** Random source in [0, 1) (default Math.random). */
  random?: () => number;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** What the client uses of the page's `document`: its visibility, and the event that reports a change. */
export interface DocumentLike {
  readonly visibilityState: string;
  addEventListener(type: 'visibilitychange', listener: () => void): void;
  removeEventListener(type: 'visibilitychange', listener: () => void): void;
}

/** What the client uses of the page's `window`: the `online` event. */
export interface WindowLike {
  addEventListener(type: 'online', listener: () => void): void;
  removeEventListener(type: 'online', listener: () => void): void;
}

export interface ConnectOptions {
  /** The WebSocket API URL (wss://.../stage); the token is added as ?token=. */
  wsUrl: string;
  /** The HTTP API base URL; the client calls GET {httpUrl}/events. */
  httpUrl: string;
  /** Returns a fresh JWT; called on every (re)connect and after an HTTP 401. */
  getToken: () => string | Promise<string>;
  /** 'now' (default): only events after starting (history is never read); 'retention': what the server still holds first, in order. */
  since?: 'now' | 'retention';
  /** Resume after this cursor (from an earlier client's `cursor`, e.g. saved across a page reload). */
  cursor?: string | null;
  /**
   * ms between pings while the page is visible (default 60000). Each ping and
   * its pong are billed API Gateway messages; a socket that goes silent is
   * found within pingIntervalMs + pongTimeoutMs (70 s by default).
   */
  pingIntervalMs?: number;
  /**
   * ms between pings while the page is hidden (default 480000). Browsers
   * throttle a hidden page's timers to about once a minute, and API Gateway
   * closes a socket idle for 10 minutes: at least pingIntervalMs, under 600000
   * (else connect() throws a TypeError). When the page is shown again, or the
   * browser is back online, the client pings at once.
   */
  hiddenPingIntervalMs?: number;
  /** ms without any frame after a ping before the socket is declared dead (default 10000). */
  pongTimeoutMs?: number;
  /** ms a WebSocket may take to open and answer its first ping; one that does not counts as a failed open (default 10000). */
  openTimeoutMs?: number;
  /** Consecutive failed opens before HTTP long polling takes over (default 2). */
  fallbackAfterFailures?: number;
  /** ms without a usable socket before HTTP long polling takes over (default 5000). */
  fallbackDelayMs?: number;
  /** Drops within dropWindowMs that count as "keeps dropping" (defaults 3 in 60000 ms). */
  maxDropsInWindow?: number;
  dropWindowMs?: number;
  /** ms a socket must stay up before the backoff resets (default 30000). */
  stableAfterMs?: number;
  /** ms a seq jump waits for the late frame before reading the gap over HTTP (default 250). */
  gapGraceMs?: number;
  /** Long-poll wait in seconds (default 20, the server's maximum). */
  longPollWaitSeconds?: number;
  /** Events per GET /events page (default 200). */
  pageLimit?: number;
  backoff?: BackoffOptions;
  /**
   * Hand an event that reaches several of the token's topics on once, by its
   * `key` (else its `id`) (default true; false: once per topic).
   */
  dedupeEvents?: boolean;
  /** @deprecated The former name of `dedupeEvents`; still accepted. */
  dedupeById?: boolean;
  /** Override the WebSocket constructor (default globalThis.WebSocket, read at connect time). */
  WebSocket?: typeof WebSocket;
  /** Override fetch (default globalThis.fetch). */
  fetch?: typeof fetch;
  /** Whose visibility chooses the ping interval (default globalThis.document; without one the page counts as visible). */
  document?: DocumentLike;
  /** Whose `online` event makes the client ping, or reconnect, at once (default globalThis). */
  window?: WindowLike;
  clock?: Clock;
  logger?: { debug?: (...args: unknown[]) => void };
}

export interface ClientStats {
  opens: number;
  drops: number;
  failedOpens: number;
  /** Pings sent, each socket's first included: each is a billed message, and so is its pong. */
  pings: number;
  /** Sockets the server closed because their token expired (each reopened at once). */
  tokenExpiries: number;
  fallbacks: number;
  syncs: number;
  /** Duration of the last catch-up over HTTP, in ms. */
  lastSyncMs: number | null;
  lastSyncEvents: number;
  /** From a seq jump to the held frames being handed on (late frame or HTTP read), in ms. */
  lastGapRepairMs: number | null;
  /**
   * GET /events answers that said "not now" (429, or 5xx such as a throttled
   * Lambda): each waited its Retry-After, then a full-jitter backoff.
   */
  throttled: number;
  tracker: TrackerStats;
}

export interface TrackerStats {
  delivered: number;
  duplicates: number;
  /** Seq jumps seen on the socket (each read over HTTP). */
  gapsDetected: number;
  /** Events that neither the socket nor GET /events could bring (events past retention are not counted). */
  gapsLost: number;
}

export declare class RealtimeClient {
  constructor(options: ConnectOptions);
  readonly state: ConnectionState;
  readonly transport: Transport | null;
  readonly stats: ClientStats;
  readonly tracker: EventTracker;
  /** Where this client is; pass it as the `cursor` option of a later client to resume without loss. */
  readonly cursor: string | null;
  start(): this;
  /** Handle events of one type, or '*' for all. Returns an unsubscribe function. */
  on<T = Record<string, unknown>>(type: string, handler: (event: RealtimeEvent<T>, meta: DeliveryMeta) => void): () => void;
  off(type: string, handler: (...args: any[]) => void): void;
  onPresence(handler: (update: PresenceUpdate, meta: DeliveryMeta) => void): () => void;
  onState(handler: (state: ConnectionState, info: StateInfo) => void): () => void;
  onError(handler: (error: Error) => void): () => void;
  /** The presence of some users now (GET /presence); throws HttpError. */
  getPresence(users: Iterable<string>): Promise<PresenceAnswer>;
  /** Who of `users` is online, kept current: added/removed as they come and go. */
  presenceRoster(users: Iterable<string>): LiveRoster;
  /** Retry the WebSocket now instead of after the backoff. */
  reconnectNow(): void;
  close(): void;
}

/** Create a client and start connecting (in a microtask, so handlers added right away see every state). */
export declare function connect(options: ConnectOptions): RealtimeClient;

export declare const STATES: readonly ConnectionState[];

export declare class Backoff {
  constructor(options?: BackoffOptions);
  attempt: number;
  ceiling(attempt?: number): number;
  next(): number;
  reset(): void;
}

export declare function decodeCursor(cursor: string | null | undefined): Map<string, number> | null;
export declare function encodeCursor(positions: Map<string, number> | Record<string, number>): string;

export interface EventsPage {
  events: RealtimeEvent[];
  cursor: string;
  hasMore: boolean;
}

export declare class EventTracker {
  /**
   * since: where the first read starts, as the client's option (default 'now').
   * dedupeEvents: hand on each event once, by `key` (else `id`) (default true); dedupeById is its former name.
   * idMemory: how many recently handed-on events are remembered to drop later copies (default 10000).
   */
  constructor(options?: {
    dedupeEvents?: boolean;
    /** @deprecated Use dedupeEvents. */
    dedupeById?: boolean;
    idMemory?: number;
    since?: 'now' | 'retention';
  });
  positions: Map<string, number>;
  serverCursor: string | null;
  since: 'now' | 'retention';
  /** A first page was read or a cursor restored. */
  started: boolean;
  syncing: boolean;
  stats: TrackerStats;
  /** A WebSocket frame: each (topic, seq) pair of its `seqs` (else its topic and seq) moves its topic. */
  offerLive(frame: unknown): { deliver: RealtimeEvent[]; needSync: boolean };
  restore(cursor: string): void;
  /** The server refused the cursor (400 invalid_cursor): start again as `since` says. */
  reset(): void;
  /** The query of the next GET /events: { since: 'now' }, { cursor } or {} (from the start of retention). */
  fetchQuery(): { since?: 'now'; cursor?: string };
  fetchCursor(): string | null;
  beginSync(): void;
  applyPage(page: EventsPage): RealtimeEvent[];
  endSync(options?: { force?: boolean }): { deliver: RealtimeEvent[]; gapRemaining: boolean };
}

export declare class PresenceTracker {
  update(event: RealtimeEvent): PresenceUpdate | null;
}

/** Who of some users is online: per user the higher version wins, snapshot or update. */
export declare class PresenceRoster {
  constructor(users: Iterable<string>);
  readonly users: Set<string>;
  readonly members: Map<string, PresenceMember>;
  onAdded(handler: (member: PresenceMember) => void): () => void;
  onRemoved(handler: (member: PresenceMember) => void): () => void;
  applySnapshot(answer: PresenceAnswer): void;
  applyUpdate(update: PresenceUpdate): void;
}

export declare class HttpError extends Error {
  status: number;
  code?: string;
  /** What the answer's Retry-After asked for, in ms (at most 300000); null without one. */
  retryAfterMs: number | null;
  /** 429 or 5xx: the client backs off with full jitter before the next read. */
  readonly throttled: boolean;
}

/** A Retry-After header (seconds or HTTP date) in ms from nowMs, capped at 300000; null when absent or unreadable. */
export declare function retryAfterMs(value: string | null | undefined, nowMs: number): number | null;
