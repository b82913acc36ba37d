// Bundles the agent into one ESM file for the packages. The agent talks to the Docker engine
// with its own client (agent/host/engine.ts), so dockerode's tree is not in it. The agent's own
// SSH Git transport bundles ssh2 whole, without its optional native addons (sshcrypto.node,
// cpu-features): ssh2 falls back to node's crypto and pure JS when they are missing, and the
// package carries no compiled code.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const [, , entry, outfile] = process.argv;
await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: false,
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
      name: 'no-native',
      setup(b) {
        b.onResolve({ filter: /\.node$|^cpu-features$/ }, (args) => ({ path: args.path, external: true }));
      },
    },
  ],
  logLevel: 'warning',
});
console.log(`bundled ${fileURLToPath(new URL(outfile, `file://${process.cwd()}/`))}`);
