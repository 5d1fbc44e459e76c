// EventTracker: positions per topic, a buffer for frames that arrive ahead of
// a gap or during a catch-up, and dedup. No I/O: the client feeds it frames
// and pages and hands on whatever it returns, in the order returned.
// Python: realtime_client/tracker.py EventTracker; both run contract/vectors/client.json.
import { decodeCursor, encodeCursor } from './cursor.js';

function isEvent(frame) {
  return (
    frame !== null &&
    typeof frame === 'object' &&
    typeof frame.topic === 'string' &&
    Number.isInteger(frame.seq) &&
    frame.seq > 0
  );
}

/**
 * The (topic, seq) pairs of a frame: its `seqs` (every topic through which the
 * event reached this connection) when well formed, else its own topic and seq.
 */
function framePairs(frame) {
  const seqs = frame.seqs;
  if (seqs !== null && typeof seqs === 'object' && !Array.isArray(seqs)) {
    const pairs = Object.entries(seqs);
    if (pairs.length > 0 && pairs.every(([, seq]) => Number.isInteger(seq) && seq > 0)) return pairs;
  }
  return [[frame.topic, frame.seq]];
}

/** One copy per (topic, seq) pair, each as if it had arrived alone; all of them share the frame's `seqs`. */
function copiesOf(frame) {
  const pairs = framePairs(frame);
  const seqs = Object.fromEntries(pairs);
  return pairs.map(([topic, seq]) => ({ ...frame, topic, seq, seqs }));
}

const pairKey = (topic, seq) => `${topic}\n${seq}`;

/**
 * What makes two frames or items one event: the server's opaque `key`, unique
 * per stored event (two producers' events that share an id differ in it); an
 * event stored before keys existed has none and falls back to its `id`.
 * Prefixed, so a key never meets an id. null: no identity, never deduped.
 */
function identityOf(event) {
  if (typeof event.key === 'string' && event.key !== '') return `key:${event.key}`;
  if (typeof event.id === 'string') return `id:${event.id}`;
  return null;
}

/** The key that interleaves topics on release; a frame without one goes first. */
function publishedAt(frame) {
  return typeof frame.publishedAt === 'string' ? frame.publishedAt : '';
}

export class EventTracker {
  /**
   * dedupeEvents: hand on each event once however many of the client's topics
   * carry it (by `key`, else `id`); false: once per topic. dedupeById is its
   * former name, still accepted. idMemory: how many events are remembered.
   */
  constructor({ dedupeEvents, dedupeById, idMemory = 10000, since = 'now' } = {}) {
    this.positions = new Map(); // topic -> last seq handed on, or skipped as history or past retention
    this.serverCursor = null; // the last cursor the server gave
    // 'now': the first read asks the server where the topics are (since=now) and
    // hands nothing on; 'retention': it reads from the start of retention.
    this.since = since;
    this.started = false; // a first page was read, or a cursor restored
    this.syncing = false; // a catch-up is running: hold live frames until it ends
    this.pending = new Map(); // `${topic}\n${seq}` -> frame held back
    this.dedupeEvents = dedupeEvents ?? dedupeById ?? true;
    this.idMemory = idMemory;
    this.recentEvents = new Map(); // identityOf -> Set of its (topic, seq) keys seen; insertion-ordered: the oldest go first
    this.stats = { delivered: 0, duplicates: 0, gapsDetected: 0, gapsLost: 0 };
  }

  /**
   * A frame from the WebSocket. Returns { deliver: [...], needSync: bool }:
   * needSync means a seq jumped (or a topic starts mid-way) and the caller
   * must catch up over HTTP; the frame is held until then. A frame carries
   * one event and the seq of each of its topics that reach this connection
   * (`seqs`): each pair moves its own topic, the event is handed on once.
   */
  offerLive(frame) {
    const result = { deliver: [], needSync: false };
    if (!isEvent(frame)) return result;
    for (const copy of copiesOf(frame)) this._offerCopy(copy, result);
    return result;
  }

  _offerCopy(copy, result) {
    const key = pairKey(copy.topic, copy.seq);
    const position = this.positions.get(copy.topic);
    if ((position !== undefined && copy.seq <= position) || this.pending.has(key)) {
      this.stats.duplicates += 1;
      return;
    }
    if (this.syncing) {
      this.pending.set(key, copy);
      return;
    }
    const expected = position === undefined ? 1 : position + 1;
    if (copy.seq === expected) {
      this._accept(copy, result.deliver);
      return;
    }
    // A jump: frames in between were missed (or this topic is new to us). Hold
    // this one and everything after it until the gap is read over HTTP.
    this.stats.gapsDetected += 1;
    this.pending.set(key, copy);
    this.syncing = true;
    result.needSync = true;
  }

  /** Start from a cursor saved earlier (e.g. across a page reload): everything after it is handed on. */
  restore(cursor) {
    this.serverCursor = cursor;
    for (const [topic, seq] of decodeCursor(cursor) || []) this.positions.set(topic, seq);
    this.started = true;
  }

  /** The server refused the cursor (400 invalid_cursor): start again as `since` says. */
  reset() {
    this.positions.clear();
    this.serverCursor = null;
    this.started = false;
  }

