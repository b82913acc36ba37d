// Runs the TypeScript tests without a type-checker in every test process: tsc checks the whole
// tree once (test/run.sh), and each test process only strips the types, with esbuild (already
// the project's bundler). ts-node, tap's default, spent 3-8 s per test file loading the
// TypeScript compiler and transpiling every imported module.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
