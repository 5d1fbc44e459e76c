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
