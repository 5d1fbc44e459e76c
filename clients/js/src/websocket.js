// The WebSocket on the wire: the URL with the token, and handlers that may be
// dropped and sockets that may be closed at any moment without throwing.

/** The socket URL with the token as ?token= (browsers cannot set headers on a WebSocket). */
export function socketUrl(wsUrl, token) {
  const separator = wsUrl.includes('?') ? '&' : '?';
  return `${wsUrl}${separator}token=${encodeURIComponent(token)}`;
}

/** Drop every handler, so a superseded socket can no longer reach the client. */
export function detach(ws) {
  ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
}

/** Close, whatever state the socket is in. */
export function safeClose(ws, code, reason) {
  try {
    if (code) ws.close(code, reason);
    else ws.close();
  } catch {
    // already closed
  }
}
