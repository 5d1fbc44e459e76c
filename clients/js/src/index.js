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
// esbuild bundles them into clients/js/dist/realtime.js, the one file shipped,
// headed by this comment: edit the sources, then run `make build-js`.

export { Backoff } from './backoff.js';
export { decodeCursor, encodeCursor } from './cursor.js';
export { EventTracker } from './tracker.js';
export { PresenceRoster, PresenceTracker } from './presence.js';
export { HttpError, retryAfterMs } from './http.js';
export { STATES, TOKEN_EXPIRED, RealtimeClient, connect } from './client.js';
