// Browser tests: the demo page (and so the browser client) in real headless
// Chromium against the stack on the emulator.
//
//   DEMO_URL=http://127.0.0.1:8765 node --test --test-concurrency=1 tests/browser/
//
// DEMO_URL is a running scripts/local/demo_server.py (tests/browser/test_browser.py
// starts one on the `stack` fixture and runs this file). CHROMIUM (default
// /usr/bin/chromium) and ARTIFACTS (default test-artifacts/) are optional.
// HISTORY_USERS ({now, retention}: {user, ids}) names users with 450 events
// stored (test_browser.py stores them); without it those tests are skipped.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect as tcpConnect, createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { chromium } from 'playwright-core';

const DEMO_URL = process.env.DEMO_URL?.replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.ARTIFACTS || 'test-artifacts';
const WAIT = 30_000;
const timings = {};

function record(name, ms) {
  (timings[name] ||= []).push(Math.round(ms));
  console.log(`[timing] ${name}: ${Math.round(ms)} ms`);
}

const unique = (prefix) => `${prefix}-${randomUUID().slice(0, 8)}`;

let browser;

before(async () => {
  assert.ok(DEMO_URL, 'set DEMO_URL to a running demo server');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // A fresh temporary profile per launch; nothing reaches out to the internet.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, 'browser-timings.json'), `${JSON.stringify(timings, null, 2)}\n`);
});

/** A signed-in demo page in its own context; blockWebSocket makes `new WebSocket` throw before any script runs. */
async function openPage(user, { groups = [], blockWebSocket = false } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  if (blockWebSocket) {
    await context.addInitScript(() => {
      window.WebSocket = function BlockedWebSocket() {
        throw new DOMException('WebSocket blocked by the test', 'SecurityError');
      };
    });
  }
  const page = await context.newPage();
  page.on('pageerror', (error) => console.log(`[page ${user}] ${error}`));
  const started = Date.now();
  await page.goto(`${DEMO_URL}/?user=${encodeURIComponent(user)}&groups=${groups.join(',')}`);
  return { page, context, started };
}

function waitState(page, state) {
  return page.waitForFunction((s) => window.demo?.client?.state === s, state, { timeout: WAIT });
}

async function stateAt(page, state, after = 0) {
  return page.evaluate(([s, t]) => window.demo.states.find((x) => x.state === s && x.at >= t)?.at, [state, after]);
}

async function networkChangedAt(page, mode) {
  return page.evaluate((m) => window.demo.networkChanges.findLast((x) => x.mode === m)?.at, mode);
}

async function publish(audience, count, type = 'test.browser') {
  const ids = [];
  for (let n = 0; n < count; n += 1) {
    const id = unique('evt');
    const response = await fetch(`${DEMO_URL}/publish`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ type, data: { n }, audience: [audience], id }),
    });
    assert.equal(response.status, 200, await response.text());
    ids.push(id);
  }
  return ids;
}

async function waitIds(page, ids) {
  try {
    await page.waitForFunction((wanted) => wanted.every((id) => window.demo.events.some((e) => e.event.id === id)), ids, {
      timeout: WAIT,
    });
  } catch (error) {
    const got = await received(page, ids);
    throw new Error(`missing ${ids.filter((id) => !got.some((e) => e.id === id))}: ${error.message}`);
  }
}

/** What the page handed to the application for these ids, in order. */
function received(page, ids) {
  return page.evaluate(
    (wanted) =>
      window.demo.events
        .filter((e) => wanted.includes(e.event.id))
        .map((e) => ({ id: e.event.id, topic: e.event.topic, seq: e.event.seq, via: e.transport, at: e.receivedAt })),
    ids,
  );
}

function assertExactlyOnceInOrder(events, ids) {
  assert.deepEqual(events.map((e) => e.id).sort(), [...ids].sort(), 'every event, once');
  const last = new Map();
  for (const event of events) {
    if (last.has(event.topic)) assert.equal(event.seq, last.get(event.topic) + 1, `gap or disorder on ${event.topic}`);
    last.set(event.topic, event.seq);
  }
}

