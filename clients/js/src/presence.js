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

/**
 * A live members view of some users: who of them is online now. Fed by a GET /presence answer
 * (applySnapshot) and by the presence updates the client hands on (applyUpdate); per user the
 * higher version wins, whichever arrives first, so a snapshot read before a flip never undoes it
 * and a stale update never undoes a newer snapshot. `added` runs when a user comes online,
 * `removed` when one goes offline.
 */
export class PresenceRoster {
  constructor(users) {
    this.users = new Set(users);
    this.members = new Map(); // userId -> { userId, sessions, lastSeen, version } of the users online
    this._versions = new Map(); // userId -> the newest version applied, online or not
    this._added = new Set();
    this._removed = new Set();
  }

  /** handler(member) when a user comes online. Returns a function that unsubscribes. */
  onAdded(handler) {
    this._added.add(handler);
    return () => this._added.delete(handler);
  }

  /** handler(member) when a user goes offline (member: what was known of it). Returns a function that unsubscribes. */
  onRemoved(handler) {
    this._removed.add(handler);
    return () => this._removed.delete(handler);
  }

  /** A GET /presence answer: `{ users: { <id>: { online, sessions, lastSeen, version } } }`. */
  applySnapshot(answer) {
    const users = answer && typeof answer.users === 'object' && answer.users !== null ? answer.users : {};
    for (const [userId, state] of Object.entries(users)) {
      if (!this.users.has(userId) || state === null || typeof state !== 'object') continue;
      this._apply(userId, Boolean(state.online), {
        sessions: state.sessions,
        lastSeen: state.lastSeen,
        version: state.version,
      });
    }
  }

  /** A presence update as the client hands it on (PresenceTracker.update). */
  applyUpdate(update) {
    if (!update || !this.users.has(update.userId)) return;
    this._apply(update.userId, update.online, { lastSeen: update.data?.lastSeen, version: update.version });
  }

  _apply(userId, online, { sessions, lastSeen, version }) {
    if (Number.isInteger(version)) {
      const held = this._versions.get(userId);
      if (held !== undefined && version <= held) return; // older than what the roster shows
      this._versions.set(userId, version);
    }
    const before = this.members.get(userId);
    if (online) {
      const member = { userId, sessions: sessions ?? before?.sessions, lastSeen: lastSeen ?? before?.lastSeen, version };
      this.members.set(userId, member);
      if (!before) for (const handler of [...this._added]) handler(member);
    } else if (before) {
      this.members.delete(userId);
      for (const handler of [...this._removed]) handler({ ...before, lastSeen: lastSeen ?? before.lastSeen, version });
    }
  }
}
