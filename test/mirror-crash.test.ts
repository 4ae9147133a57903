/**
 * Issue 3 acceptance, crash safety and at-rest corruption, through the CLI:
 *  - `airlock mirror import` of a bundle of many blobs is SIGKILLed at several moments (lock taken, first blob in,
 *    half of them in, near the end; the commit transaction itself is covered with fault injection in
 *    packages/cas/test); each time the store is left as it was (head, files, index
 *    rows) once recovered by the next opener, fsck is clean, and a mirror serving the store meanwhile never shows
 *    the half-imported snapshot. A second import while one runs is refused as a store conflict, not as a bad
 *    archive. Then a good import of the same bundle succeeds.
 *  - A blob corrupted on disk after import (chmod + one flipped byte), small (served from memory) or large
 *    (streamed), even one already served and cached, is never served again — 5xx/410, never the bytes, with or
 *    without a Range — and `airlock mirror fsck` reports it and exits 1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from './helpers/cli.js';
import {
  blobPath,
  fsck,
  importArgs,
  runCliJson,
  startMirror,
  startPlane,
  storeState,
  type CliPlane,
  type RunningMirror,
  type StoreState,
} from './helpers/upstream-e2e.js';
import { sha256Hex, startFixtureUpstream, type FixtureUpstream } from './helpers/upstream.js';

// Many small blobs (each is a journaled, fsynced publish) plus a few large ones: an import takes long enough to
// be killed at chosen points.
const SMALL = 500;
const small = Array.from({ length: SMALL }, (_, i) => randomBytes(8 * 1024 + ((i * 977) % 24_000)));
const large = Array.from({ length: 4 }, () => randomBytes(6 * 1024 * 1024));
const first = [randomBytes(50_000), randomBytes(3 * 1024 * 1024)];

let root: string;
let store: string;
let plane: CliPlane | undefined;
let upstream: FixtureUpstream | undefined;
let reader: RunningMirror | undefined;
let b1: string;
let big: string;
let afterB1: StoreState;
const live: ChildProcess[] = [];

async function headSeen(): Promise<number | null> {
  const r = await fetch(`${reader!.url}/`);
  return ((await r.json()) as { head: { sequence: number } | null }).head?.sequence ?? null;
}

/** Lines in the running import's journal (one per blob it has published), or -1 before the journal exists. */
function journalLines(): number {
  const staging = join(store, 'staging');
  const j = existsSync(staging) ? readdirSync(staging).find((n) => n.endsWith('.journal')) : undefined;
  if (!j) return -1;
  try {
    return Math.floor(statSync(join(staging, j)).size / 65);
  } catch {
    return -1;
  }
}

/**
 * Starts the big import and SIGKILLs it once `when(lines)` holds (polling the journal). While it runs, a mirror
 * reading the same store must keep showing the old head, and a second import must be refused as busy.
 */
