// dist/realtime.js, the one file shipped (npm package, demo page), as esbuild
// bundles it from src/ (`make build-js`): the same public API as src/index.js
// and realtime.d.ts, self-contained, headed by the comment of src/index.js.
// The other tests import src/ directly.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { before, describe, it } from 'node:test';

const BUNDLE = new URL('../dist/realtime.js', import.meta.url);
const SRC = new URL('../src/', import.meta.url);
const HINT = 'run `make build-js` at the repository root (make test-clients does)';

const declarations = readFileSync(new URL('../realtime.d.ts', import.meta.url), 'utf8');

describe('dist/realtime.js', () => {
  let shipped;
  let bundle;

  before(async () => {
    try {
      shipped = readFileSync(BUNDLE, 'utf8');
    } catch {
      assert.fail(`clients/js/dist/realtime.js is missing: ${HINT}`);
    }
    bundle = await import(BUNDLE);
  });

  it('is newer than every module of src/ (else it is stale)', () => {
    const built = statSync(BUNDLE).mtimeMs;
    const newer = readdirSync(SRC).filter((name) => statSync(new URL(name, SRC)).mtimeMs > built);
    assert.deepEqual(newer, [], `src/ changed after the bundle was built: ${HINT}`);
  });

  it('exports exactly the names of src/index.js', async () => {
    const source = await import('../src/index.js');
    assert.deepEqual(Object.keys(bundle), Object.keys(source));
    assert.deepEqual(Object.keys(bundle).sort(), [
      'Backoff',
      'EventTracker',
      'HttpError',
      'PresenceRoster',
      'PresenceTracker',
      'RealtimeClient',
      'STATES',
      'TOKEN_EXPIRED',
      'connect',
      'decodeCursor',
      'encodeCursor',
      'retryAfterMs',
    ]);
  });

  it('exports every value realtime.d.ts declares, and no other', () => {
    const declared = [...declarations.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]);
    assert.deepEqual(declared.sort(), Object.keys(bundle).sort());
  });

  it('imports nothing: one file a page can load alone', () => {
    assert.doesNotMatch(shipped, /^\s*import\b/m);
    assert.doesNotMatch(shipped, /\bimport\s*\(/);
  });

  it('starts with the leading comment of src/index.js, which says what the file is', () => {
    const index = readFileSync(new URL('index.js', SRC), 'utf8');
    const header = index.slice(0, index.search(/^(?!\/\/)/m));
    assert.match(header, /^\/\/ Browser client for realtime events/);
    assert.ok(shipped.startsWith(header), 'the bundle does not start with the header of src/index.js');
  });

  it('works on its own: a restored cursor, then the next event handed on and a jump held', () => {
    const { EventTracker, decodeCursor, encodeCursor } = bundle;
    const cursor = encodeCursor({ 'user:alice': 7 });
    assert.deepEqual(decodeCursor(cursor), new Map([['user:alice', 7]]));
    const tracker = new EventTracker();
    tracker.restore(cursor);
    const next = tracker.offerLive({ id: 'e8', topic: 'user:alice', seq: 8, type: 'note', data: {} });
    assert.deepEqual([next.deliver.map((event) => event.id), next.needSync], [['e8'], false]);
    const jump = tracker.offerLive({ id: 'e10', topic: 'user:alice', seq: 10, type: 'note', data: {} });
    assert.deepEqual([jump.deliver, jump.needSync], [[], true]);
  });
});
