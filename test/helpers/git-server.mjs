#!/usr/bin/env node
// A real Git smart-HTTP server: git's own `git http-backend` (CGI) behind a small Node HTTP
// server, spawned per request. Used by the tests (as a child process, so a test that blocks its
// own event loop cannot deadlock it) and by examples/demo.sh.
//
//   node test/helpers/git-server.mjs ROOT [--port N] [--token T] [--no-v2] [--delay-ms N]
//     [--tls-cert PEM --tls-key PEM] [--exit-with-parent]
// Prints {"port":N} on stdout once listening. With --token, requests need basic auth with that
// password (any user name); pushes are allowed for every repo. --no-v2 drops the Git-Protocol
// header, as servers that only speak v0/v1 do. --delay-ms holds every answer (a slow server).
// --tls-cert and --tls-key serve HTTPS with that certificate and key instead of HTTP.
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const argv = process.argv.slice(2);
const root = argv[0];
const opt = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const token = opt('--token');
const noV2 = argv.includes('--no-v2');
let delayMs = Number(opt('--delay-ms') ?? 0);
let requests = 0;

/** CPU of this server and of every git http-backend it ran and waited for (/proc: utime stime cutime cstime). */
function cpuSeconds() {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return fields.slice(11, 15).reduce((sum, f) => sum + Number(f), 0) / 100;
  } catch {
    return 0;
  }
}
let unauthorized = 0;

const tls = opt('--tls-cert')
  ? { cert: readFileSync(opt('--tls-cert')), key: readFileSync(opt('--tls-key')) }
  : undefined;
const createServer = (listener) => (tls ? createHttpsServer(tls, listener) : createHttpServer(listener));
const server = createServer((req, res) => {
  if (!req.url.startsWith('/_')) requests += 1; // counted on arrival, also when held by --delay-ms
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () =>
    setTimeout(() => handle(req, res, Buffer.concat(chunks)), req.url.startsWith('/_') ? 0 : delayMs),
  );
});

function handle(req, res, body) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/_delay') {
    delayMs = Number(url.searchParams.get('ms') ?? 0);
    res.end('ok');
    return;
  }
  if (url.pathname === '/_stats') {
    res.end(JSON.stringify({ requests, unauthorized, cpuSeconds: cpuSeconds() }));
    return;
  }
  let user = '';
  if (token) {
    const auth = req.headers.authorization ?? '';
    const m = /^Basic (.+)$/.exec(auth);
    const [u, p] = m ? Buffer.from(m[1], 'base64').toString().split(':') : [];
    if (p !== token) {
      unauthorized += 1;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' });
      res.end('unauthorized');
      return;
    }
    user = u;
  }
  const env = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.slice(1),
    REQUEST_METHOD: req.method,
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    CONTENT_LENGTH: String(body.length),
    REMOTE_USER: user || 'anonymous',
    REMOTE_ADDR: '127.0.0.1',
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'http.receivepack',
    GIT_CONFIG_VALUE_0: 'true',
  };
  if (req.headers['git-protocol'] && !noV2) env.GIT_PROTOCOL = req.headers['git-protocol'];
  const cgi = spawn('git', ['http-backend'], { env });
  const out = [];
  cgi.stdout.on('data', (c) => out.push(c));
  cgi.stderr.on('data', () => {});
  cgi.on('close', () => {
    const buf = Buffer.concat(out);
    let split = buf.indexOf('\r\n\r\n');
    let sepLen = 4;
    if (split < 0) {
      split = buf.indexOf('\n\n');
      sepLen = 2;
    }
    const head = buf.subarray(0, split < 0 ? 0 : split).toString();
    const headers = {};
    let status = 200;
    for (const line of head.split(/\r?\n/)) {
      const m = /^([^:]+):\s*(.*)$/.exec(line);
      if (!m) continue;
      if (m[1].toLowerCase() === 'status') status = Number(m[2].split(' ')[0]);
      else headers[m[1]] = m[2];
    }
    res.writeHead(status, headers);
    res.end(split < 0 ? buf : buf.subarray(split + sepLen));
  });
  cgi.stdin.on('error', () => {});
  cgi.stdin.end(body);
}

server.listen(Number(opt('--port') ?? 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
// --exit-with-parent: the parent holds our stdin open; when it dies (a test killed at its
// timeout, kill -9) the pipe closes and this server goes with it, never left holding a port
// or the test runner's output.
if (argv.includes('--exit-with-parent')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}
