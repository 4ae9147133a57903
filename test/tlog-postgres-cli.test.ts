/**
 * `airlock tlog serve --index postgres://…`: the log's entries and tree live in PostgreSQL (the SQLite file is never
 * created), survive a restart on a new data directory copy, and a bad or unreachable index exits 2 / 3.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postgresProblem, startPostgres, toolsAvailable, type PostgresServer } from '@airlock/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from './helpers/cli.js';

const available = toolsAvailable('tlog serve on PostgreSQL', [postgresProblem()]);
const dirs: string[] = [];
const procs: Array<{ stop: () => Promise<void> }> = [];
let pg: PostgresServer | undefined;
beforeAll(async () => {
  if (available) pg = await startPostgres();
}, 180_000);
afterAll(async () => {
  for (const p of procs) await p.stop();
  await pg?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (tag: string): string => {
  const d = mkdtempSync(join(tmpdir(), `airlock-tlog-pg-${tag}-`));
  dirs.push(d);
  return d;
};

async function serve(dataDir: string, index: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const p = await startCli(['tlog', 'serve', '--data', dataDir, '--index', index, '--json'], (out) =>
    out.trim().endsWith('}'),
  );
  procs.push(p);
  return { url: (JSON.parse(p.stdout()) as { url: string }).url, stop: p.stop };
}

describe.runIf(available)('airlock tlog serve --index postgres://', () => {
  it('keeps the log in PostgreSQL across restarts, never in a SQLite file', { timeout: 240_000 }, async () => {
    const db = await pg!.createDatabase();
    const data = tmp('data');
    const work = tmp('work');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyFile = join(work, 'key.pem');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });

    let log = await serve(data, db.url);
    for (let i = 0; i < 3; i++) {
      const f = join(work, `f${i}.txt`);
      writeFileSync(f, `entry ${i}`);
      const r = await runCli(['sign', f, '--key', keyFile, '--rekor-url', log.url, '--no-timestamp', '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    await log.stop();
    expect(readdirSync(data).filter((n) => n.endsWith('.sqlite') || n.endsWith('.db'))).toEqual([]);

    // Same signing key, fresh data directory otherwise: the tree comes back from PostgreSQL alone.
    const copy = tmp('copy');
    cpSync(data, copy, { recursive: true });
    log = await serve(copy, db.url);
    const state = join(tmp('state'), 'monitor.json');
    const m = await runCli(['tlog', 'monitor', '--url', log.url, '--state', state, '--json']);
    expect(m.code, m.stdout + m.stderr).toBe(0);
    expect(JSON.parse(m.stdout)).toMatchObject({ ok: true, treeSize: 3 });
    await log.stop();
  });

  it('refuses a non-postgres index (exit 2) and names an unreachable one (exit 3) without its password', async () => {
    const data = tmp('bad');
    const bad = await runCli(['tlog', 'serve', '--data', data, '--index', 'mysql://u:hunter2@x/db', '--json']);
    expect(bad.code, bad.stdout + bad.stderr).toBe(2);
    expect(bad.stdout + bad.stderr).not.toContain('hunter2');
    const down = await runCli([
      'tlog',
      'serve',
      '--data',
      data,
      '--index',
      'postgres://airlock:s3cret-pw@127.0.0.1:1/log',
      '--json',
    ]);
    expect(down.code, down.stdout + down.stderr).toBe(3);
    expect(JSON.parse(down.stdout)).toMatchObject({ ok: false, error: { code: 'PG_UNREACHABLE' } });
    expect(down.stdout + down.stderr).not.toContain('s3cret-pw');
    expect(existsSync(join(data, 'tlog.sqlite'))).toBe(false);
  });
});
