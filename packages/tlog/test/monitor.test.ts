import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RekorClient } from '../src/client.js';
import { startTlogServer, type RunningTlog } from '../src/http/server.js';
import { monitorLog } from '../src/monitor.js';
import { hashedRekord, makeKeySigner, tempDir } from './helpers.js';

const signer = makeKeySigner();
const servers: RunningTlog[] = [];
const dirs: Array<ReturnType<typeof tempDir>> = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) d.remove();
});

function newDir(): string {
  const d = tempDir();
  dirs.push(d);
  return d.path;
}

async function serve(dataDir: string): Promise<RunningTlog> {
  const s = await startTlogServer({ dataDir });
  servers.push(s);
  return s;
}

async function stop(s: RunningTlog): Promise<void> {
  await s.close();
  servers.splice(servers.indexOf(s), 1);
}

async function grow(s: RunningTlog, n: number, tag: string): Promise<void> {
  const client = new RekorClient({ baseUrl: s.url });
  for (let i = 0; i < n; i++) await client.createEntry(hashedRekord(signer, `${tag} ${i}`));
}

async function monitorError(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('monitor unexpectedly succeeded');
}

describe('monitorLog', () => {
  it('pins the key on first run, verifies growth with a consistency proof, and saves the state atomically', async () => {
    const log = await serve(newDir());
    const stateFile = join(newDir(), 'state.json');
    await grow(log, 3, 'a');
    const first = await monitorLog({ url: log.url, stateFile });
    expect(first).toMatchObject({
      status: 'initialized',
      treeSize: 3,
      keyPinnedFromLog: true,
      logId: log.logId,
      origin: log.origin,
    });
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    expect(state).toMatchObject({ version: 1, treeSize: 3, publicKeyPem: log.publicKeyPem, logId: log.logId });
    expect(await monitorLog({ url: log.url, stateFile })).toMatchObject({
      status: 'unchanged',
      treeSize: 3,
      keyPinnedFromLog: false,
    });
    await grow(log, 10, 'b');
    expect(await monitorLog({ url: log.url, stateFile })).toMatchObject({
      status: 'extended',
      previousTreeSize: 3,
      treeSize: 13,
    });
    // With the key given explicitly (matching the pinned one).
    await grow(log, 1, 'c');
    expect(await monitorLog({ url: log.url, stateFile, publicKeyPem: log.publicKeyPem })).toMatchObject({
      status: 'extended',
      treeSize: 14,
    });
  });

  it('starts from an empty log', async () => {
    const log = await serve(newDir());
    const stateFile = join(newDir(), 'state.json');
    expect(await monitorLog({ url: log.url, stateFile })).toMatchObject({ status: 'initialized', treeSize: 0 });
    await grow(log, 2, 'x');
    expect(await monitorLog({ url: log.url, stateFile })).toMatchObject({ status: 'extended', treeSize: 2 });
  });

  it('detects a fork: a second instance with the same key and tree ID but other entries', async () => {
    const dirA = newDir();
    let a = await serve(dirA);
    await grow(a, 5, 'common');
    // Fork the log: copy its data directory (key, tree ID, first 5 entries) while it is stopped.
    await stop(a);
    const dirB = newDir();
    cpSync(dirA, dirB, { recursive: true });
    a = await serve(dirA);
    const b = await serve(dirB);
    expect(b.logId).toBe(a.logId);
    expect(b.origin).toBe(a.origin);
    await grow(a, 3, 'honest');
    await grow(b, 3, 'evil');

    const stateFile = join(newDir(), 'state.json');
    await monitorLog({ url: a.url, stateFile, publicKeyPem: a.publicKeyPem });
    const pinned = readFileSync(stateFile, 'utf8');

    // Same size (8), different root.
    const sameSize = await monitorError(monitorLog({ url: b.url, stateFile }));
    expect(sameSize.code).toBe('TLOG_MONITOR_FORK');
    expect(sameSize.message).toMatch(/tree size 8 now has root/);
    // Larger, but not an extension of what we saw: the consistency proof fails.
    await grow(b, 4, 'evil more');
    const bigger = await monitorError(monitorLog({ url: b.url, stateFile }));
    expect(bigger.code).toBe('TLOG_MONITOR_FORK');
    expect(bigger.message).toMatch(/not a consistent extension/);
    // Nothing was saved on failure; the honest log still passes.
    expect(readFileSync(stateFile, 'utf8')).toBe(pinned);
    await grow(a, 1, 'honest more');
    expect(await monitorLog({ url: a.url, stateFile })).toMatchObject({ status: 'extended', treeSize: 9 });
  });

  it('detects a shrink (the log was rolled back)', async () => {
    const dirA = newDir();
    let a = await serve(dirA);
    await grow(a, 4, 'x');
    await stop(a);
    const snapshot = newDir();
    cpSync(dirA, snapshot, { recursive: true });
    a = await serve(dirA);
    await grow(a, 3, 'y');
    const stateFile = join(newDir(), 'state.json');
    await monitorLog({ url: a.url, stateFile });
    await stop(a);
    const rolledBack = await serve(snapshot);
    const err = await monitorError(monitorLog({ url: rolledBack.url, stateFile }));
    expect(err.code).toBe('TLOG_MONITOR_SHRINK');
    expect(err.message).toMatch(/shrank from 7 to 4/);
  });

  it('detects a checkpoint signed by another key, a tampered checkpoint, and a key that differs from the pinned one', async () => {
    const a = await serve(newDir());
    const other = await serve(newDir());
    await grow(a, 2, 'k');
    const stateFile = join(newDir(), 'state.json');
    await monitorLog({ url: a.url, stateFile });

    const wrongKey = await monitorError(monitorLog({ url: other.url, stateFile }));
    expect(wrongKey.code).toBe('TLOG_MONITOR_BAD_SIGNATURE');

    // A man in the middle rewrites the root in the signed tree head.
    const tampering: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!String(input).endsWith('/api/v1/log')) return res;
      const info = (await res.json()) as { signedTreeHead: string; rootHash: string };
      const lines = info.signedTreeHead.split('\n');
      lines[2] = Buffer.alloc(32, 7).toString('base64');
      return new Response(
        JSON.stringify({ ...info, signedTreeHead: lines.join('\n'), rootHash: Buffer.alloc(32, 7).toString('hex') }),
        { status: 200 },
      );
    };
    const tampered = await monitorError(monitorLog({ url: a.url, stateFile, fetch: tampering }));
    expect(tampered.code).toBe('TLOG_MONITOR_BAD_SIGNATURE');

    const mismatch = await monitorError(monitorLog({ url: a.url, stateFile, publicKeyPem: other.publicKeyPem }));
    expect(mismatch.code).toBe('TLOG_MONITOR_KEY_MISMATCH');

    // First run with a given key that is not the log's key.
    const fresh = join(newDir(), 'state.json');
    const given = await monitorError(monitorLog({ url: a.url, stateFile: fresh, publicKeyPem: other.publicKeyPem }));
    expect(given.code).toBe('TLOG_MONITOR_BAD_SIGNATURE');
  });

  it('refuses a corrupted or forged state file, and reports an unreachable log', async () => {
    const a = await serve(newDir());
    const stateFile = join(newDir(), 'state.json');
    await monitorLog({ url: a.url, stateFile });
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    writeFileSync(stateFile, JSON.stringify({ ...state, treeSize: 0, rootHash: '00'.repeat(32) }));
    expect((await monitorError(monitorLog({ url: a.url, stateFile }))).code).toBe('TLOG_MONITOR_STATE_INVALID');
    writeFileSync(stateFile, '{oops');
    expect((await monitorError(monitorLog({ url: a.url, stateFile }))).code).toBe('TLOG_MONITOR_STATE_INVALID');
    const url = a.url;
    await stop(a);
    const unreachable = await monitorError(monitorLog({ url, stateFile: join(newDir(), 's.json'), timeoutMs: 2000 }));
    expect(unreachable.code).toBe('TLOG_MONITOR_UNREACHABLE');
  });
});
