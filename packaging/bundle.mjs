// Bundles the agent for the packages and for `npm run build` (dist/steward/): one ESM file,
// steward.mjs, and chunks/ holding what only some runs load (OpenPGP, SSH, age), each read only
// when a run needs it. Minified in whitespace and syntax (names kept, so stack traces still name
// functions): the source text is kept in the heap for the process's life, and the unminified
// single file was 7 MiB of it (two-byte, for a few non-ASCII comments). bench/README.md, issue 15. The agent talks to the Docker engine
// with its own client (agent/host/engine.ts), so dockerode's tree is not in it. The agent's own
// SSH Git transport bundles ssh2 whole, without its optional native addons (sshcrypto.node,
// cpu-features): ssh2 falls back to node's crypto and pure JS when they are missing, and the
// package carries no compiled code.
import { build } from 'esbuild';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { fileURLToPath } from 'node:url';

const [, , entry, outdir] = process.argv;
const require = createRequire(import.meta.url);

// Only for util: a namespace import (`import * as crypto`, or a chunk shared between entry
// points) reads every name of such a module, and some builtins' exports are deprecated getters
// that print a warning when read (crypto.fips).
const BY_NAME = new Set(['util', 'node:util']);

/** An ES module that re-exports a builtin's names, each read only where it is imported. */
function builtinModule(id) {
  const names = Object.getOwnPropertyNames(require(id)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && !RESERVED.has(n));
  return [
    `const builtin = require(${JSON.stringify(id)});`,
    'export default builtin;',
    ...names.map((n) => `export const ${n} = /* @__PURE__ */ (() => builtin.${n})();`),
  ].join('\n');
}
const RESERVED = new Set(['default', 'delete', 'new', 'function', 'class', 'const', 'let', 'var', 'import', 'export']);
// Chunk names carry a content hash: a stale one from an earlier build would otherwise be shipped.
rmSync(`${outdir}/chunks`, { recursive: true, force: true });
const result = await build({
  metafile: true,
  entryPoints: [entry],
  outdir,
  entryNames: 'steward',
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  charset: 'ascii',
  legalComments: 'none',
  banner: {
    // CommonJS modules in the tree expect require, __filename and __dirname (ssh2's poly1305, an
    // emscripten build, reads __dirname when it loads).
    js: [
      "import { createRequire as __stewardRequire } from 'node:module';",
      "import { fileURLToPath as __stewardPath } from 'node:url';",
      'const require = __stewardRequire(import.meta.url);',
      'const __filename = __stewardPath(import.meta.url);',
      "const __dirname = __filename.replace(/\\/[^/]*$/, '');",
    ].join(' '),
  },
  plugins: [
    {
      // An ES import of a builtin builds its namespace by reading every export, and Node 26's
      // http and zlib export lazy getters that load undici, web streams, http2 and zip: +12 MiB
      // of RSS at start for nothing. Taking the builtin with require() is not enough either:
      // esbuild's interop copies a CommonJS module's exports by reading each one's descriptor,
      // and on Node 26 that loads every lazy export too (util.diff and util.setTraceSigInt
      // load net, worker_threads and the assert diff: 0.6 MiB). So an import of util becomes a
      // module of one export per name, each read in a pure function call that esbuild drops
      // when nothing imports the name.
      name: 'builtins-by-require',
      setup(b) {
        b.onResolve({ filter: /^[a-z0-9_/:]+$/ }, (args) =>
          (args.kind === 'import-statement' || args.kind === 'dynamic-import') && isBuiltin(args.path)
            ? { path: args.path, namespace: 'builtin' }
            : undefined,
        );
        b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
          contents: BY_NAME.has(args.path)
            ? builtinModule(args.path)
            : `module.exports = require(${JSON.stringify(args.path)});`,
          loader: 'js',
        }));
      },
    },
    {
      // pino loads worker_threads, thread-stream (its transports, which run log shipping in a
      // worker) and assert at start; the agent writes its log lines synchronously to stdout or
      // the journal and never starts a worker or a transport. Leaving them out saves 0.7 MiB of
      // RSS on Node 26 (bench/README.md). thread-stream becomes a class that says so if it is
      // ever constructed, pino's isMainThread is true (the agent has no worker threads), and
      // sonic-boom's one assert(condition, message) is a three-line function.
      name: 'lean-pino',
      setup(b) {
        const from = (dir) => new RegExp(`[\\\\/]node_modules[\\\\/]${dir}[\\\\/]`);
        const stub = (path, contents) => ({ path, namespace: 'lean-pino', pluginData: contents });
        b.onResolve({ filter: /^thread-stream$/ }, (args) =>
          from('pino').test(args.importer)
            ? stub(
                args.path,
                "module.exports = class { constructor() { throw new Error('pino transports are not in the steward bundle'); } };",
              )
            : undefined,
        );
        b.onResolve({ filter: /^worker_threads$/ }, (args) =>
          from('pino').test(args.importer) ? stub(args.path, 'module.exports = { isMainThread: true };') : undefined,
        );
        b.onResolve({ filter: /^assert$/ }, (args) =>
          from('sonic-boom').test(args.importer)
            ? stub(
                args.path,
                'function assert(ok, message) { if (!ok) throw new Error(message); }\nmodule.exports = assert;',
              )
            : undefined,
        );
        b.onLoad({ filter: /.*/, namespace: 'lean-pino' }, (args) => ({ contents: args.pluginData, loader: 'js' }));
      },
    },
    {
      name: 'no-native',
      setup(b) {
        b.onResolve({ filter: /\.node$|^cpu-features$/ }, (args) => ({ path: args.path, external: true }));
      },
    },
  ],
  logLevel: 'warning',
});
// V8 keeps a script's source for the process's life, one byte per character only when every
// character is Latin-1: a single U+FFFF makes the whole 1.2 MB file a two-byte string (+1.15 MiB
// of heap). esbuild's ascii charset escapes strings and identifiers but prints regular-expression
// literals as written (isomorphic-git's /[\ud800-\uffff]/ holds a raw U+FFFF), so what is left
// is escaped here; \uXXXX means the same code unit in a regular expression, string or comment.
for (const file of Object.keys(result.metafile.outputs)) {
  const text = readFileSync(file, 'utf8');
  const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) writeFileSync(file, ascii);
}
console.log(`bundled ${fileURLToPath(new URL(`${outdir}/steward.mjs`, `file://${process.cwd()}/`))}`);
