// Bundles the agent into one ESM file for the packages. Two modules of dockerode's tree are
// replaced by stubs that throw when called: its BuildKit session (gRPC + protobuf, ~20 MB of RSS
// at load, used only by buildImage) and ssh2 (the ssh:// transport, with optional native addons).
// Steward talks to the engine over its unix socket and never builds images.
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
    js: "import { createRequire as __stewardRequire } from 'node:module'; const require = __stewardRequire(import.meta.url);",
  },
  plugins: [
    {
      name: 'stubs',
      setup(b) {
        b.onResolve({ filter: /^ssh2$/ }, () => ({ path: 'ssh2', namespace: 'stub' }));
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
