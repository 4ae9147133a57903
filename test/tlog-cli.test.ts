/** `airlock tlog serve` and `airlock tlog monitor` as an operator runs them, including a forged fork. */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from './helpers/cli.js';

const dirs: string[] = [];
const procs: Array<{ stop: () => Promise<void> }> = [];
afterAll(async () => {
  for (const p of procs) await p.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (tag: string): string => {
  const d = mkdtempSync(join(tmpdir(), `airlock-tlog-cli-${tag}-`));
  dirs.push(d);
  return d;
};

async function serve(dataDir: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const p = await startCli(['tlog', 'serve', '--data', dataDir, '--json'], (out) => out.trim().endsWith('}'));
  procs.push(p);
  return { url: (JSON.parse(p.stdout()) as { url: string }).url, stop: p.stop };
}

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const work = tmp('work');
const keyFile = join(work, 'key.pem');
writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });

async function logSomething(url: string, text: string): Promise<void> {
  const f = join(work, `${text.replace(/\W/g, '_')}.txt`);
  writeFileSync(f, text);
  const r = await runCli(['sign', f, '--key', keyFile, '--rekor-url', url, '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
}

describe('airlock tlog serve / monitor', () => {
  it('monitor pins, follows growth, and exits 1 naming a fork', async () => {
    const dataA = tmp('a');
    let a = await serve(dataA);
    for (let i = 0; i < 3; i++) await logSomething(a.url, `common ${i}`);
    await a.stop();
    const dataB = tmp('b');
    cpSync(dataA, dataB, { recursive: true }); // same key, same tree ID, same first 3 entries
    a = await serve(dataA);
    const b = await serve(dataB);
    await logSomething(a.url, 'only in A');
    await logSomething(b.url, 'only in B');

    const state = join(tmp('state'), 'monitor.json');
    const first = await runCli(['tlog', 'monitor', '--url', a.url, '--state', state, '--json']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ ok: true, status: 'initialized', treeSize: 4 });
    await logSomething(a.url, 'more in A');
    const second = await runCli(['tlog', 'monitor', '--url', a.url, '--state', state, '--json']);
    expect(JSON.parse(second.stdout)).toMatchObject({ ok: true, status: 'extended', treeSize: 5 });

    // The forged twin: same key and origin, different history.
    const forked = await runCli(['tlog', 'monitor', '--url', b.url, '--state', state]);
    expect(forked.code).toBe(1);
    expect(forked.stderr).toMatch(/TLOG_MONITOR_(FORK|SHRINK)/);
    // The state still describes log A: a later honest check passes.
    const again = await runCli(['tlog', 'monitor', '--url', a.url, '--state', state, '--json']);
    expect(again.code, again.stderr).toBe(0);
  });
});