  /** The query of the next GET /events: {since: 'now'}, {cursor} or {} (from the start of retention). */
  fetchQuery() {
    if (this.since === 'now' && !this.started) return { since: 'now' };
    const cursor = this.fetchCursor();
    return cursor === null ? {} : { cursor };
  }

  /** The cursor to fetch with: the server's, advanced by our own positions when it is a v1 cursor. */
  fetchCursor() {
    const server = this.serverCursor === null ? new Map() : decodeCursor(this.serverCursor);
    if (server === null) return this.serverCursor;
    if (this.serverCursor === null && this.positions.size === 0) return null;
    for (const [topic, seq] of this.positions) {
      if (!server.has(topic) || server.get(topic) < seq) server.set(topic, seq);
    }
    return encodeCursor(server);
  }

  beginSync() {
    this.syncing = true;
  }

  /**
   * A page of GET /events: returns the events to hand on. A seq jump inside a
   * page is not a gap: the server holds every event still within retention,
   * so the seqs in between are past it.
   */
  applyPage(page) {
    const out = [];
    const events = (Array.isArray(page.events) ? page.events : []).filter(isEvent);
    // One item per (event, topic): the items of one event are handed on once, with every pair the page has.
    const seqsByEvent = new Map();
    for (const event of events) {
      const identity = identityOf(event);
      if (identity === null) continue;
      if (!seqsByEvent.has(identity)) seqsByEvent.set(identity, []);
      seqsByEvent.get(identity).push([event.topic, event.seq]);
    }
    for (const [identity, pairs] of seqsByEvent) {
      seqsByEvent.set(identity, Object.fromEntries(pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    }
    for (const item of events) {
      const event = { ...item, seqs: seqsByEvent.get(identityOf(item)) ?? { [item.topic]: item.seq } };
      const position = this.positions.get(event.topic);
      if (position !== undefined && event.seq <= position) {
        this.stats.duplicates += 1;
        continue;
      }
      this._accept(event, out);
    }
    if (typeof page.cursor === 'string' && page.cursor !== '') {
      this.started = true;
      this.serverCursor = page.cursor;
      // The server's positions are authoritative where they are ahead: history
      // before 'now', events past retention, topics we have not seen yet.
      const server = decodeCursor(page.cursor);
      if (server) {
        for (const [topic, seq] of server) {
          const position = this.positions.get(topic);
          if (position === undefined || position < seq) this.positions.set(topic, seq);
        }
      }
    }
    return out;
  }

  /**
   * End a catch-up: hand on the held frames that now follow on. With
   * force=false a frame still ahead of a gap stays held and gapRemaining is
   * true (catch up once more); with force=true it is handed on anyway and the
   * missing seqs are counted as lost.
   */
  endSync({ force = false } = {}) {
    const deliver = [];
    const byTopic = new Map();
    for (const frame of this.pending.values()) {
      if (!byTopic.has(frame.topic)) byTopic.set(frame.topic, []);
      byTopic.get(frame.topic).push(frame);
    }
    this.pending.clear();
    const chains = [];
    let gapRemaining = false;
    for (const [topic, frames] of byTopic) {
      frames.sort((a, b) => a.seq - b.seq);
      let position = this.positions.get(topic);
      const chain = [];
      for (const frame of frames) {
        if (position !== undefined && frame.seq <= position) {
          this.stats.duplicates += 1;
          continue;
        }
        const contiguous = position === undefined ? frame.seq === 1 : frame.seq === position + 1;
        if (!contiguous && !force) {
          gapRemaining = true;
          this.pending.set(`${frame.topic}\n${frame.seq}`, frame);
          continue;
        }
        if (!contiguous && position !== undefined) this.stats.gapsLost += frame.seq - position - 1;
        chain.push(frame);
        position = frame.seq;
      }
      if (chain.length) chains.push(chain);
    }
    // Interleave topics by publishedAt, never reordering within a topic.
    const heads = chains.map(() => 0);
    for (;;) {
      let best = -1;
      for (let i = 0; i < chains.length; i += 1) {
        if (heads[i] >= chains[i].length) continue;
        if (best < 0 || publishedAt(chains[i][heads[i]]) < publishedAt(chains[best][heads[best]])) {
          best = i;
        }
      }
      if (best < 0) break;
      this._accept(chains[best][heads[best]], deliver);
      heads[best] += 1;
    }
    this.syncing = gapRemaining;
    return { deliver, gapRemaining };
  }

  _accept(copy, out) {
    this.positions.set(copy.topic, copy.seq);
    // One event can reach us through several topics (one frame, or one HTTP item per topic, or
    // both): the application gets it once, with every (topic, seq) pair known for it.
    const identity = this.dedupeEvents ? identityOf(copy) : null;
    if (identity !== null) {
      const seen = this.recentEvents.get(identity);
      if (seen !== undefined) {
        // A pair the event was handed on with is its own copy, not a duplicate.
        if (!seen.has(pairKey(copy.topic, copy.seq))) this.stats.duplicates += 1;
        seen.add(pairKey(copy.topic, copy.seq));
        return;
      }
      this.recentEvents.set(identity, new Set(Object.entries(copy.seqs).map(([topic, seq]) => pairKey(topic, seq))));
      if (this.recentEvents.size > this.idMemory) this.recentEvents.delete(this.recentEvents.keys().next().value);
    }
    this.stats.delivered += 1;
    out.push(copy);
  }
}
