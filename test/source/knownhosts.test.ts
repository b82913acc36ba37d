import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { checkHostKey, listedTypes, matchesHost, parseKnownHosts } from '../../agent/source/knownhosts.js';

// Host keys made by the real ssh-keygen; hashed entries made by `ssh-keygen -H`, and every lookup
// compared with `ssh-keygen -F NAME -f known_hosts`, OpenSSH's own lookup.
const exec = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), 'steward-knownhosts-'));
async function hostKey(name: string, type = 'ed25519') {
  const path = join(dir, name);
  await exec('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', path]);
  const [kind, b64] = (await readFile(`${path}.pub`, 'utf8')).trim().split(' ');
  return { line: `${kind} ${b64}`, blob: Buffer.from(b64!, 'base64') };
}
const a = await hostKey('a');
const b = await hostKey('b', 'ecdsa');
const c = await hostKey('c', 'rsa');
const other = await hostKey('other');

const plain = join(dir, 'known_hosts');
await writeFile(
  plain,
  [
    `git.example.com,10.0.0.5 ${a.line}`,
    `[127.0.0.1]:2222 ${b.line}`,
    `*.fleet.example.com,!bad.fleet.example.com ${c.line}`,
    `@revoked git.example.com ${other.line}`,
    '',
  ].join('\n'),
);
const hashed = join(dir, 'known_hosts.hashed');
await writeFile(hashed, await readFile(plain));
await exec('ssh-keygen', ['-q', '-H', '-f', hashed]);
const opensshFinds = (file: string, name: string) =>
  exec('ssh-keygen', ['-F', name, '-f', file]).then(
    (r) => r.stdout.includes('found'),
    () => false,
  );

for (const file of [plain, hashed])
  t.test(file === plain ? 'plain entries' : 'entries hashed by ssh-keygen -H', async (t) => {
    const text = await readFile(file, 'utf8');
    if (file === hashed) t.match(text, /^\|1\|/m, 'ssh-keygen did hash them');
    const { entries, errors } = parseKnownHosts(text);
    t.same(errors, []);
    const cases: Array<[string, number, Buffer, boolean]> = [
      ['git.example.com', 22, a.blob, true],
      ['10.0.0.5', 22, a.blob, true],
      ['127.0.0.1', 2222, b.blob, true],
      ['127.0.0.1', 22, b.blob, false],
      ['git.example.com', 22, b.blob, false],
      ['unknown.example.com', 22, a.blob, false],
    ];
    // Wildcards do not survive hashing (ssh-keygen -H keeps them as written); check them plain only.
    if (file === plain)
      cases.push(['x.fleet.example.com', 22, c.blob, true], ['bad.fleet.example.com', 22, c.blob, false]);
    for (const [host, port, key, ok] of cases) {
      const name = port === 22 ? host : `[${host}]:${port}`;
      t.equal(checkHostKey(entries, host, port, key).ok, ok, `${name}: ${ok ? 'accepted' : 'refused'}`);
      const listed = entries.some((e) => !e.marker && matchesHost(e, name));
      t.equal(
        await opensshFinds(file, name),
        listed,
        `ssh-keygen -F ${name} agrees that it is ${listed ? '' : 'not '}listed`,
      );
    }
    t.same(listedTypes(entries, '[127.0.0.1]:2222'), ['ecdsa-sha2-nistp256']);
  });

t.test('refusals say what was presented and what is listed', async (t) => {
  const { entries } = parseKnownHosts(await readFile(plain, 'utf8'));
  t.match(checkHostKey(entries, 'unknown.example.com', 22, a.blob), {
    ok: false,
    reason:
      /^unknown.example.com is not in knownHostsFile \(it presented ssh-ed25519 SHA256:.*\); add its key, Steward never trusts on first use$/,
  });
  t.match(checkHostKey(entries, 'git.example.com', 22, other.blob), {
    ok: false,
    reason: /marked @revoked \(line 4\)/,
  });
  const changed = await hostKey('changed');
  t.match(checkHostKey(entries, 'git.example.com', 22, changed.blob), {
    ok: false,
    reason:
      /^the host key of git.example.com has changed: it presented ssh-ed25519 SHA256:\S+, knownHostsFile lists another at line 1/,
  });
  t.same(parseKnownHosts(`git.example.com ssh-ed25519 AAAA\nonly-a-host\n`).errors, [
    'line 1: the key is not a ssh-ed25519 key',
    'line 2: expected hosts, a key type and a key',
  ]);
});
