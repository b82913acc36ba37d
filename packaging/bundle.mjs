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

// The agent's own imports of a builtin become a module of one export per name (builtinModule);
// a third-party ES module's import stays a require() of the builtin (see the plugin below).
const THIRD_PARTY = /[\\/]node_modules[\\/]/;
/** The builtins the agent's code imports, each as a module of one export per name. */
const byName = new Set();

/** An ES module that re-exports a builtin's names, each read only where it is imported. */
function builtinModule(id) {
  const builtin = require(id);
  const names = Object.getOwnPropertyNames(builtin).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && !RESERVED.has(n));
  return [
    `const builtin = require(${JSON.stringify(id)});`,
    'export default builtin;',
    ...names.map((n) => `export const ${n} = /* @__PURE__ */ (() => builtin.${n})();`),
  ].join('\n');
}
/** A module of node_modules/<dir>/ (the importer of a resolve). */
const from = (dir) => new RegExp(`[\\\\/]node_modules[\\\\/]${dir}[\\\\/]`);
/** Resolves to a small module of the given source, in place of what was imported. */
const stub = (path, contents) => ({ path, namespace: 'lean', pluginData: contents });
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
      // node-cron imports child_process at start for its background tasks (a forked scheduler),
      // which the agent never creates: it schedules inline (agent/daemon/loop.ts) and matches
      // windows in-process; ssh2 requires it at start for the ssh-agent of Cygwin and Pageant,
      // and the agent logs in with a key file. Loading child_process (and dgram with it) costs
      // 0.9 MiB of RSS on Node 26 (bench/README.md), so for these two it is loaded when one of
      // its functions is first called. Before builtins-by-require, which would take node-cron's
      // import. The stubs' source is loaded by lean-pino's onLoad.
      name: 'lazy-child-process',
      setup(b) {
        const uses = [
          ['node-cron', ['fork']],
          ['ssh2', ['execFile', 'spawn']],
        ];
        b.onResolve({ filter: /^child_process$/ }, (args) => {
          const [dir, names] = uses.find(([d]) => from(d).test(args.importer)) ?? [];
          if (names === undefined) return undefined;
          // One module per importer: esbuild shares a module between importers by its path.
          return stub(
            `child_process for ${dir}`,
            names.map((n) => `exports.${n} = (...args) => require('child_process').${n}(...args);`).join('\n'),
          );
        });
      },
    },
    {
      // An ES import of a builtin builds its namespace by reading every export, and Node 26's
      // http and zlib export lazy getters that load undici, web streams, http2 and zip: +12 MiB
      // of RSS at start for nothing. Taking the builtin with require() is not enough either:
      // esbuild's interop then gives every importing file its own copy of the module's exports,
      // one getter closure per name (105 copies, 4,500 getters: 1 MiB of heap), and reading
      // each export's descriptor on Node 26 loads lazy exports (util.diff and
      // util.setTraceSigInt load net, worker_threads and the assert diff: 0.6 MiB). So the
      // agent's own imports of a builtin go to a module of one export per name, each read in a
      // pure function call that esbuild drops when nothing imports the name. That form reads
      // every name when a namespace of it is built (`import * as x` used as a value), and some
      // names are getters that warn when read (crypto.fips): third-party ES modules, which do
      // that (OpenPGP.js with node:crypto), keep the require() form, and the agent's code may not
      // build one (checked after the build). import() hands out the namespace, so a builtin the
      // agent loads that way must have no getters (checked here); the require() form would not
      // do for it either, as esbuild's chunk of a CommonJS module exports only its default.
      name: 'builtins-by-require',
      setup(b) {
        b.onResolve({ filter: /^[a-z0-9_/:]+$/ }, (args) => {
          if ((args.kind !== 'import-statement' && args.kind !== 'dynamic-import') || !isBuiltin(args.path)) return;
          if (THIRD_PARTY.test(args.importer)) return { path: args.path, namespace: 'builtin-cjs' };
          const builtin = require(args.path);
          const getters = Object.getOwnPropertyNames(builtin).filter(
            (n) => !('value' in Object.getOwnPropertyDescriptor(builtin, n)),
          );
          if (args.kind === 'dynamic-import' && getters.length > 0)
            return {
              errors: [
                { text: `import('${args.path}') would read its getters (${getters.join(', ')}): import it statically` },
              ],
            };
          return { path: args.path, namespace: 'builtin' };
        });
        b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => {
          byName.add(args.path);
          return { contents: builtinModule(args.path), loader: 'js' };
        });
        b.onLoad({ filter: /.*/, namespace: 'builtin-cjs' }, (args) => ({
          contents: `module.exports = require(${JSON.stringify(args.path)});`,
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
        // Every stub (here and in lazy-child-process): its source is the resolve's pluginData.
        b.onLoad({ filter: /.*/, namespace: 'lean' }, (args) => ({ contents: args.pluginData, loader: 'js' }));
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
  for (const id of byName) {
    // esbuild names a module's namespace object after its path: node:fs -> node_fs_exports.
    const namespace = `${id.replace(/[^A-Za-z0-9]/g, '_')}_exports`;
    if (new RegExp(`\\b${namespace}\\d*=\\{\\};__export\\(`).test(text))
      throw new Error(
        `${file}: a namespace of ${id} is used as a value (import * as ...), which reads every export of it; import the names`,
      );
  }
  const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) writeFileSync(file, ascii);
}
console.log(`bundled ${fileURLToPath(new URL(`${outdir}/steward.mjs`, `file://${process.cwd()}/`))}`);
