import t from 'tap';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { containerDoc, makeAgent } from '../helpers/agent.js';
import { createFleetRepo, showFile, startGitServer, statusRef } from '../helpers/git.js';
import { ageKeygen, sopsTree } from '../helpers/sops.js';

// The arm64 package, executed: its own Node.js (linux-arm64) under qemu-user with an arm64
// libc from Debian (test/testbed.sh puts both in place; libatomic comes from the package). This
// is emulation on an amd64 machine, not an arm64 board: it proves the package's runtime, bundle
// and schemas work together on that architecture, not its speed there.
const exec = promisify(execFile);
const top = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const version = JSON.parse(await readFile(join(top, 'package.json'), 'utf8')).version as string;
const SYSROOT = '/var/cache/steward-arm64-root';

t.test(
  'the arm64 package runs: version, validate, and a run against the real Git server and Docker',
  { timeout: 600_000 },
  async (t) => {
    // Only the tarball this test installs; dist/ is reused when npm test just built it.
    await exec('bash', [join(top, 'packaging/build.sh'), 'arm64'], {
      maxBuffer: 16 << 20,
      env: { ...process.env, PACKAGE_FORMATS: 'tar', PACKAGE_GZIP: '1' },
    });
    const dir = await mkdtemp(join(tmpdir(), 'steward-arm64-'));
    await exec('tar', ['-xzf', join(top, 'out', `steward-${version}-linux-arm64.tar.gz`), '-C', dir]);
    const lib = join(dir, 'usr/lib/steward');
    const elf = await readFile(join(lib, 'node'));
    t.equal(elf.subarray(0, 4).toString('latin1'), '\x7fELF');
    t.equal(elf.readUInt16LE(18), 0xb7, 'the runtime is an arm64 binary (ELF machine AArch64)');
    // Natively on an arm64 machine, under qemu-user elsewhere.
    const [cmd, pre] =
      process.arch === 'arm64' ? [join(lib, 'node'), []] : ['qemu-aarch64-static', ['-L', SYSROOT, join(lib, 'node')]];
    const steward = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((res) =>
        execFile(
          cmd,
          [...pre, join(lib, 'steward.mjs'), ...args],
          { env: { ...process.env, LD_LIBRARY_PATH: join(lib, 'lib') }, maxBuffer: 16 << 20, timeout: 300_000 },
          (err, stdout, stderr) =>
            res({
              code: err ? Number((err as { code?: number }).code ?? 1) : 0,
              stdout: stdout.trim(),
              stderr: stderr.trim(),
            }),
        ),
      );

    const started = await steward('version');
    t.equal(started.stdout, `steward ${version} (node 26.10.0, linux/arm64)`);
    // The bundle reads no deprecated export of a builtin (Node 26 warns about crypto.fips).
    t.equal(started.stderr, '', 'node printed no warning');
    const valid = await steward('validate', join(top, 'examples/fleet'));
    t.equal(valid.code, 0, valid.stderr);
    t.equal(valid.stdout, 'valid: 5 resource(s) in 2 file(s)');
    const bad = await mkdtemp(join(tmpdir(), 'steward-arm64-bad-'));
    await writeFile(
      join(bad, 'web.yaml'),
      'apiVersion: steward/v1\nkind: Container\nmetadata: { name: web }\nspec: { image: 42 }\n',
    );
    const invalid = await steward('validate', bad);
    t.equal(invalid.code, 2, 'an invalid manifest is refused there too');
    t.match(invalid.stdout + invalid.stderr, /web\.yaml:4/, 'naming the file and line');

    // The bundled age and OpenPGP libraries, loaded on demand, decrypt SOPS files there too.
    const secrets = await mkdtemp(join(tmpdir(), 'steward-arm64-sops-'));
    const key = ageKeygen(secrets);
    await writeFile(join(secrets, 'age.enc.yaml'), sopsTree({ token: 'x' }, { age: [key.recipient] }));
    await copyFile(join(top, 'test/fixtures/sops/format.enc.yaml'), join(secrets, 'pgp.enc.yaml'));
    const file = (name: string, source: string) =>
      JSON.stringify({
        apiVersion: 'steward/v1',
        kind: 'File',
        metadata: { name },
        spec: { path: `/etc/${name}`, source, decrypt: 'sops' },
      });
    await writeFile(join(secrets, 'files.yaml'), `${file('a', 'age.enc.yaml')}\n---\n${file('p', 'pgp.enc.yaml')}\n`);
    const pgpKey = join(top, 'test/fixtures/sops/sops_functional_tests_key.asc');
    const decrypted = await steward('validate', secrets, '--age-key-file', key.file, '--pgp-key-file', pgpKey);
    t.equal(decrypted.code, 0, decrypted.stderr);
    const stranger = await steward(
      'validate',
      secrets,
      '--age-key-file',
      ageKeygen(secrets).file,
      '--pgp-key-file',
      pgpKey,
    );
    t.match(stranger.stderr, /age\.enc\.yaml: no key on this host opens it: encrypted for age age1/);

    const server = await startGitServer();
    t.teardown(() => server.stop());
    const fleet = await createFleetRepo(server, 'fleet');
    const a = await makeAgent({ url: server.url('fleet') });
    t.teardown(() => a.cleanup());
    const head = await fleet.commit({
      [`hosts/${a.host}/web.yaml`]: containerDoc(`arm-${a.host}`, { image: 'local/busybox:1' }),
    });
    const run = await steward('once', '--config', a.configFile);
    t.equal(run.code, 0, run.stderr.slice(-2000));
    const [c] = await a.containers();
    t.equal(c?.Names[0], `/arm-${a.host}`, 'the container was created by the arm64 agent');
    t.equal(c?.State, 'running');
    const status = JSON.parse((await showFile(fleet.bare, statusRef(a.host), `hosts/${a.host}/status.json`))!);
    t.match(status, { phase: 'Converged', appliedRevision: head }, 'and its status pushed');
  },
);
