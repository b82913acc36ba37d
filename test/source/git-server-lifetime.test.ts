import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// The test Git server dies with the process that started it, also when that process is killed
// (as tap kills a test at its timeout): nothing is left holding a port or the runner's output.
const helper = fileURLToPath(new URL('../helpers/git.ts', import.meta.url));

t.test('a test killed with SIGKILL takes its Git server with it', async (t) => {
  const script = `const { startGitServer } = await import(${JSON.stringify(helper)}); const s = await startGitServer(); console.log(s.port); setInterval(() => {}, 1000);`;
  const parent = spawn(
    process.execPath,
    ['--import', '@tapjs/typescript/import', '--input-type=module', '-e', script],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve) =>
    parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
  );
  t.ok((await fetch(`http://127.0.0.1:${port}/_stats`)).ok, 'the server answers while its parent lives');
  parent.kill('SIGKILL');
  let gone = false;
  for (let i = 0; i < 50 && !gone; i++) {
    await new Promise((r) => setTimeout(r, 100));
    gone = await fetch(`http://127.0.0.1:${port}/_stats`).then(
      () => false,
      () => true,
    );
  }
  t.ok(gone, 'the server is gone within 5 s of its parent');
});