async function killImportWhen(
  when: (lines: number) => boolean,
  extra?: () => Promise<void>,
): Promise<{ signal: NodeJS.Signals | null; code: number | null; linesAtKill: number; heads: Set<number | null> }> {
  const child = spawn(process.execPath, [CLI, ...importArgs(big, store, plane!)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.push(child);
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<{ signal: NodeJS.Signals | null; code: number | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => (done = true));
  const heads = new Set<number | null>();
  let linesAtKill = -1;
  let extraRan = false;
  while (!done) {
    const lines = journalLines();
    heads.add(await headSeen());
    if (lines >= 0 && extra && !extraRan) {
      extraRan = true;
      // Frozen while `extra` runs, so it still holds the store however fast its batched import would finish.
      child.kill('SIGSTOP');
      await extra();
      continue;
    }
    if (when(lines)) {
      linesAtKill = lines;
      child.kill('SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const result = await exited;
  live.splice(live.indexOf(child), 1);
  if (result.signal !== 'SIGKILL')
    throw new Error(`the import ended on its own before the kill point (exit ${result.code}):\n${out}`);
  return { ...result, linesAtKill, heads };
}

describe('mirror e2e: kill -9 mid-import, then corruption at rest (CLI)', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'airlock-mirror-crash-'));
    store = join(root, 'store');
    plane = await startPlane(join(root, 'plane'));
    const files: Record<string, Buffer> = {};
    first.forEach((b, i) => (files[`first-${i}`] = b));
    small.forEach((b, i) => (files[`s-${i}`] = b));
    large.forEach((b, i) => (files[`l-${i}`] = b));
    upstream = await startFixtureUpstream({ files });
    const list = (name: string, keys: string[]): string => {
      const p = join(root, name);
      writeFileSync(p, JSON.stringify(keys.map((k) => ({ url: upstream!.fileUrl(k), sha256: sha256Hex(files[k]!) }))));
      return p;
    };
    const state = join(root, 'state.json');
    b1 = join(root, 'b1.tar');
    big = join(root, 'big.tar');
    const s1 = await runCliJson([
      'sync',
      '--list',
      list(
        'l1.json',
        Object.keys(files).filter((k) => k.startsWith('first-')),
      ),
      '--out',
      b1,
      '--state',
      state,
      '--data',
      plane.dir,
      '--json',
    ]);
    expect(s1.code, s1.stdout + s1.stderr).toBe(0);
    // The big bundle also carries bundle 1's blobs (already in the store: verified, not re-added).
    const s2 = await runCliJson([
      'sync',
      '--list',
      list('l2.json', Object.keys(files)),
      '--out',
      big,
      '--state',
      state,
      '--data',
      plane.dir,
      '--json',
    ]);
    expect(s2.code, s2.stdout + s2.stderr).toBe(0);
    await upstream.close();
    upstream = undefined;

    const i1 = await runCliJson(importArgs(b1, store, plane));
    expect(i1.code, i1.stdout + i1.stderr).toBe(0);
    afterB1 = storeState(store);
    expect(afterB1.head?.sequence).toBe(1);
    reader = await startMirror(store);
  }, 180_000);

  afterAll(async () => {
    for (const c of live) c.kill('SIGKILL');
    await reader?.stop();
    await upstream?.close();
    await plane?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const total = first.length + SMALL + large.length;
  const fresh = total - first.length; // blobs the big import adds (and journals)
  const moments: [string, (lines: number) => boolean][] = [
    ['as soon as it holds the store (verified, journal open)', (l) => l >= 0],
    // Blobs are journaled a batch at a time (up to 512 per batch; this bundle's new blobs fit in one), so the
    // journal goes from empty to every new blob at once: the kill lands while the batch is linked, its
    // directories fsynced, or the commit begins. Not later: the poll must still win the race against the commit.
    ['once its batch of new blobs is journaled (linking, before the commit)', (l) => l >= 1],
  ];

  it.each(moments)(
    'SIGKILL %s leaves the store as it was',
    async (_what, when) => {
      const k = await killImportWhen(when);
      expect(k.signal).toBe('SIGKILL');
      expect(k.linesAtKill, 'killed with the journal in a state it can be in').toBeLessThanOrEqual(fresh);
      // Concurrent readers never saw anything but the old snapshot.
      expect([...k.heads]).toEqual([1]);
      expect(await headSeen()).toBe(1);
      // Before anyone recovers, the index is untouched (the kill happened before or inside the publish transaction).
      const raw = storeState(store);
      expect(raw.head).toEqual(afterB1.head);
      expect(raw.rows).toEqual(afterB1.rows);
      // None of the bundle's new blobs is served.
      const r = await fetch(`${reader!.url}/blobs/sha256/${sha256Hex(small[0]!)}`);
      expect(r.status).toBe(404);
      // The next opener (fsck) recovers: the interrupted import's blobs, temp files and journal are gone.
      const f = await fsck(store);
      expect(f.code, JSON.stringify(f.report)).toBe(0);
      expect(f.report).toMatchObject({ clean: true, corrupt: [], missing: [], orphans: [] });
      expect(storeState(store)).toEqual(afterB1);
    },
    120_000,
  );

  it('a second import while one runs is refused as a store conflict (IMPORT_STORE), not as a bad archive', async () => {
    let second: Awaited<ReturnType<typeof runCliJson>> | undefined;
    const k = await killImportWhen(
      (l) => l >= 0,
      async () => {
        second = await runCliJson(importArgs(big, store, plane!));
      },
    );
    expect(k.signal).toBe('SIGKILL');
    expect(second?.code, second?.stdout).toBe(1);
    expect(second?.errorCode).toBe('IMPORT_STORE');
    expect(String((second?.json.error as { message: string }).message)).toMatch(/another import/);
    expect((await fsck(store)).code).toBe(0);
    expect(storeState(store)).toEqual(afterB1);
  }, 120_000);

  it('after the kills, a good import of the same bundle succeeds and fsck is clean', async () => {
    const r = await runCliJson(importArgs(big, store, plane!));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json).toMatchObject({ ok: true, blobs: total, newBlobs: total - first.length, snapshot: { sequence: 2 } });
    expect(await headSeen()).toBe(2);
    const f = await fsck(store);
    expect(f.code).toBe(0);
    expect(f.report).toMatchObject({ clean: true, checked: total });
    const g = await fetch(`${reader!.url}/blobs/sha256/${sha256Hex(small[0]!)}`);
    expect(Buffer.from(await g.arrayBuffer()).equals(small[0]!)).toBe(true);
  }, 120_000);

  it('a blob corrupted on disk after import is never served (small and large, cached or not); fsck reports it and exits 1', async () => {
    const url = reader!.url;
    const victims = [
      { what: 'small, served and cached before', bytes: small[1]!, warm: true },
      { what: 'small, never served', bytes: small[2]!, warm: false },
      { what: 'large (streamed), served before', bytes: large[0]!, warm: true },
      { what: 'large (streamed), never served', bytes: large[1]!, warm: false },
    ];
    for (const v of victims) {
      if (!v.warm) continue;
      const r = await fetch(`${url}/blobs/sha256/${sha256Hex(v.bytes)}`);
      expect(Buffer.from(await r.arrayBuffer()).equals(v.bytes), v.what).toBe(true);
    }
    for (const v of victims) {
      const file = blobPath(store, sha256Hex(v.bytes));
      expect(statSync(file).mode & 0o222, 'blobs are read-only at rest').toBe(0);
      chmodSync(file, 0o644);
      const b = readFileSync(file);
      b[Math.floor(b.length / 3)] = b[Math.floor(b.length / 3)]! ^ 0x01;
      writeFileSync(file, b);
    }
    for (const v of victims) {
      const hex = sha256Hex(v.bytes);
      const mid = Math.floor(v.bytes.length / 3);
      for (const [path, headers] of [
        [`/blobs/sha256/${hex}`, {}],
        [`/blobs/sha256/${hex}`, { range: `bytes=${mid - 10}-${mid + 10}` }],
        [`/sha256/${hex}`, {}],
        [`/blobs/sha256/${hex}`, {}],
      ] as [string, Record<string, string>][]) {
        const r = await fetch(`${url}${path}`, { headers });
        const body = Buffer.from(await r.arrayBuffer());
        expect([410, 500, 502, 503], `${v.what} ${path} ${JSON.stringify(headers)}: ${r.status}`).toContain(r.status);
        // Not the corrupted bytes, not the original ones, not a slice of either.
        expect(body.length < 64 || !v.bytes.includes(body.subarray(0, 64)), v.what).toBe(true);
        expect(body.includes(v.bytes.subarray(mid - 8, mid + 8)), v.what).toBe(false);
      }
    }
    // Intact neighbours are still served.
    const ok = await fetch(`${url}/blobs/sha256/${sha256Hex(small[3]!)}`);
    expect(Buffer.from(await ok.arrayBuffer()).equals(small[3]!)).toBe(true);
    const f = await fsck(store);
    expect(f.code).toBe(1);
    expect(f.report.clean).toBe(false);
    const reported = JSON.stringify(f.report);
    for (const v of victims) expect(reported).toContain(sha256Hex(v.bytes));
    // Still never served after fsck (quarantined).
    const again = await fetch(`${url}/blobs/sha256/${sha256Hex(small[2]!)}`);
    expect([410, 500, 502, 503]).toContain(again.status);
    expect(
      createHash('sha256')
        .update(Buffer.from(await again.arrayBuffer()))
        .digest('hex'),
    ).not.toBe(sha256Hex(small[2]!));
  }, 120_000);
});
