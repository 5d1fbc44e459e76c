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
