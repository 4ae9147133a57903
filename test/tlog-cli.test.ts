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
  it('monitor pins, follows growth, and exits 1 naming a fork', { timeout: 180_000 }, async () => {
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

/** A "log" that answers, but not as a log: garbage checkpoints or an HTTP 500 on every route. */
async function misbehavingLog(kind: 'garbage' | 'http500'): Promise<string> {
  const { createServer } = await import('node:http');
  const server = createServer((_req, res) => {
    if (kind === 'http500') {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"code":500,"message":"boom"}');
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"treeSize":"many","signedTreeHead":42}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  procs.push({ stop: () => new Promise<void>((r) => server.close(() => r())) });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

describe('airlock tlog monitor exit codes', () => {
  const errorOf = (stdout: string): { code: string; message: string } =>
    (JSON.parse(stdout) as { ok: boolean; error: { code: string; message: string } }).error;

  it('exits 3 with a JSON error when the log is unreachable', async () => {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const state = join(tmp('unreach'), 'monitor.json');
    const r = await runCli(['tlog', 'monitor', '--url', `http://127.0.0.1:${port}`, '--state', state, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(errorOf(r.stdout).code).toBe('TLOG_MONITOR_UNREACHABLE');
  });

  it.each(['garbage', 'http500'] as const)('exits 1 when the log misbehaves (%s)', async (kind) => {
    const url = await misbehavingLog(kind);
    const state = join(tmp('liar'), 'monitor.json');
    const r = await runCli(['tlog', 'monitor', '--url', url, '--state', state, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(errorOf(r.stdout).code).toBe('TLOG_MONITOR_BAD_RESPONSE');
  });

  it('exits 2 for a bad --public-key file or a corrupt state file', async () => {
    const url = await misbehavingLog('garbage');
    const d = tmp('input');
    const badKey = join(d, 'key.pem');
    writeFileSync(badKey, 'not a key');
    const r1 = await runCli(['tlog', 'monitor', '--url', url, '--state', join(d, 's.json'), '--public-key', badKey]);
    expect(r1.code, r1.stderr).toBe(2);
    const missing = await runCli([
      'tlog',
      'monitor',
      '--url',
      url,
      '--state',
      join(d, 's.json'),
      '--public-key',
      join(d, 'nope.pem'),
      '--json',
    ]);
    expect(missing.code, missing.stdout + missing.stderr).toBe(2);
    expect(errorOf(missing.stdout).message).toContain('nope.pem');
    const corrupt = join(d, 'corrupt.json');
    writeFileSync(corrupt, '{not json');
    const r2 = await runCli(['tlog', 'monitor', '--url', url, '--state', corrupt, '--json']);
    expect(r2.code, r2.stdout + r2.stderr).toBe(2);
    expect(errorOf(r2.stdout).code).toBe('TLOG_MONITOR_STATE_INVALID');
  });
});
