// Figures for secrets (issue 13). Prints numbers; asserts nothing.
//   node --import ./test/loader/register.mjs bench/secrets.ts
// Needs the testbed (test/testbed.sh): age, the real Git server over HTTP and the real engine.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import { parse, stringify } from 'yaml';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { SecretKeys } from '../agent/config/keys.js';
import { decryptSops, readSopsFile } from '../agent/manifest/sops.js';
import { containerDoc, docker, makeAgent } from '../test/helpers/agent.js';
import { createFleetRepo, startGitServer } from '../test/helpers/git.js';
import { ageKeygen, sopsDotenv, sopsTree } from '../test/helpers/sops.js';

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
console.log(
  `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${(await docker.version()).Version} engine`,
);

// 1. Decrypting a 100-key SOPS YAML file: the data key unwrapped by age (X25519) or OpenPGP
//    (the SOPS functional tests' RSA key), then 100 AES-GCM values and the MAC.
const dir = await mkdtemp(join(tmpdir(), 'stw-bench-secrets-'));
const key = ageKeygen(dir);
const tree = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`KEY_${i}`, `value-${i}-${'x'.repeat(24)}`]));
const yaml = sopsTree(tree, { age: [key.recipient] });
const age = await SecretKeys.load({ file: 'bench', secrets: { ageKeyFile: key.file } });
const time = async (keys: SecretKeys, text: string, runs = 30) => {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await decryptSops(readSopsFile('s.yaml', text), keys);
    ms.push(performance.now() - t0);
  }
  return median(ms);
};
await time(age, yaml, 3);
console.log(`decrypt a 100-key SOPS YAML (age): ${(await time(age, yaml)).toFixed(2)} ms median of 30`);
{
  const asc = new URL('../test/fixtures/sops/sops_functional_tests_key.asc', import.meta.url).pathname;
  const [priv] = await openpgp.readPrivateKeys({ armoredKeys: await readFile(asc, 'utf8') });
  const dataKey = randomBytes(32);
  const doc = parse(sopsTree(tree, { dataKey })) as { sops: Record<string, unknown> };
  const enc = await openpgp.encrypt({
    message: await openpgp.createMessage({ binary: dataKey }),
    encryptionKeys: priv!.toPublic(),
  });
  doc.sops.pgp = [{ fp: priv!.getFingerprint().toUpperCase(), enc }];
  const pgp = await SecretKeys.load({ file: 'bench', secrets: { pgpKeyFile: asc } });
  await time(pgp, stringify(doc), 3);
  console.log(
    `decrypt a 100-key SOPS YAML (OpenPGP RSA-2048 key): ${(await time(pgp, stringify(doc))).toFixed(2)} ms median of 30`,
  );
}

// 2. First converge: 10 containers each with a SOPS dotenv envFrom (3 values) vs 10 plain ones.
const server = await startGitServer();
const fleet = await createFleetRepo(server, 'fleet');
async function converge(secret: boolean): Promise<number> {
  const a = await makeAgent({
    url: server.url('fleet'),
    ...(secret ? { extra: `secrets: { ageKeyFile: ${key.file} }` } : {}),
  });
  const files: Record<string, string> = {};
  for (let i = 0; i < 10; i++) {
    const name = `${secret ? 's' : 'p'}${i}-${a.host}`;
    files[`hosts/${a.host}/${name}.yaml`] = containerDoc(name, {
      image: 'local/busybox:1',
      ...(secret
        ? { envFrom: [{ source: `${name}.env`, decrypt: 'sops' }] }
        : { env: { DB_USER: 'app', DB_PASSWORD: 'pw', API_TOKEN: 'tok' } }),
    });
    if (secret)
      files[`hosts/${a.host}/${name}.env`] = sopsDotenv(
        { DB_USER: 'app', DB_PASSWORD: 'pw', API_TOKEN: 'tok' },
        { age: [key.recipient] },
      );
  }
  await fleet.commit(files);
  try {
    const t0 = performance.now();
    const r = await a.once();
    const ms = performance.now() - t0;
    if (r.outcome.phase !== 'Converged') throw new Error(`not converged: ${r.outcome.phase}`);
    const t1 = performance.now();
    await a.once();
    const again = performance.now() - t1;
    console.log(
      `first converge, 10 ${secret ? 'SOPS envFrom' : 'plain env'} containers: ${ms.toFixed(0)} ms; the next (no change) run ${again.toFixed(0)} ms`,
    );
    return ms;
  } finally {
    await a.cleanup();
  }
}
try {
  const plain = await converge(false);
  const secret = await converge(true);
  console.log(`ratio secret / plain first converge: ${(secret / plain).toFixed(2)}`);
} finally {
  await server.stop();
}
