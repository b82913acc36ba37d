import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { collectFacts } from '../../agent/host/facts.js';
import { createDocker } from '../../agent/host/docker.js';
import { checkSchema } from '../../agent/manifest/schema.js';
import { convergedDoc } from '../helpers/status.js';

t.test('host facts are the ones the system tools report, in the schema', async (t) => {
  const facts = await collectFacts(createDocker('/var/run/docker.sock'));
  const osRelease = readFileSync('/etc/os-release', 'utf8');
  const field = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm').exec(osRelease)?.[1] ?? '';
  t.equal(facts.os, `${field('NAME')} ${field('VERSION_ID')}`.trim(), 'distribution from os-release');
  t.equal(facts.kernel, execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(), 'kernel as uname -r');
  t.equal(facts.cpus, Number(execFileSync('nproc', { encoding: 'utf8' })), 'cpus as nproc');
  const memKiB = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
  t.equal(facts.memoryBytes, memKiB * 1024, 'memory as /proc/meminfo');
  t.match(facts.dockerVersion, /^\d+\.\d+/, 'the engine version');
  const doc = { ...convergedDoc('edge-1', 'a'.repeat(40), new Date()), facts };
  t.same(checkSchema('host-status', doc), [], 'a status document with them matches the schema');
});
