// realtime.js, the one file shipped, against the modules of src/ it is built
// from (build.mjs): up to date, the same public API as src/index.js and
// realtime.d.ts, self-contained; and the build refuses modules it cannot join.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { BuildError, OUTPUT, build } from '../build.mjs';

const shipped = readFileSync(OUTPUT, 'utf8');
const declarations = readFileSync(new URL('../realtime.d.ts', import.meta.url), 'utf8');

describe('realtime.js', () => {
  it('is what src/ builds (else run `npm run build` in clients/js)', () => {
    assert.ok(shipped === build(), 'clients/js/realtime.js is stale: run `npm run build` in clients/js');
  });

  it('exports exactly the names of src/index.js', async () => {
    const bundle = await import('../realtime.js');
    const source = await import('../src/index.js');
    assert.deepEqual(Object.keys(bundle), Object.keys(source));
    assert.deepEqual(Object.keys(bundle).sort(), [
      'Backoff',
      'EventTracker',
      'HttpError',
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

  it('exports every value realtime.d.ts declares, and no other', async () => {
    const declared = [...declarations.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]);
    assert.deepEqual(declared.sort(), Object.keys(await import('../realtime.js')).sort());
  });

  it('imports nothing: one file a page can load alone', () => {
    assert.doesNotMatch(shipped, /^\s*import\b/m);
    assert.doesNotMatch(shipped, /\bimport\s*\(/);
  });
});

describe('build.mjs', () => {
  /** build() of a src/ folder holding these files. */
  function buildOf(files) {
    const src = mkdtempSync(join(tmpdir(), 'realtime-src-'));
    try {
      for (const [name, text] of Object.entries(files)) writeFileSync(join(src, name), text);
      return build(`${src}/`);
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  }

  const entry = "// Header.\n\nexport { a } from './a.js';\n";

  it('keeps the public exports and drops the internal ones', () => {
    const built = buildOf({
      'index.js': entry,
      'a.js': "import { helper } from './b.js';\n\nexport function a() {\n  return helper();\n}\n",
      'b.js': 'export function helper() {\n  return 1;\n}\n',
    });
    assert.match(built, /^\/\/ Header\.\n/);
    assert.match(built, /^function helper\(\)/m);
    assert.match(built, /^export function a\(\)/m);
    assert.ok(built.indexOf('function helper') < built.indexOf('function a'), 'a dependency comes first');
  });

  it('refuses a name declared in two modules (they share one scope once joined)', () => {
    const files = {
      'index.js': entry,
      'a.js': "import { b } from './b.js';\n\nconst key = 1;\nexport function a() {\n  return b + key;\n}\n",
      'b.js': 'const key = 2;\nexport const b = key;\n',
    };
    assert.throws(
      () => buildOf(files),
      (error) => error instanceof BuildError && /key is declared in both src\/b\.js and src\/a\.js/.test(error.message),
    );
  });

  it('refuses imports and exports it cannot join', () => {
    for (const text of ["import x from './b.js';\nexport const a = x;\n", 'export default 1;\nexport const a = 1;\n']) {
      assert.throws(() => buildOf({ 'index.js': entry, 'a.js': text, 'b.js': 'export default 2;\n' }), BuildError);
    }
  });

  it('refuses a module nothing imports, and an import cycle', () => {
    const unused = { 'index.js': entry, 'a.js': 'export const a = 1;\n', 'b.js': 'export const b = 1;\n' };
    assert.throws(() => buildOf(unused), { message: /not reachable from src\/index\.js: src\/b\.js/ });
    const cycle = {
      'index.js': entry,
      'a.js': "import { b } from './b.js';\n\nexport const a = () => b;\n",
      'b.js': "import { a } from './a.js';\n\nexport const b = a;\n",
    };
    assert.throws(() => buildOf(cycle), { message: /import cycle/ });
  });
});
