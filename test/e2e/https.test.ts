import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileDoc, makeAgent } from '../helpers/agent.js';
import { fleetFixture } from '../helpers/fixture.js';
import { startGitServer, type GitServer } from '../helpers/git.js';

// An HTTPS Git source, end to end, with the bundle the packages ship: git http-backend behind
// Node's HTTPS server, serving the fixture's repositories, with a certificate made by openssl for
// 127.0.0.1. The tests run the TypeScript, where import('node:https') is the real builtin; in the
// bundle it is a chunk of its own, and an https source once failed there alone.
const exec = promisify(execFile);
const fx = fleetFixture(t);
let tls: GitServer;
let ca: string;
let lib: string;

/**
 * A self-signed certificate (its own CA: what a private Git server with an internal CA gives a
 * host) and its key, made by openssl for `altName`.
 */
async function certificate(altName: string): Promise<{ cert: string; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'steward-tls-'));
  const cert = join(dir, 'ca.pem');
  const key = join(dir, 'key.pem');
  await exec('openssl', [
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=steward-test-git'],
    ...['-addext', `subjectAltName=${altName}`],
  ]);
  return { cert, key };
}

t.before(async () => {
  const pair = await certificate('IP:127.0.0.1');
  ca = pair.cert;
  tls = await startGitServer({ root: fx.server.root, tls: pair });
  lib = await mkdtemp(join(tmpdir(), 'steward-bundle-'));
  await exec(process.execPath, ['packaging/bundle.mjs', 'dist/agent/main.js', lib]);
  await exec('cp', ['-r', 'schemas', lib]);
  await writeFile(join(lib, 'package.json'), '{ "type": "module" }\n');
});
t.teardown(() => tls?.stop());

/** An agent on the HTTPS server, and `steward once` of the bundle for it. */
async function httpsAgent(sourceExtra?: string) {
  const root = await mkdtemp(join(tmpdir(), 'steward-tls-root-'));
  const a = await makeAgent({
    url: tls.url('fleet'),
    extra: `files:\n  roots: [${root}]\n`,
    ...(sourceExtra ? { sourceExtra } : {}),
  });
  fx.agents.push(a);
  const once = () =>
    exec(process.execPath, [join(lib, 'steward.mjs'), 'once', '--config', a.configFile]).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
  return { a, root, once };
}

t.test('the bundled agent fetches, applies and reports over HTTPS with source.caFile', async (t) => {
  const { a, root, once } = await httpsAgent(`  caFile: ${ca}`);
  const rev = await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: fileDoc(join(root, 'motd'), 'over tls\n') });
  const res = await once();
  t.equal(res.code, 0, res.stdout + res.stderr);
  t.equal(await readFile(join(root, 'motd'), 'utf8'), 'over tls\n', 'fetched and applied');
  const status = await fx.statusOf(a.host);
  t.equal(status.appliedRevision, rev, 'the status branch was pushed over HTTPS');
  t.equal(status.phase, 'Converged');
});

t.test('a server whose certificate the host does not trust is refused, and says why', async (t) => {
  const { a, root, once } = await httpsAgent();
  await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: fileDoc(join(root, 'motd'), 'never\n') });
  const res = await once();
  t.equal(res.code, 1, 'the run failed');
  const out = res.stdout + res.stderr;
  t.match(out, /"code":"E_GIT_TLS"/);
  t.match(
    out,
    /its TLS certificate is not trusted \(self-signed certificate\); put the CA that signed it in source.caFile/,
  );
  await t.rejects(readFile(join(root, 'motd')), 'nothing was applied');
});

t.test('a trusted certificate for another host is refused, and says so', async (t) => {
  const other = await certificate('DNS:git.example.invalid');
  const server = await startGitServer({ root: fx.server.root, tls: other });
  t.teardown(() => server.stop());
  const root = await mkdtemp(join(tmpdir(), 'steward-tls-root-'));
  const a = await makeAgent({
    url: server.url('fleet'),
    extra: `files:\n  roots: [${root}]\n`,
    sourceExtra: `  caFile: ${other.cert}`,
  });
  fx.agents.push(a);
  await fx.fleet.commit({ [`hosts/${a.host}/motd.yaml`]: fileDoc(join(root, 'motd'), 'never\n') });
  const res = await exec(process.execPath, [join(lib, 'steward.mjs'), 'once', '--config', a.configFile]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string }) => e,
  );
  t.equal(res.code, 1);
  t.match(res.stdout, /"code":"E_GIT_TLS"/);
  t.match(res.stdout, /does not match certificate's altnames.*\(the certificate is for another host\)/);
  await t.rejects(readFile(join(root, 'motd')), 'nothing was applied');
});

t.test('steward doctor checks an https receiver with a TLS handshake, and sends nothing', async (t) => {
  const { a } = await httpsAgent(`  caFile: ${ca}`);
  const config = await readFile(a.configFile, 'utf8');
  await writeFile(a.configFile, `${config}notify:\n  - { url: "${tls.url('hook')}" }\n`);
  const doctor = (env: Record<string, string> = {}) =>
    exec(process.execPath, [join(lib, 'steward.mjs'), 'doctor', '--config', a.configFile], {
      env: { ...process.env, ...env },
    }).then(
      (r) => r.stdout,
      (e: { stdout: string }) => e.stdout,
    );
  // Its certificate is checked as a delivery would check it: against the system's CAs.
  t.match(
    await doctor(),
    /^FAIL {2}notify {6}notify\[0\] \(https:\/\/127\.0\.0\.1:\d+\) cannot be reached: DEPTH_ZERO_SELF_SIGNED_CERT$/m,
  );
  t.match(await doctor({ NODE_EXTRA_CA_CERTS: ca }), /^ok {4}notify {6}notify\[0\] .* reachable \(nothing sent\)$/m);
});
