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
import { readFileSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { fileURLToPath } from 'node:url';

const [, , entry, outdir] = process.argv;
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
      // of RSS at start for nothing. A builtin is taken with require() instead, whose exports
      // are read only when used.
      name: 'builtins-by-require',
      setup(b) {
        b.onResolve({ filter: /^[a-z_/:]+$/ }, (args) =>
          (args.kind === 'import-statement' || args.kind === 'dynamic-import') && isBuiltin(args.path)
            ? { path: args.path, namespace: 'builtin' }
            : undefined,
        );
        b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
          contents: `module.exports = require(${JSON.stringify(args.path)});`,
          loader: 'js',
        }));
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