describe('the demo page in Chromium', () => {
  it('receives events over the WebSocket', async () => {
    const user = unique('wsuser');
    const team = unique('team');
    const { page, context, started } = await openPage(user, { groups: [team] });
    await waitState(page, 'open');
    record('browser: page load to open (websocket)', (await stateAt(page, 'open')) - started);
    const sent = Date.now();
    const ids = [...(await publish(`user:${user}`, 3)), ...(await publish(`group:${team}`, 2))];
    await waitIds(page, ids);
    const events = await received(page, ids);
    assertExactlyOnceInOrder(events, ids);
    assert.deepEqual([...new Set(events.map((e) => e.via))], ['websocket']);
    record('browser: first publish to last receipt, 5 events (websocket)', Math.max(...events.map((e) => e.at)) - sent);
    await context.close();
  });

  it('a presence roster shows a teammate coming online and going offline', async () => {
    const [watcher, teammate, team] = [unique('watcher'), unique('mate'), unique('team')];
    const { page, context } = await openPage(watcher, { groups: [team] });
    await waitState(page, 'open');
    // The client's roster API, as an app would use it: GET /presence, then the live presence events.
    const before = await page.evaluate(async (id) => {
      window.testRoster = window.demo.client.presenceRoster([id]);
      window.testRosterSeen = [];
      window.testRoster.onAdded((m) => window.testRosterSeen.push(`+${m.userId}`));
      window.testRoster.onRemoved((m) => window.testRosterSeen.push(`-${m.userId}`));
      await window.testRoster.ready;
      return [...window.testRoster.members.keys()];
    }, teammate);
    assert.deepEqual(before, []);

    const other = await openPage(teammate, { groups: [team] });
    await waitState(other.page, 'open');
    await page.waitForFunction((id) => window.testRoster.members.has(id), teammate, { timeout: WAIT });
    await other.context.close(); // the teammate's only session ends: offline after the grace period
    await page.waitForFunction((id) => !window.testRoster.members.has(id), teammate, { timeout: 2 * WAIT });
    assert.deepEqual(await page.evaluate(() => window.testRosterSeen), [`+${teammate}`, `-${teammate}`]);
    await context.close();
  });

  it('with WebSocket construction blocked, receives the same events over HTTP', async () => {
    const user = unique('fwuser');
    const blocked = await openPage(user, { blockWebSocket: true });
    const normal = await openPage(user);
    await waitState(blocked.page, 'fallback');
    const connecting = await stateAt(blocked.page, 'connecting');
    const fallback = await stateAt(blocked.page, 'fallback');
    record('browser: fallback switch-over (WebSocket blocked; connect() to fallback)', fallback - connecting);
    record('browser: fallback switch-over (page load to fallback)', fallback - blocked.started);
    await waitState(normal.page, 'open');

    const sent = Date.now();
    const ids = await publish(`user:${user}`, 4);
    await waitIds(blocked.page, ids);
    await waitIds(normal.page, ids);
    const overHttp = await received(blocked.page, ids);
    const overSocket = await received(normal.page, ids);
    assertExactlyOnceInOrder(overHttp, ids);
    assert.deepEqual([...new Set(overHttp.map((e) => e.via))], ['http']);
    assert.deepEqual([...new Set(overSocket.map((e) => e.via))], ['websocket']);
    // Same events, same topics and seqs, same order: only the transport differs.
    const strip = (events) => events.map(({ id, topic, seq }) => ({ id, topic, seq }));
    assert.deepEqual(strip(overHttp), strip(overSocket));
    record('browser: first publish to last receipt, 4 events (http long poll)', Math.max(...overHttp.map((e) => e.at)) - sent);
    assert.equal(await blocked.page.evaluate(() => window.demo.client.stats.opens), 0);
    await blocked.context.close();
    await normal.context.close();
  });

  it('after the socket is killed mid-stream, the missed events arrive after reconnect: no gap, no duplicate', async () => {
    const user = unique('dropuser');
    const { page, context } = await openPage(user);
    const watcher = await openPage(user); // another tab of the same user, whose network stays up
    await waitState(page, 'open');
    await waitState(watcher.page, 'open');
    const ids = [];
    const stream = (async () => {
      for (let n = 0; n < 24; n += 1) {
        ids.push(...(await publish(`user:${user}`, 1, 'test.stream')));
        await sleep(100);
      }
    })();
    await sleep(800);
    // The network goes away: the live socket is cut, and new ones hang until it is back.
    await page.evaluate(() => window.demo.setNetwork('outage'));
    await sleep(1500);
    const publishedWhileDown = [...ids];
    await waitIds(watcher.page, publishedWhileDown); // stored and delivered: only a catch-up can bring them now
    const before = new Set((await received(page, ids)).map((e) => e.id));
    const missed = publishedWhileDown.filter((id) => !before.has(id));
    await page.evaluate(() => window.demo.setNetwork('normal'));
    await waitState(page, 'open');
    const restored = await networkChangedAt(page, 'normal');
    await stream;
    await waitIds(page, ids);
    const events = await received(page, ids);
    assertExactlyOnceInOrder(events, ids);
    const stats = await page.evaluate(() => window.demo.client.stats);
    assert.ok(stats.drops >= 1, 'the socket dropped');
    assert.ok(stats.opens >= 2, 'and was opened again');
    assert.ok(missed.length >= 5, `events were published while down: ${missed.length}`);
    const missedEvents = events.filter((e) => missed.includes(e.id));
    assert.deepEqual([...new Set(missedEvents.map((e) => e.via))], ['http'], 'missed events come from the catch-up read');
    const states = await page.evaluate(() => window.demo.states.map((s) => s.state));
    assert.ok(!states.includes('fallback'), `a short outage is bridged by reconnecting: ${states}`);
    record('browser: catch-up after reconnect (GET /events on reopen)', stats.lastSyncMs);
    record(`browser: network back to all ${missed.length} missed events delivered`, Math.max(...missedEvents.map((e) => e.at)) - restored);
    await watcher.context.close();
    await context.close();
  });

  it('a reload resumes where the tab was: events published meanwhile are not lost', async () => {
    const user = unique('reloaduser');
    const { page, context } = await openPage(user);
    await waitState(page, 'open');
    const before = await publish(`user:${user}`, 2);
    await waitIds(page, before);
    // The tab goes away (its socket with it); events are published before it comes back.
    await page.evaluate(() => window.demo.client.close());
    const meanwhile = await publish(`user:${user}`, 2);
    await sleep(2500);
    await page.reload();
    await waitState(page, 'open');
    const after = await publish(`user:${user}`, 1);
    await waitIds(page, [...meanwhile, ...after]);
    const events = await received(page, [...before, ...meanwhile, ...after]);
    assertExactlyOnceInOrder(events, [...meanwhile, ...after]); // the reloaded page starts after `before`
    assert.deepEqual(events.filter((e) => meanwhile.includes(e.id)).map((e) => e.via), ['http', 'http']);
    await context.close();
  });

  it('the block switch hands over to HTTP mid-session and back, and the page is captured', async () => {
    const { page, context } = await openPage('alice');
    await waitState(page, 'open');
    // Publish through the page's own form.
    await page.fill('#message', 'over the WebSocket');
    await page.click('#publish button[type="submit"]');
    await page.waitForFunction(() => window.demo.events.some((e) => e.event.data?.message === 'over the WebSocket'), null, {
      timeout: WAIT,
    });

    await page.check('input[name="network"][value="blocked"]');
    await waitState(page, 'fallback');
    const blockedAt = await networkChangedAt(page, 'blocked');
    record('browser: fallback switch-over (block switch to fallback, mid-session)', (await stateAt(page, 'fallback', blockedAt)) - blockedAt);
    const ids = await publish('user:alice', 2, 'demo.note');
    await waitIds(page, ids);
    assert.deepEqual([...new Set((await received(page, ids)).map((e) => e.via))], ['http']);
    await page.fill('#message', 'over HTTP while the WebSocket is blocked');
    await page.click('#publish button[type="submit"]');
    await page.waitForFunction(
      () => window.demo.events.some((e) => e.event.data?.message?.startsWith('over HTTP') && e.transport === 'http'),
      null,
      { timeout: WAIT },
    );
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'demo-page-fallback.png'), fullPage: true });

    await page.check('input[name="network"][value="normal"]');
    await waitState(page, 'open');
    const unblockedAt = await networkChangedAt(page, 'normal');
    record('browser: back on the WebSocket after unblocking', (await stateAt(page, 'open', unblockedAt)) - unblockedAt);
    const later = await publish('user:alice', 1, 'demo.note');
    await waitIds(page, later);
    assert.deepEqual((await received(page, later)).map((e) => e.via), ['websocket']);
    const all = await page.evaluate(() => window.demo.events.map((e) => ({ id: e.event.id, topic: e.event.topic, seq: e.event.seq })));
    const last = new Map();
    for (const e of all) {
      if (last.has(e.topic)) assert.equal(e.seq, last.get(e.topic) + 1, `gap on ${e.topic}`);
      last.set(e.topic, e.seq);
    }
    await page.screenshot({ path: join(ARTIFACTS, 'demo-page.png'), fullPage: true });
    await context.close();
  });
});

