// The demo page: sign in as a seeded user, see who is online, watch events
// arrive (and by which transport), publish test events, and break the network
// to watch the client carry on. Served by scripts/local/demo_server.py; no build step.
import { connect } from '/js/realtime.js';

const $ = (id) => document.getElementById(id);

// --- a WebSocket the page can break -----------------------------------------
// The client takes its WebSocket constructor as an option, so the page can
// play firewall ("blocked": construction fails, live sockets are cut) or lose
// the network ("outage": live sockets are cut and new ones hang until it is back).

const RealWebSocket = window.WebSocket; // read at load: a test may have replaced it already
const liveSockets = new Set();
let network = 'normal';
let networkBack = null; // resolves when an outage ends
let endOutage = () => {};

function openReal(url, protocols) {
  const ws = new RealWebSocket(url, protocols);
  liveSockets.add(ws);
  ws.addEventListener('close', () => liveSockets.delete(ws));
  return ws;
}

function HeldSocket(url, protocols) {
  // Looks like a WebSocket that is still connecting; becomes a real one when the network is back.
  const held = {
    readyState: 0, onopen: null, onmessage: null, onerror: null, onclose: null, real: null, cancelled: false,
    send() { throw new DOMException('not open yet', 'InvalidStateError'); },
    close() { held.cancelled = true; held.readyState = 3; held.real?.close(); },
  };
  networkBack.then(() => {
    if (held.cancelled) return;
    const ws = openReal(url, protocols);
    held.real = ws;
    held.send = (data) => ws.send(data);
    ws.onopen = (e) => { held.readyState = 1; held.onopen?.(e); };
    ws.onmessage = (e) => held.onmessage?.(e);
    ws.onerror = (e) => held.onerror?.(e);
    ws.onclose = (e) => { held.readyState = 3; held.onclose?.(e); };
  });
  return held;
}

function BreakableWebSocket(url, protocols) {
  if (network === 'blocked') throw new DOMException('WebSocket blocked (demo switch)', 'SecurityError');
  if (network === 'outage') return HeldSocket(url, protocols);
  return openReal(url, protocols);
}

function setNetwork(mode) {
  network = mode;
  demo.networkChanges.push({ mode, at: Date.now() });
  if (mode === 'outage') networkBack = new Promise((resolve) => { endOutage = resolve; });
  else endOutage();
  if (mode !== 'normal') for (const ws of [...liveSockets]) ws.close(); // the socket dies with the network
  else demo.client?.reconnectNow(); // like the browser's "online" event
  for (const input of document.querySelectorAll('input[name="network"]')) input.checked = input.value === mode;
  timeline(`network: ${mode}`);
}

// --- state for tests and for the curious (window.demo in the console) ----------

const demo = {
  client: null,
  user: null,
  events: [], // {event, transport, receivedAt}
  states: [], // {state, at, reason}
  networkChanges: [], // {mode, at}
  network: () => network,
  setNetwork,
};
window.demo = demo;

// --- page ------------------------------------------------------------------------

let config;
const presence = new Map(); // user -> true | false | 'unknown'

async function main() {
  config = await (await fetch('/config.json')).json();
  $('users').replaceChildren(
    ...config.users.map((user) => {
      const button = document.createElement('button');
      button.innerHTML = `<strong></strong><span></span>`;
      button.querySelector('strong').textContent = user.id;
      button.querySelector('span').textContent = user.groups.length ? `groups: ${user.groups.join(', ')}` : 'no groups';
      button.addEventListener('click', () => signIn(user.id));
      return button;
    }),
  );
  $('signout').addEventListener('click', signOut);
  $('publish').addEventListener('submit', publish);
  for (const input of document.querySelectorAll('input[name="network"]')) {
    input.addEventListener('change', () => {
      setNetwork(input.value);
      if (input.value === 'outage') setTimeout(() => network === 'outage' && setNetwork('normal'), 3000);
    });
  }
  // ?user= (or the last user of this tab) signs in straight away; a reload keeps the session.
  const user = new URLSearchParams(location.search).get('user') || sessionStorage.getItem('demo.user');
  if (user) signIn(user);
}

