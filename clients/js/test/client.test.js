// The client's state machine against fake transports on a fake clock: WebSocket
// delivery, fallback to long polling and back, reconnect catch-up, gap repair,
// silent sockets, tokens.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { PresenceRoster, RealtimeClient } from '../src/index.js';
import { FakeClock, FakeDocument, FakeServer, FakeWindow } from './fakes.js';

function setup(options = {}, serverSetup = () => {}) {
  const clock = new FakeClock();
  const server = new FakeServer(clock);
  serverSetup(server);
  let issued = 0;
  const client = new RealtimeClient({
    wsUrl: 'wss://ws.example.test/prod',
    httpUrl: 'https://api.example.test/',
    getToken: async () => `token-${++issued}`,
    WebSocket: server.WebSocket,
    fetch: server.fetch,
    clock,
    backoff: { random: () => 0.5 },
    ...options,
  });
  const got = [];
  const states = [];
  const errors = [];
  client.on('*', (event, meta) => got.push({ key: `${event.topic}#${event.seq}`, via: meta.transport }));
  client.onState((state) => states.push(state));
  client.onError((error) => errors.push(error));
  client.start();
  return { clock, server, client, got, states, errors, keys: () => got.map((g) => g.key) };
}

function assertExactlyOnceInOrder(keys) {
  assert.equal(new Set(keys).size, keys.length, `duplicates in ${keys}`);
  const last = new Map();
  for (const key of keys) {
    const [topic, seq] = [key.slice(0, key.lastIndexOf('#')), Number(key.slice(key.lastIndexOf('#') + 1))];
    assert.equal(seq, (last.get(topic) ?? 0) + 1, `gap or disorder on ${topic}: ${keys}`);
    last.set(topic, seq);
  }
}