// --- the browser client on a page of the test's own: keepalives, where it starts, silent sockets -

const HISTORY = process.env.HISTORY_USERS ? JSON.parse(process.env.HISTORY_USERS) : null;

/** The demo server's page without signing in (so no client of the demo's), and a client of the test's: window.probe. */
async function openClient(user, options = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (error) => console.log(`[page ${user}] ${error}`));
  await page.goto(`${DEMO_URL}/`);
  await page.evaluate(
    async ({ user, options }) => {
      const { connect } = await import('/js/realtime.js');
      const config = await (await fetch('/config.json')).json();
      const probe = { events: [], pongs: 0 };
      window.probe = probe;
      // The client counts the pings it sends, not the pongs: the test counts those.
      class PongCountingWebSocket extends WebSocket {
        constructor(...args) {
          super(...args);
          this.addEventListener('message', (message) => {
            try {
              if (JSON.parse(message.data)?.type === 'pong') probe.pongs += 1;
            } catch {
              // not JSON: not a pong
            }
          });
        }
      }
      probe.client = connect({
        wsUrl: config.wsUrl,
        httpUrl: config.httpUrl,
        getToken: async () => (await (await fetch(`/token?user=${encodeURIComponent(user)}&groups=`)).json()).token,
        WebSocket: PongCountingWebSocket,
        ...options,
      });
      probe.client.on('*', (event, meta) => {
        probe.events.push({ id: event.id, topic: event.topic, seq: event.seq, via: meta.transport, at: meta.receivedAt });
      });
    },
    { user, options },
  );
  return { page, context };
}