function signIn(user) {
  demo.user = user;
  sessionStorage.setItem('demo.user', user);
  $('signin').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  $('who').textContent = `signed in as ${user}`;
  fillAudience(user);
  for (const other of config.users) presence.set(other.id, other.id === user ? true : 'unknown');
  renderPresence();

  const client = connect({
    wsUrl: config.wsUrl,
    httpUrl: config.httpUrl,
    getToken: async () => {
      const response = await fetch(tokenUrl(user));
      if (!response.ok) throw new Error(`token: ${response.status}`);
      return (await response.json()).token;
    },
    WebSocket: BreakableWebSocket,
    // A reload resumes where this tab was, so nothing published meanwhile is lost.
    cursor: sessionStorage.getItem(`demo.cursor.${user}`),
  });
  demo.client = client;
  const saveCursor = () => client.cursor && sessionStorage.setItem(`demo.cursor.${user}`, client.cursor);
  addEventListener('pagehide', saveCursor);
  client.onState((state, info) => {
    saveCursor();
    demo.states.push({ state, at: Date.now(), reason: info.reason });
    const pill = $('state');
    pill.textContent = state;
    pill.dataset.state = state;
    $('transport').textContent = client.transport ? `via ${client.transport}` : '';
    timeline(`${state}${info.reason ? ` (${info.reason})` : ''}`);
  });
  client.onError((error) => console.warn('[demo]', error));
  client.on('*', (event, meta) => {
    demo.events.push({ event, transport: meta.transport, receivedAt: meta.receivedAt });
    saveCursor();
    $('transport').textContent = `via ${meta.transport}`;
    renderEvent(event, meta);
  });
  // Who of the other demo users is online: GET /presence merged with the live presence events.
  const roster = client.presenceRoster(config.users.map((u) => u.id).filter((id) => id !== user));
  demo.roster = roster;
  let known = false; // until GET /presence answers, a user not seen online is "not known yet"
  const showRoster = () => {
    for (const id of roster.users) presence.set(id, roster.members.has(id) || (known ? false : 'unknown'));
    renderPresence();
  };
  roster.onAdded(showRoster);
  roster.onRemoved(showRoster);
  roster.ready.then(
    () => {
      known = true;
      showRoster();
    },
    (error) => console.warn('[demo] presence', error),
  );
}

function tokenUrl(user) {
  // ?groups= overrides a user's groups (the tests use it for users of their own).
  const groups = new URLSearchParams(location.search).get('groups');
  return `/token?user=${encodeURIComponent(user)}${groups === null ? '' : `&groups=${encodeURIComponent(groups)}`}`;
}

function signOut() {
  demo.client?.close();
  demo.client = null;
  sessionStorage.removeItem(`demo.cursor.${demo.user}`);
  sessionStorage.removeItem('demo.user');
  location.search = '';
}

function fillAudience(user) {
  const options = [
    ...config.users.map((u) => [`user:${u.id}`, `user:${u.id}${u.id === user ? ' (you)' : ''}`]),
    ...[...new Set(config.users.flatMap((u) => u.groups))].map((g) => [`group:${g}`, `group:${g}`]),
    ['all', 'all (everyone)'],
  ];
  $('audience').replaceChildren(
    ...options.map(([value, label]) => Object.assign(document.createElement('option'), { value, textContent: label })),
  );
}

async function publish(submit) {
  submit.preventDefault();
  const body = {
    type: $('type').value,
    data: { message: $('message').value, from: demo.user },
    audience: [$('audience').value],
  };
  const response = await fetch('/publish', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const result = await response.json();
  $('published').textContent = response.ok ? `sent at ${new Date().toLocaleTimeString()}` : result.error.message;
}

function renderPresence() {
  $('presence').replaceChildren(
    ...[...presence].map(([id, online]) => {
      const item = document.createElement('li');
      item.dataset.online = String(online);
      item.innerHTML = '<span class="dot"></span><span class="name"></span><span class="muted small"></span>';
      item.querySelector('.name').textContent = id;
      item.querySelector('.small').textContent =
        id === demo.user ? '(you)' : online === 'unknown' ? 'not known yet' : online ? 'online' : 'offline';
      return item;
    }),
  );
}

function renderEvent(event, meta) {
  const row = document.createElement('tr');
  row.className = 'fresh';
  const cells = [
    new Date(meta.receivedAt).toLocaleTimeString(),
    event.type,
    event.topic,
    String(event.seq),
    null,
    JSON.stringify(event.data),
  ];
  for (const [index, text] of cells.entries()) {
    const cell = document.createElement('td');
    if (index === 4) {
      cell.innerHTML = `<span class="via ${meta.transport}">${meta.transport === 'websocket' ? 'WebSocket' : 'HTTP'}</span>`;
    } else {
      cell.textContent = text;
    }
    if (index === 5) cell.className = 'data';
    row.append(cell);
  }
  $('events').prepend(row);
  while ($('events').children.length > 200) $('events').lastChild.remove();
  $('count').textContent = `${demo.events.length} received`;
}

function timeline(text) {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('timeline').prepend(item);
}

main();
