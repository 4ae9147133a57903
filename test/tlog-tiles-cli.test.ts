/** `airlock tlog witness` and `airlock tlog monitor --tiles` following a log from its tiles alone, with a forged fork. */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyCosignatures, parseWitnessVkey, witnessVkey } from '@airlock/tlog';
import { runCli, startCli } from './helpers/cli.js';

const dirs: string[] = [];
const procs: Array<{ stop: () => Promise<void> }> = [];
afterAll(async () => {
  for (const p of procs) await p.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (tag: string): string => {
  const d = mkdtempSync(join(tmpdir(), `airlock-tiles-cli-${tag}-`));
  dirs.push(d);
  return d;
};

async function serve(dataDir: string): Promise<{ url: string; publicKey: string; stop: () => Promise<void> }> {
  const p = await startCli(['tlog', 'serve', '--data', dataDir, '--json'], (out) => out.trim().endsWith('}'));
  procs.push(p);
  const info = JSON.parse(p.stdout()) as { url: string; publicKey: string };
  return { url: info.url, publicKey: info.publicKey, stop: p.stop };
}

const work = tmp('work');
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signKey = join(work, 'key.pem');
writeFileSync(signKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
const witness = generateKeyPairSync('ed25519');
const witnessKey = join(work, 'w1.pem');
writeFileSync(witnessKey, witness.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
const W1 = 'witness.example/w1';
const vkey = witnessVkey(W1, witness.publicKey);

async function logSomething(url: string, text: string): Promise<void> {
  const f = join(work, `${text.replace(/\W/g, '_')}.txt`);
  writeFileSync(f, text);
  const r = await runCli(['sign', f, '--key', signKey, '--rekor-url', url, '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
}

describe('airlock tlog witness / monitor --tiles', () => {
  it(
    'cosigns consistent growth, refuses a fork, and the monitor requires witnesses',
    { timeout: 180_000 },
    async () => {
      const dataA = tmp('a');
      let a = await serve(dataA);
      for (let i = 0; i < 3; i++) await logSomething(a.url, `common ${i}`);
      await a.stop();
      const dataB = tmp('b');
      cpSync(dataA, dataB, { recursive: true });
      a = await serve(dataA);
      const b = await serve(dataB);
      await logSomething(a.url, 'only in A');
      await logSomething(b.url, 'only in B');
      const pub = join(work, 'log.pub');
      writeFileSync(pub, a.publicKey);

      const state = join(tmp('state'), 'w1.json');
      const out = join(work, 'cosigned.txt');
      const args = (url: string) => [
        'tlog',
        'witness',
        '--url',
        `${url}/api/v2`,
        '--public-key',
        pub,
        '--log-name',
        '127.0.0.1',
        '--name',
        W1,
        '--key',
        witnessKey,
        '--state',
        state,
        '--out',
        out,
        '--json',
      ];
      const first = await runCli(args(a.url));
      expect(first.code, first.stdout + first.stderr).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({ ok: true, status: 'initialized', treeSize: 4 });
      expect(verifyCosignatures(readFileSync(out, 'utf8'), [parseWitnessVkey(vkey)]).map((c) => c.name)).toEqual([W1]);

      await logSomething(a.url, 'more in A');
      const second = await runCli(args(a.url));
      expect(JSON.parse(second.stdout)).toMatchObject({
        ok: true,
        status: 'extended',
        treeSize: 5,
        previousTreeSize: 4,
      });

      // B: same key and origin, different history, bigger tree: its tiles are not an extension of what was witnessed.
      await logSomething(b.url, 'B again');
      await logSomething(b.url, 'B thrice');
      const forked = await runCli(args(b.url));
      expect(forked.code, forked.stdout).toBe(1);
      expect(JSON.parse(forked.stdout).error.code).toBe('TLOG_MONITOR_FORK');

      // The monitor: the log publishes its own checkpoints (no cosignatures), so requiring one witness fails.
      const mstate = join(tmp('mstate'), 'm.json');
      const monitor = (min: string) =>
        runCli([
          'tlog',
          'monitor',
          '--tiles',
          '--url',
          `${a.url}/api/v2`,
          '--public-key',
          pub,
          '--log-name',
          '127.0.0.1',
          '--state',
          mstate,
          '--witness',
          vkey,
          '--min-witnesses',
          min,
          '--json',
        ]);
      const noWitness = await monitor('1');
      expect(noWitness.code, noWitness.stdout).toBe(1);
      expect(JSON.parse(noWitness.stdout).error.message).toMatch(/0 valid witness cosignature/);
      const ok = await monitor('0');
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, treeSize: 5 });
      const bad = await runCli(['tlog', 'monitor', '--tiles', '--url', `${a.url}/api/v2`, '--state', mstate, '--json']);
      expect(bad.code).toBe(2);
    },
  );
});
