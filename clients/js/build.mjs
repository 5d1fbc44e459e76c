// Joins the modules of src/ into realtime.js, the one ES module the client ships as
// (npm package, demo page, a plain <script type="module">). No dependencies, so it
// runs wherever node does, before `npm ci` too.
//
//   node clients/js/build.mjs           write realtime.js (npm run build, in clients/js)
//   node clients/js/build.mjs --check   exit 1 when realtime.js is not what src/ builds
//
// The modules share one scope once joined, so they keep to what joins safely,
// and anything else stops the build: imports only of the form
// `import { a, b } from './x.js';` between modules of src/, exports only on
// top-level declarations (`export function|class|const ...`), no top-level
// name declared twice, no import cycles, no module left unused. index.js holds
// only comments and `export { ... } from './x.js';`: its names are the public
// API, exported from realtime.js; every other export is internal and loses its
// `export` there. The leading comment of index.js heads realtime.js; each module
// follows under a line naming it, in dependency order.

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('./src/', import.meta.url));
export const OUTPUT = fileURLToPath(new URL('./realtime.js', import.meta.url));
const ENTRY = 'index.js';

const IMPORT = /^import \{([^}]*)\} from '\.\/([\w-]+\.js)';\n/gm;
const REEXPORT = /^export \{([^}]*)\} from '\.\/([\w-]+\.js)';\n/gm;
const DECLARATION = /^(export )?((?:async )?(?:function\*?|class|const|let|var) ([A-Za-z_$][\w$]*))/gm;
const SEPARATOR_WIDTH = 78;

export class BuildError extends Error {}

function names(list, where) {
  const found = list
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  for (const name of found) {
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw new BuildError(`${where}: '${name}': renaming (as) is not supported`);
  }
  return found;
}

/** One module of src/: what it imports (in order), what it declares and exports, its text without the imports. */
function parseModule(src, file) {
  const text = readFileSync(`${src}${file}`, 'utf8');
  const imports = [...text.matchAll(IMPORT)].map(([, list, from]) => ({ from, names: names(list, file) }));
  const body = text.replace(IMPORT, '');
  const stray = body.match(/^(import\b.*|export (?:default|\{|\*).*)$/m);
  if (stray) throw new BuildError(`src/${file}: '${stray[0]}' cannot be joined (see build.mjs)`);
  const declared = [];
  const exported = new Set();
  for (const [, isExported, , name] of body.matchAll(DECLARATION)) {
    declared.push(name);
    if (isExported) exported.add(name);
  }
  return { file, imports, declared, exported, body };
}

/** The public names of index.js, per module, in its order. */
function parseEntry(src) {
  const text = readFileSync(`${src}${ENTRY}`, 'utf8');
  const reexports = [...text.matchAll(REEXPORT)].map(([, list, from]) => ({ from, names: names(list, ENTRY) }));
  const rest = text
    .replace(REEXPORT, '')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('//'));
  if (rest.length) throw new BuildError(`src/${ENTRY} may hold only comments and re-exports, not '${rest[0]}'`);
  const header = text.slice(0, text.search(/^(?!\/\/)/m)).trimEnd();
  return { header, reexports };
}

/** The text of realtime.js as src/ builds it (src: a folder path ending in /, for tests). */
export function build(src = SRC) {
  const entry = parseEntry(src);
  const files = readdirSync(src);
  const modules = new Map();
  const order = [];
  const visiting = new Set();
  const visit = (file, from) => {
    if (modules.has(file)) return modules.get(file);
    if (visiting.has(file)) throw new BuildError(`import cycle through src/${file}`);
    if (file === ENTRY || !files.includes(file)) throw new BuildError(`${from}: no module src/${file}`);
    visiting.add(file);
    const module = parseModule(src, file);
    for (const { from: dependency, names: wanted } of module.imports) {
      const target = visit(dependency, `src/${file}`);
      const missing = wanted.filter((name) => !target.exported.has(name));
      if (missing.length) throw new BuildError(`src/${file} imports ${missing} that src/${dependency} does not export`);
    }
    visiting.delete(file);
    modules.set(file, module);
    order.push(module);
    return module;
  };

  const publicNames = new Set();
  for (const { from, names: wanted } of entry.reexports) {
    const module = visit(from, `src/${ENTRY}`);
    for (const name of wanted) {
      if (!module.exported.has(name)) {
        throw new BuildError(`src/${ENTRY} re-exports ${name}, not exported by src/${from}`);
      }
      if (publicNames.has(name)) throw new BuildError(`src/${ENTRY} re-exports ${name} twice`);
      publicNames.add(name);
    }
  }
  const unused = files.filter((file) => file.endsWith('.js') && file !== ENTRY && !modules.has(file));
  if (unused.length) {
    throw new BuildError(`not reachable from src/${ENTRY}: ${unused.map((file) => `src/${file}`).join(', ')}`);
  }
  const declaredIn = new Map();
  for (const module of order) {
    for (const name of module.declared) {
      if (declaredIn.has(name)) {
        throw new BuildError(`${name} is declared in both src/${declaredIn.get(name)} and src/${module.file}`);
      }
      declaredIn.set(name, module.file);
    }
  }

  const parts = [
    `${entry.header}\n//\n// Generated file: edit clients/js/src, then run \`npm run build\` in clients/js.\n`,
  ];
  for (const module of order) {
    const label = `// ---- src/${module.file} `;
    const body = module.body.replace(DECLARATION, (whole, isExported, declaration, name) =>
      publicNames.has(name) ? whole : declaration,
    );
    parts.push(`${label.padEnd(SEPARATOR_WIDTH, '-')}\n${body.trim()}\n`);
  }
  return parts.join('\n');
}

function main(args) {
  let built;
  try {
    built = build();
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    console.error(`build.mjs: ${error.message}`);
    return 2;
  }
  let current = null;
  try {
    current = readFileSync(OUTPUT, 'utf8');
  } catch {
    // not built yet
  }
  if (args.includes('--check')) {
    if (current === built) return 0;
    console.error('clients/js/realtime.js is not what clients/js/src builds: run `npm run build` in clients/js.');
    return 1;
  }
  if (current !== built) writeFileSync(OUTPUT, built);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