function probeState(page, state) {
  return page.waitForFunction((s) => window.probe.client.state === s, state, { timeout: WAIT });
}

async function probeIds(page, ids) {
  await page.waitForFunction((wanted) => wanted.every((id) => window.probe.events.some((e) => e.id === id)), ids, {
    timeout: WAIT,
  });
}

const probeEvents = (page, topic) => page.evaluate((t) => window.probe.events.filter((e) => e.topic === t), topic);

/** Accepts every WebSocket upgrade on loopback, then passes nothing either way (a middlebox gone quiet). */
async function silentWebSocketServer() {
  const server = createServer((request, response) => response.writeHead(404).end());
  const sockets = new Set();
  server.on('upgrade', (request, socket) => {
    const accept = createHash('sha1')
      .update(`${request.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on('data', () => {}); // swallowed: pings included
    socket.on('error', () => {});
    sockets.add(socket);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    upgrades: () => sockets.size,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/**
 * A TCP relay to the stack's WebSocket endpoint. silence() makes the connections it carries go
 * quiet (a NAT or proxy that forgot them: nothing passes either way, and nothing is closed);
 * connections made after that pass again.
 */
async function silenceableRelay(wsUrl) {
  const target = new URL(wsUrl);
  const connections = new Set();
  const server = createTcpServer((downstream) => {
    const upstream = tcpConnect(Number(target.port || 80), target.hostname);
    const pair = [downstream, upstream];
    for (const [socket, other] of [pair, [upstream, downstream]]) {
      socket.on('error', () => {});
      socket.on('close', () => {
        other.destroy();
        connections.delete(pair);
      });
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    connections.add(pair);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}${target.pathname}${target.search}`,
    connections: () => connections.size,
    silence() {
      for (const [downstream, upstream] of connections) {
        downstream.unpipe(upstream);
        upstream.unpipe(downstream);
        downstream.on('data', () => {}); // read and dropped
        upstream.on('data', () => {});
      }
    },
    close() {
      for (const pair of connections) for (const socket of pair) socket.destroy();
      server.close();
    },
  };
}

/** What the browser reports when the tab is hidden or shown again; a headless tab stays visible, so the test says it. */
function setVisibility(page, value) {
  return page.evaluate((state) => {
    Object.defineProperty(document, 'visibilityState', { value: state, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, value);
}

describe('the browser client: keepalives', () => {
  it('pings at once when the page becomes visible again', async () => {
    const { page, context } = await openClient(unique('visible'));
    await probeState(page, 'open');
    await page.waitForFunction(() => window.probe.pongs >= 1, null, { timeout: WAIT }); // the first ping's
    const counts = () => page.evaluate(() => ({ pings: window.probe.client.stats.pings, pongs: window.probe.pongs }));
    const before = await counts();
    await setVisibility(page, 'hidden');
    await sleep(500);
    assert.equal((await counts()).pings, before.pings, 'hiding the page sends nothing');
    const shown = Date.now();
    await setVisibility(page, 'visible');
    await page.waitForFunction((pings) => window.probe.client.stats.pings > pings, before.pings, { timeout: 1000 });
    await page.waitForFunction((pongs) => window.probe.pongs > pongs, before.pongs, { timeout: WAIT });
    record('browser: page shown to its ping answered', Date.now() - shown);
    const after = await counts();
    assert.equal(after.pings, before.pings + 1, 'one ping, not one per interval missed');
    const stats = await page.evaluate(() => window.probe.client.stats);
    assert.equal(stats.drops, 0);
    assert.equal(await page.evaluate(() => window.probe.client.state), 'open');
    await context.close();
  });

  it('a socket that goes silent while visible is dropped and the client recovers', async () => {
    const config = await (await fetch(`${DEMO_URL}/config.json`)).json();
    const relay = await silenceableRelay(config.wsUrl);
    const [pingIntervalMs, pongTimeoutMs] = [3000, 2000];
    try {
      const user = unique('quiet');
      const { page, context } = await openClient(user, { wsUrl: relay.url, pingIntervalMs, pongTimeoutMs });
      await probeState(page, 'open');
      assert.equal(relay.connections(), 1, 'the socket goes through the relay');
      const before = await publish(`user:${user}`, 1);
      await probeIds(page, before);
      const drops = await page.evaluate(() => window.probe.client.stats.drops);
      relay.silence();
      const silenced = Date.now();
      const meanwhile = await publish(`user:${user}`, 2); // never reach the quiet socket
      await page.waitForFunction((n) => window.probe.client.stats.drops > n, drops, { timeout: WAIT });
      const detected = Date.now() - silenced;
      record(`browser: silent socket dropped (visible page, ping ${pingIntervalMs} ms, pong ${pongTimeoutMs} ms)`, detected);
      // Within a ping interval and a pong timeout, give or take a late timer on a loaded machine.
      assert.ok(detected < pingIntervalMs + pongTimeoutMs + 2000, `dropped ${detected} ms after going silent`);
      await probeState(page, 'open');
      await probeIds(page, meanwhile);
      const after = await publish(`user:${user}`, 1);
      await probeIds(page, after);
      const got = await probeEvents(page, `user:${user}`);
      assertExactlyOnceInOrder(got, [...before, ...meanwhile, ...after]);
      assert.deepEqual(got.filter((e) => after.includes(e.id)).map((e) => e.via), ['websocket'], 'on a new socket');
      await context.close();
    } finally {
      relay.close();
    }
  });
});

describe('the browser client: where it starts, and behind a silent socket', () => {
  it("with since 'now' hands on none of 450 stored events, then new ones once", { skip: !HISTORY }, async () => {
    const { user } = HISTORY.now;
    const started = Date.now();
    const { page, context } = await openClient(user);
    await probeState(page, 'open');
    record("browser: start to open, 450 stored events (since 'now')", Date.now() - started);
    const ids = await publish(`user:${user}`, 3);
    await probeIds(page, ids);
    await sleep(500); // anything else handed on would be here by now
    const mine = await probeEvents(page, `user:${user}`);
    assert.deepEqual(mine.map((e) => e.id).sort(), [...ids].sort());
    assert.deepEqual(
      mine.map((e) => e.seq),
      [451, 452, 453],
    );
    await context.close();
  });

  it("with since 'retention' hands on all 450, in order, once, then new ones", { skip: !HISTORY }, async () => {
    const { user, ids: stored } = HISTORY.retention;
    const started = Date.now();
    const { page, context } = await openClient(user, { since: 'retention' });
    await probeIds(page, stored);
    record("browser: start to 450 stored events handed on (since 'retention')", Date.now() - started);
    await probeState(page, 'open');
    const ids = await publish(`user:${user}`, 2);
    await probeIds(page, ids);
    const mine = await probeEvents(page, `user:${user}`);
    assert.deepEqual(
      mine.slice(0, 450).map((e) => e.id),
      stored,
    );
    assert.deepEqual(
      mine.map((e) => e.seq),
      Array.from({ length: 452 }, (_, i) => i + 1),
    );
    assert.deepEqual([...new Set(mine.slice(0, 450).map((e) => e.via))], ['http']);
    await context.close();
  });

  it('behind a socket that opens and passes nothing, falls back and gets events at long-poll latency', async () => {
    const silent = await silentWebSocketServer();
    try {
      const user = unique('silent');
      const started = Date.now();
      // A long fallbackDelayMs: the fallback must come from the silent opens themselves.
      const { page, context } = await openClient(user, { wsUrl: silent.url, openTimeoutMs: 2000, fallbackDelayMs: 60000 });
      await probeState(page, 'fallback');
      record('browser: silent socket to fallback (two failed opens, 2 s each)', Date.now() - started);
      const stats = await page.evaluate(() => window.probe.client.stats);
      assert.equal(stats.opens, 0);
      assert.equal(stats.failedOpens, 2);
      assert.ok(silent.upgrades() >= 2, 'the sockets did open');
      const sent = Date.now();
      const ids = await publish(`user:${user}`, 3);
      await probeIds(page, ids);
      const got = (await probeEvents(page, `user:${user}`)).filter((e) => ids.includes(e.id));
      const latency = Math.max(...got.map((e) => e.at)) - sent;
      record('browser: publish to receipt behind a silent socket (fallback), 3 events', latency);
      assert.deepEqual([...new Set(got.map((e) => e.via))], ['http']);
      assert.ok(latency < 5000, `the long poll's latency, not a reconnect cycle's: ${latency} ms`);
      await context.close();
    } finally {
      silent.close();
    }
  });
});
