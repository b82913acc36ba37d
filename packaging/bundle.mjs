// Bundles the agent into one ESM file for the packages. Two modules of dockerode's tree are
// replaced by stubs that throw when called: its BuildKit session (gRPC + protobuf, ~20 MB of RSS
// at load, used only by buildImage) and docker-modem's ssh2 (the engine's ssh:// transport).
// Steward talks to the engine over its unix socket and never builds images. The agent's own SSH
// Git transport bundles ssh2 whole, without its optional native addons (sshcrypto.node,
// cpu-features): ssh2 falls back to node's crypto and pure JS when they are missing, and the
// package carries no compiled code.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const [, , entry, outfile] = process.argv;
// Loading a stub works (dockerode reads properties at load); calling anything in it throws.
const stub = (what) => `const fail = function () { throw new Error('${what} is not part of the packaged agent'); };
module.exports = new Proxy(fail, { get: (target, key) => (key === '__esModule' ? false : fail) });`;
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
      name: 'stubs',
      setup(b) {
        b.onResolve({ filter: /^ssh2$/ }, (args) =>
          args.importer.includes('docker-modem') ? { path: 'docker-modem-ssh2', namespace: 'stub' } : undefined,
        );
        b.onResolve({ filter: /\.node$|^cpu-features$/ }, (args) => ({ path: args.path, external: true }));
        b.onResolve({ filter: /^\.\/session$/ }, (args) =>
          args.importer.includes('dockerode') ? { path: 'dockerode-session', namespace: 'stub' } : undefined,
        );
        b.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({ contents: stub(args.path), loader: 'js' }));
      },
    },
  ],
  logLevel: 'warning',
});
console.log(`bundled ${fileURLToPath(new URL(outfile, `file://${process.cwd()}/`))}`);