describe('RealtimeClient over the WebSocket', () => {
  it("opens, asks where the topics are, and hands on live events only (since 'now')", async () => {
    const { clock, server, client, got, states } = setup({}, (s) => {
      s.publish('user:alice'); // history: never read
      s.publish('user:alice');
    });
    await clock.advance(10);
    assert.equal(client.state, 'open');
    assert.deepEqual(states, ['connecting', 'open']);
    assert.equal(server.openSockets.length, 1);
    assert.match(server.openSockets[0].url, /^wss:\/\/ws\.example\.test\/prod\?token=token-1$/);
    server.publish('user:alice');
    server.publish('group:ops');
    assert.deepEqual(got, [
      { key: 'user:alice#3', via: 'websocket' },
      { key: 'group:ops#1', via: 'websocket' },
    ]);
    assert.deepEqual(server.eventRequests()[0].params, { since: 'now', limit: '200' });
    assert.equal(server.eventRequests().length, 1, 'no history read');
    client.close();
  });

  it("replays what the server holds first with since 'retention', page by page, in order, once", async () => {
    const { clock, server, client, got, keys } = setup({ since: 'retention', pageLimit: 2 }, (s) => {
      s.publish('user:alice');
      s.publish('all');
      s.publish('user:alice');
      s.publish('group:ops');
      s.publish('user:alice');
    });
    await clock.advance(10);
    server.publish('user:alice');
    assert.deepEqual(keys(), ['user:alice#1', 'all#1', 'user:alice#2', 'group:ops#1', 'user:alice#3', 'user:alice#4']);
    assert.deepEqual([...new Set(got.slice(0, 5).map((g) => g.via))], ['http']);
    assert.equal(server.eventRequests()[0].params.cursor, undefined);
    client.close();
  });

  it('pings on open (the socket counts as open once it answers), then pings an idle socket', async () => {
    const { clock, server, client } = setup({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
    await clock.advance(3500);
    const socket = server.openSockets[0];
    assert.equal(socket.sent.filter((m) => m.action === 'ping').length, 4);
    assert.equal(client.stats.pings, 4);
    assert.equal(client.stats.drops, 0);
    client.close();
  });
});

describe('RealtimeClient: keepalives by page visibility (issue "100k idle sockets that cost little")', () => {
  const SECOND = 1000;
  const MINUTE = 60 * SECOND;
  const pings = (server) => server.openSockets[0].sent.filter((m) => m.action === 'ping').length;

  function page(options = {}) {
    const document = new FakeDocument();
    const window = new FakeWindow();
    return { document, window, ...setup({ document, window, ...options }) };
  }

  it('pings every 60 s without a document (node: always visible)', async () => {
    const { clock, server, client } = setup();
    await clock.advance(10); // open: its first ping answered
    assert.equal(pings(server), 1);
    await clock.advance(MINUTE - 20);
    assert.equal(pings(server), 1, 'not at 30 s any more');
    await clock.advance(20);
    assert.equal(pings(server), 2);
    await clock.advance(MINUTE);
    assert.equal(pings(server), 3);
    assert.equal(client.stats.pings, 3);
    client.close();
  });

  it('pings every 8 min while the page is hidden, counted from the last ping sent', async () => {
    const { clock, server, client, document } = page();
    await clock.advance(10);
    await clock.advance(30 * SECOND);
    document.hide();
    await clock.advance(8 * MINUTE - 30 * SECOND - 20);
    assert.equal(pings(server), 1, 'no ping at the visible interval');
    await clock.advance(20);
    assert.equal(pings(server), 2, '8 min after the first ping');
    await clock.advance(8 * MINUTE - 20);
    assert.equal(pings(server), 2);
    await clock.advance(20);
    assert.equal(pings(server), 3);
    assert.deepEqual([client.state, client.stats.drops], ['open', 0]);
    client.close();
  });

  it('starts hidden on a hidden page, and pings at the visible interval again once shown', async () => {
    const document = new FakeDocument();
    document.visibilityState = 'hidden';
    const { clock, server, client } = setup({ document });
    await clock.advance(10);
    await clock.advance(7 * MINUTE);
    assert.equal(pings(server), 1);
    document.show();
    assert.equal(pings(server), 2, 'at once');
    await clock.advance(MINUTE - 1);
    assert.equal(pings(server), 2);
    await clock.advance(1);
    assert.equal(pings(server), 3, 'then every minute');
    client.close();
  });

  it('pings at once when the page becomes visible again: a socket that died meanwhile is dropped pongTimeoutMs later', async () => {
    const { clock, server, client, document } = page();
    await clock.advance(10);
    document.hide();
    await clock.advance(3 * MINUTE);
    const socket = server.openSockets[0];
    socket.goSilent(); // the laptop slept: the NAT forgot the socket
    server.publish('user:alice'); // never arrives on it
    document.show();
    assert.equal(socket.sent.filter((m) => m.action === 'ping').length, 2, 'pinged at once');
    await clock.advance(10 * SECOND - 10);
    assert.equal(client.stats.drops, 0);
    await clock.advance(20);
    assert.equal(client.stats.drops, 1, 'dropped pongTimeoutMs after the ping');
    await clock.advance(2 * SECOND); // backoff, a new socket, the catch-up
    assert.equal(client.state, 'open');
    assert.equal(client.stats.tracker.delivered, 1);
    client.close();
  });

  it('pings at once when the browser is back online (once while a ping is unanswered), and drops a dead socket', async () => {
    const { clock, server, client, window, document } = page();
    await clock.advance(10);
    await clock.advance(20 * SECOND);
    window.goOnline();
    assert.equal(pings(server), 2, 'pinged at once');
    await clock.advance(MINUTE - 10);
    assert.equal(pings(server), 2, 'the next one a minute after it');
    await clock.advance(10);
    assert.equal(pings(server), 3);
    const socket = server.openSockets[0];
    socket.goSilent();
    window.goOnline();
    document.hide();
    document.show(); // the first ping's answer is still awaited: no second one
    assert.equal(socket.sent.filter((m) => m.action === 'ping').length, 4);
    await clock.advance(10 * SECOND + 10);
    assert.equal(client.stats.drops, 1);
    client.close();
  });

  it('reconnects at once when the browser is back online and the socket is down', async () => {
    const { clock, server, client, window } = page({ backoff: { initialMs: MINUTE, maxMs: MINUTE, random: () => 0.5 } });
    await clock.advance(10);
    server.openSockets[0].kill();
    await clock.advance(10);
    assert.equal(client.state, 'connecting');
    window.goOnline();
    await clock.advance(10);
    assert.equal(client.state, 'open', 'without waiting for the backoff');
    client.close();
  });

  it('adds its listeners once, and removes them on close', async () => {
    const { clock, server, client, document, window } = page();
    client.start(); // a second start adds nothing
    await clock.advance(10);
    assert.deepEqual([document.listenerCount(), window.listenerCount()], [1, 1]);
    client.close();
    assert.deepEqual([document.listenerCount(), window.listenerCount()], [0, 0]);
    const sent = server.requests.length;
    document.show();
    window.goOnline();
    await clock.advance(MINUTE);
    assert.equal(server.requests.length, sent);
    assert.equal(client.stats.pings, 1);
  });

  it('refuses a hiddenPingIntervalMs under pingIntervalMs, or of 10 min or more', () => {
    const options = { wsUrl: 'wss://ws.test', httpUrl: 'https://api.test', getToken: () => 't' };
    const refused = /^TypeError: hiddenPingIntervalMs must be at least pingIntervalMs and under 600000$/;
    for (const wrong of [
      { hiddenPingIntervalMs: 30000 }, // under the default pingIntervalMs
      { pingIntervalMs: 10000, hiddenPingIntervalMs: 5000 },
      { hiddenPingIntervalMs: 600000 },
      { hiddenPingIntervalMs: '480000x' },
      { pingIntervalMs: 540000 }, // past the default hiddenPingIntervalMs: set both
    ]) {
      assert.throws(() => new RealtimeClient({ ...options, ...wrong }), (error) => refused.test(String(error)), JSON.stringify(wrong));
    }
    for (const right of [{}, { pingIntervalMs: 1000, hiddenPingIntervalMs: 1000 }, { hiddenPingIntervalMs: 599999 }]) {
      assert.doesNotThrow(() => new RealtimeClient({ ...options, ...right }), JSON.stringify(right));
    }
    const { pingIntervalMs, hiddenPingIntervalMs } = new RealtimeClient(options).options;
    assert.deepEqual([pingIntervalMs, hiddenPingIntervalMs], [60000, 480000]);
  });
});

describe('RealtimeClient: reconnect and catch-up', () => {
  it('after a drop, reads what it missed before newer events: no gap, no duplicate', async () => {
    const { clock, server, client, got, keys, states } = setup();
    await clock.advance(10);
    server.publish('user:alice');
    server.openSockets[0].kill();
    await clock.advance(1);
    assert.equal(client.state, 'connecting');
    server.publish('user:alice'); // published while down
    server.publish('group:ops');
    await clock.advance(2000); // backoff, reopen, catch-up
    assert.equal(client.state, 'open');
    server.publish('user:alice');
    assertExactlyOnceInOrder(keys());
    assert.deepEqual(keys(), ['user:alice#1', 'user:alice#2', 'group:ops#1', 'user:alice#3']);
    assert.deepEqual(
      got.map((g) => g.via),
      ['websocket', 'http', 'http', 'websocket'],
    );
    assert.deepEqual(states, ['connecting', 'open', 'connecting', 'open']);
    // A fresh token for the new socket.
    assert.deepEqual(server.tokensSeen, ['token-1', 'token-2']);
    assert.equal(client.stats.syncs, 2);
    client.close();
  });

  it('resumes after a saved cursor (a page reload) without losing or repeating events', async () => {
    const first = setup();
    await first.clock.advance(10);
    first.server.publish('user:alice');
    first.server.publish('group:ops');
    const saved = first.client.cursor;
    first.client.close();
    first.server.publish('user:alice'); // while the page reloads
    const second = new RealtimeClient({
      ...first.client.options,
      cursor: saved,
    });
    const got = [];
    second.on('*', (e, meta) => got.push(`${e.topic}#${e.seq}/${meta.transport}`));
    second.start();
    await first.clock.advance(10);
    first.server.publish('all');
    assert.deepEqual(got, ['user:alice#2/http', 'all#1/websocket']);
    second.close();
  });

  it('repairs a missed frame from GET /events before handing on the next', async () => {
    const { clock, server, client, keys } = setup();
    await clock.advance(10);
    server.publish('user:alice');
    server.dropFrames = 1;
    server.publish('user:alice'); // lost on the way
    server.publish('user:alice'); // seq jumps 1 -> 3
    await clock.advance(200);
    assert.deepEqual(keys(), ['user:alice#1'], 'held while the late frame may still come');
    await clock.advance(100);
    server.publish('user:alice');
    assert.deepEqual(keys(), ['user:alice#1', 'user:alice#2', 'user:alice#3', 'user:alice#4']);
    assert.equal(client.tracker.stats.gapsDetected, 1);
    assert.ok(client.stats.lastGapRepairMs >= 250 && client.stats.lastGapRepairMs < 300, `${client.stats.lastGapRepairMs}`);
    client.close();
  });

  it('puts frames that overtook each other back in order without asking HTTP', async () => {
    const { clock, server, client, keys } = setup();
    await clock.advance(10);
    const requests = server.eventRequests().length;
    const socket = server.openSockets[0];
    server.sockets.delete(socket); // deliver by hand, out of order
    const [one, two, three] = [server.publish('user:alice'), server.publish('user:alice'), server.publish('user:alice')];
    for (const frame of [two, three, one]) socket.onmessage({ data: JSON.stringify(frame) });
    assert.deepEqual(keys(), ['user:alice#1', 'user:alice#2', 'user:alice#3']);
    await clock.advance(1000);
    assert.equal(server.eventRequests().length, requests, 'no GET /events');
    client.close();
  });

  it('declares a silent socket dead after a missing pong, and catches up on a new one', async () => {
    const { clock, server, client, keys } = setup({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
    await clock.advance(10);
    server.publish('user:alice');
    const silent = server.openSockets[0];
    silent.goSilent(); // no close, no frames: a NAT or proxy forgot us
    server.publish('user:alice'); // never arrives on the silent socket
    await clock.advance(1600); // ping at 1000, no pong by 1500
    assert.equal(client.stats.drops, 1);
    await clock.advance(1000);
    assert.equal(client.state, 'open');
    assert.equal(silent.readyState, 3);
    assert.deepEqual(keys(), ['user:alice#1', 'user:alice#2']);
    client.close();
  });

  it('starts over, and says so, when the server refuses its cursor', async () => {
    const first = setup();
    await first.clock.advance(10);
    first.server.publish('user:alice');
    const saved = first.client.cursor;
    first.client.close();
    const other = new FakeServer(first.clock); // another deployment: its topics are behind the saved cursor
    const errors = [];
    const got = [];
    const resumed = new RealtimeClient({
      ...first.client.options,
      WebSocket: other.WebSocket,
      fetch: other.fetch,
      cursor: saved,
    });
    resumed.onError((error) => errors.push(error.code));
    resumed.on('*', (e) => got.push(`${e.topic}#${e.seq}`));
    resumed.start();
    await first.clock.advance(10);
    other.publish('user:alice');
    assert.equal(resumed.state, 'open');
    assert.deepEqual(errors, ['invalid_cursor']);
    assert.deepEqual(
      other.eventRequests().map((r) => r.params.since ?? 'cursor'),
      ['cursor', 'now'],
    );
    assert.deepEqual(got, ['user:alice#1']);
    resumed.close();
  });

  it('gets a fresh token when GET /events answers 401', async () => {
    const { clock, server, client } = setup({}, (s) => {
      s.validTokens = new Set(['token-1']);
    });
    await clock.advance(10);
    assert.equal(client.state, 'open');
    server.validTokens = new Set(['token-2']);
    server.dropFrames = 1;
    server.publish('user:alice');
    server.publish('user:alice'); // gap -> GET /events -> 401 -> new token -> 200
    await clock.advance(300);
    const tokens = server.eventRequests().map((r) => r.token);
    assert.deepEqual(tokens.slice(-2), ['token-1', 'token-2']);
    assert.equal(client.stats.tracker.delivered, 2);
    client.close();
  });
});

describe('RealtimeClient: tokens', () => {
  it('reports a getToken that fails and retries it with backoff', async () => {
    let calls = 0;
    const getToken = async () => {
      calls += 1;
      if (calls === 1) throw new Error('token service down');
      return 'token-2';
    };
    const { clock, client, errors } = setup({ getToken });
    await clock.advance(2000);
    assert.equal(client.state, 'open');
    assert.deepEqual(
      errors.map((error) => error.message),
      ['token service down'],
    );
    client.close();
  });
});

describe('RealtimeClient: HTTP fallback', () => {
  it('long-polls when the WebSocket cannot be built, with the same events', async () => {
    const { clock, server, client, got, states } = setup({}, (s) => {
      s.blockWebSocket = true;
    });
    await clock.advance(1000);
    assert.equal(client.state, 'fallback');
    assert.deepEqual(states, ['connecting', 'fallback']);
    server.publish('user:alice');
    server.publish('group:ops');
    await clock.advance(10);
    assert.deepEqual(got, [
      { key: 'user:alice#1', via: 'http' },
      { key: 'group:ops#1', via: 'http' },
    ]);
    const polls = server.eventRequests().filter((r) => r.params.wait === '20');
    assert.ok(polls.length >= 2, 'long polls with wait=20');
    client.close();
  });

  it('falls back after fallbackDelayMs when the handshake just hangs', async () => {
    const { clock, client } = setup({}, (s) => {
      s.hangWebSocket = true;
    });
    await clock.advance(4900);
    assert.equal(client.state, 'connecting');
    await clock.advance(200);
    assert.equal(client.state, 'fallback');
    client.close();
  });

  it('moves back to the WebSocket when it works again, without loss or duplicates', async () => {
    const { clock, server, client, got, keys, states } = setup({}, (s) => {
      s.blockWebSocket = true;
    });
    await clock.advance(1000);
    server.publish('user:alice');
    await clock.advance(10);
    server.blockWebSocket = false;
    server.publish('user:alice');
    await clock.advance(60000); // the background retry (backoff) finds the socket usable
    assert.equal(client.state, 'open');
    assert.equal(client.transport, 'websocket');
    const pollsBefore = server.eventRequests().length;
    server.publish('user:alice');
    await clock.advance(30000);
    assert.equal(server.eventRequests().length, pollsBefore, 'no more polling once the socket is back');
    assertExactlyOnceInOrder(keys());
    assert.deepEqual(keys(), ['user:alice#1', 'user:alice#2', 'user:alice#3']);
    assert.equal(got.at(-1).via, 'websocket');
    assert.deepEqual(states, ['connecting', 'fallback', 'open']);
    client.close();
  });

  it('counts a socket that opens but never answers as a failed open: two in a row fall back', async () => {
    const { clock, server, client, got, states } = setup({ openTimeoutMs: 1000, fallbackDelayMs: 60000 }, (s) => {
      s.silentWebSocket = true;
    });
    await clock.advance(1010);
    assert.equal(client.state, 'connecting');
    assert.equal(client.stats.failedOpens, 1);
    await clock.advance(2000); // backoff (about 375 ms), a second silent socket, its second of silence
    assert.equal(client.state, 'fallback');
    assert.equal(client.stats.failedOpens, 2);
    assert.equal(client.stats.opens, 0);
    assert.deepEqual(states, ['connecting', 'fallback']);
    server.publish('user:alice');
    await clock.advance(10);
    assert.deepEqual(got, [{ key: 'user:alice#1', via: 'http' }]);
    client.close();
  });

  it('falls back when a dropped socket is replaced by silent ones', async () => {
    const { clock, server, client, got } = setup();
    await clock.advance(10);
    server.silentWebSocket = true;
    server.openSockets[0].kill();
    await clock.advance(5100); // a silent socket opened meanwhile does not hold the fallback off
    assert.equal(client.state, 'fallback');
    server.publish('user:alice');
    await clock.advance(10);
    assert.deepEqual(got, [{ key: 'user:alice#1', via: 'http' }]);
    client.close();
  });

  it('reopens at once with a new token when the server closes a socket whose token expired, losing nothing', async () => {
    // A backoff far longer than the test: only an immediate reopen passes.
    const { clock, server, client, keys } = setup({ backoff: { initialMs: 60000, maxMs: 60000, random: () => 0.5 } });
    const reasons = [];
    client.onState((state, info) => reasons.push(`${state}:${info.reason ?? ''}`));
    for (let i = 0; i < 4; i += 1) {
      // More closes than maxDropsInWindow; the last one only says so, and the client closes the socket itself.
      await clock.advance(100);
      assert.equal(client.state, 'open');
      server.publish('user:alice');
      server.openSockets[0].expireToken({ close: i < 3 });
      server.publish('user:alice'); // while there is no socket
    }
    await clock.advance(100);
    assert.equal(client.state, 'open');
    assertExactlyOnceInOrder(keys());
    assert.equal(keys().length, 8);
    assert.deepEqual(server.tokensSeen, ['token-1', 'token-2', 'token-3', 'token-4', 'token-5']);
    assert.deepEqual([client.stats.tokenExpiries, client.stats.drops, client.stats.fallbacks], [4, 0, 0]);
    assert.ok(reasons.includes('connecting:token_expired'), reasons.join());
    client.close();
  });

  it('falls back when the socket keeps dropping', async () => {
    const { clock, server, client, keys } = setup();
    for (let i = 0; i < 3; i += 1) {
      await clock.advance(5000);
      server.openSockets[0]?.kill();
      server.publish('user:alice');
    }
    await clock.advance(10);
    assert.equal(client.state, 'fallback');
    assert.equal(client.stats.fallbacks, 1);
    assertExactlyOnceInOrder(keys());
    assert.equal(keys().length, 3);
    client.close();
  });
});

describe('RealtimeClient: throttled reads (issue 20, finding 5)', () => {
  const gaps = (requests) => requests.slice(1).map((r, i) => r.at - requests[i].at);

  it('waits Retry-After, then a full-jitter backoff that grows, before reading again', async () => {
    const { clock, server, client, got } = setup({}, (s) => {
      s.blockWebSocket = true;
      s.refusals = [{ status: 429, retryAfter: '3' }, { status: 503 }, { status: 500 }];
    });
    await clock.advance(10000);
    assert.equal(client.state, 'fallback');
    // random() = 0.5: 3 s asked + half of 500 ms, then half of 1000 ms, then half of 2000 ms.
    assert.deepEqual(gaps(server.eventRequests().slice(0, 4)), [3250, 500, 1000]);
    assert.equal(client.stats.throttled, 3);
    server.publish('user:alice');
    await clock.advance(10);
    assert.deepEqual(got, [{ key: 'user:alice#1', via: 'http' }]);
    client.close();
  });

  it('backs off a throttled long poll, and starts the backoff over once a read succeeds', async () => {
    const { clock, server, client, got } = setup({}, (s) => {
      s.blockWebSocket = true;
    });
    await clock.advance(1000);
    assert.equal(client.state, 'fallback');
    for (const round of [1, 2]) {
      server.refusals = [{ status: 500 }, { status: 500 }];
      const before = server.eventRequests().length;
      server.publish('user:alice'); // the waiting poll returns; the next two reads are refused
      await clock.advance(5000);
      const requests = server.eventRequests().slice(before - 1);
      assert.deepEqual(gaps(requests).slice(1, 3), [250, 500], `round ${round}: full jitter from the start`);
    }
    assert.deepEqual(
      got.map((g) => g.key),
      ['user:alice#1', 'user:alice#2'],
    );
    client.close();
  });

  it('keeps the usual backoff for answers that are not throttling', async () => {
    const { clock, server, client } = setup({}, (s) => {
      s.blockWebSocket = true;
      s.refusals = [{ status: 403, retryAfter: '60' }];
    });
    await clock.advance(1000);
    assert.equal(client.state, 'fallback');
    assert.deepEqual(gaps(server.eventRequests().slice(0, 2)), [375]); // equal jitter: 250 + 0.5 * 250
    assert.equal(client.stats.throttled, 0);
    client.close();
  });

  it('backs off a throttled catch-up on the WebSocket too, then repairs the gap', async () => {
    const { clock, server, client, keys } = setup();
    await clock.advance(10);
    assert.equal(client.state, 'open');
    server.refusals = [{ status: 500, retryAfter: '1' }];
    server.dropFrames = 1;
    server.publish('user:alice');
    server.publish('user:alice'); // a gap: read over HTTP, refused once
    await clock.advance(5000);
    assert.deepEqual(gaps(server.eventRequests().slice(-2)), [1250]);
    assert.deepEqual(keys(), ['user:alice#1', 'user:alice#2']);
    assert.equal(client.stats.throttled, 1);
    client.close();
  });
});

describe('RealtimeClient: application side', () => {
  it('close() stops everything and says so', async () => {
    const { clock, server, client, states } = setup();
    await clock.advance(10);
    const socket = server.openSockets[0];
    client.close();
    await clock.advance(100000);
    assert.equal(socket.readyState, 3);
    assert.equal(client.state, 'closed');
    assert.equal(states.at(-1), 'closed');
    assert.equal(clock.timers.size, 0);
  });

  it('keeps delivering when a handler throws, and reports the error', async () => {
    const { clock, server, client, got, errors } = setup();
    client.on('test.event', () => {
      throw new Error('boom');
    });
    await clock.advance(10);
    server.publish('user:alice');
    server.publish('user:alice');
    assert.equal(got.length, 2);
    assert.equal(errors.length, 2);
    client.close();
  });

  it('hands on two producers\' events that share an id, and one event on two topics once', async () => {
    const { clock, server, client, got } = setup();
    await clock.advance(10);
    const send = (frame) => server.openSockets[0].onmessage({ data: JSON.stringify(frame) });
    const event = { type: 't', data: {}, occurredAt: 'x', publishedAt: 'x' };
    send({ ...event, id: 'o-17', key: 'kShop-o17-000000000000', topic: 'user:alice', seq: 1 });
    send({ ...event, id: 'o-17', key: 'kBill-o17-000000000000', topic: 'group:ops', seq: 1 });
    send({ ...event, id: 'o-17', key: 'kBill-o17-000000000000', topic: 'all', seq: 1 });
    assert.deepEqual(
      got.map((g) => g.key),
      ['user:alice#1', 'group:ops#1'],
    );
    client.close();
  });

  it('accepts dedupeById, the former name of dedupeEvents', () => {
    const options = { wsUrl: 'wss://ws.test', httpUrl: 'https://api.test', getToken: () => 't' };
    assert.equal(new RealtimeClient(options).tracker.dedupeEvents, true);
    assert.equal(new RealtimeClient({ ...options, dedupeById: false }).tracker.dedupeEvents, false);
    assert.equal(new RealtimeClient({ ...options, dedupeEvents: false }).tracker.dedupeEvents, false);
  });

  it('routes by type, unsubscribes, and sends presence to onPresence', async () => {
    const { clock, server, client } = setup({}, (s) => {
      s.topics.push('presence:bob');
      s.store.set('presence:bob', []);
    });
    const typed = [];
    const presence = [];
    const off = client.on('order.updated', (e) => typed.push(e.seq));
    client.onPresence((p) => presence.push(`${p.userId}:${p.online}:${p.version}`));
    await clock.advance(10);
    server.publish('user:alice', 'order.updated');
    server.publish('presence:bob', 'presence.online', { userId: 'bob', version: 2 });
    server.publish('presence:bob', 'presence.offline', { userId: 'bob', version: 1 }); // stale
    off();
    server.publish('user:alice', 'order.updated');
    assert.deepEqual(typed, [1]);
    assert.deepEqual(presence, ['bob:true:2']);
    client.close();
  });
});

describe('RealtimeClient: presence rosters', () => {
  const watching = (s) => {
    for (const user of ['bob', 'carol']) {
      s.topics.push(`presence:${user}`);
      s.store.set(`presence:${user}`, []);
    }
  };

  it('starts from GET /presence and follows the presence events, added and removed once each', async () => {
    const { clock, server, client } = setup({}, (s) => {
      watching(s);
      s.presence.set('bob', { online: true, sessions: 2, lastSeen: '2026-12-06T10:00:00Z', version: 4 });
      s.presence.set('carol', { online: false, sessions: 0, lastSeen: '2026-12-06T09:00:00Z', version: 2 });
    });
    const roster = client.presenceRoster(['bob', 'carol']);
    const seen = [];
    roster.onAdded((m) => seen.push(`+${m.userId}`));
    roster.onRemoved((m) => seen.push(`-${m.userId}`));
    await clock.advance(10);
    await roster.ready;
    assert.deepEqual([...roster.members.keys()], ['bob']);
    assert.equal(roster.members.get('bob').sessions, 2);
    const request = server.requests.find((r) => r.path === '/presence');
    assert.equal(request.params.users, 'bob,carol');
    assert.match(request.token, /^token-/);

    server.publish('presence:carol', 'presence.online', { userId: 'carol', version: 3, lastSeen: '2026-12-06T11:00:00Z' });
    server.publish('presence:bob', 'presence.offline', { userId: 'bob', version: 6 });
    server.publish('presence:carol', 'presence.online', { userId: 'carol', version: 3 }); // the same update again
    await clock.advance(10);
    assert.deepEqual(seen, ['+bob', '+carol', '-bob']);
    assert.deepEqual([...roster.members.keys()], ['carol']);
    assert.equal(roster.members.get('carol').lastSeen, '2026-12-06T11:00:00Z');

    roster.close();
    server.publish('presence:bob', 'presence.online', { userId: 'bob', version: 8 });
    await clock.advance(10);
    assert.deepEqual(seen, ['+bob', '+carol', '-bob']);
    client.close();
  });
});

describe('PresenceRoster: the higher version wins, snapshot or update', () => {
  const update = (userId, online, version) => ({ userId, online, version, data: {} });

  it('a snapshot read before a flip never undoes it; a stale update never undoes a newer snapshot', () => {
    const roster = new PresenceRoster(['bob', 'dave']);
    const seen = [];
    roster.onAdded((m) => seen.push(`+${m.userId}@${m.version}`));
    roster.onRemoved((m) => seen.push(`-${m.userId}@${m.version}`));

    roster.applyUpdate(update('bob', false, 7)); // bob went offline at 7 ...
    roster.applySnapshot({ users: { bob: { online: true, sessions: 1, lastSeen: null, version: 5 } } }); // ... read at 5
    assert.deepEqual([...roster.members.keys()], []);

    roster.applySnapshot({ users: { dave: { online: true, sessions: 1, lastSeen: null, version: 9 } } });
    roster.applyUpdate(update('dave', false, 8)); // older than the snapshot
    assert.deepEqual([...roster.members.keys()], ['dave']);

    roster.applyUpdate(update('dave', false, 10));
    roster.applyUpdate(update('mallory', true, 1)); // not watched by this roster
    assert.deepEqual(seen, ['+dave@9', '-dave@10']);
    assert.deepEqual([...roster.members.keys()], []);
  });
});
