import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { syncToBundle, type SyncError, type SyncOptions } from '../src/index.js';
import { loopbackFetch, readTar, sha256, startUpstream, type Upstream } from '@airlock/testkit';

// The streaming pipeline: several large blobs in flight, each digest computed once as the bytes stream in,
// staged blobs sealed (unlinked open files) and written into the bundle without a second hash.

let up: Upstream;
let dir: string;

beforeAll(async () => {
  up = await startUpstream();
});
afterAll(async () => {
  await up.close();
});
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  up.resetCounters();
});

function workdir(): string {
  dir = mkdtempSync(join(tmpdir(), 'airlock-sync-pipeline-'));
  return dir;
}

function list(items: unknown[]): string {
  const p = join(dir, `list-${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(p, JSON.stringify(items));
  return p;
}

const base = (out: string, input: string, extra: Partial<SyncOptions> = {}): SyncOptions => ({
  inputs: [{ path: input, kind: 'generic' }],
  out,
  createdAt: '2026-12-07T03:00:00Z',
  quiet: true,
  retryBaseDelayMs: 5,
  retryMaxDelayMs: 20,
  fetch: loopbackFetch,
  ...extra,
});

async function rejection(p: Promise<unknown>): Promise<SyncError> {
  try {
    await p;
  } catch (err) {
    return err as SyncError;
  }
  throw new Error('expected the sync to fail');
}

const sha512 = (b: Buffer): string => createHash('sha512').update(b).digest('hex');

/** n distinct blobs of `size` bytes, served at /big/<i>.bin. */
function serveBlobs(n: number, size: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => {
    const body = randomBytes(size);
    up.file(`/big/${i}.bin`, body);
    return body;
  });
}

describe('sync pipeline', () => {
  it('writes every concurrently fetched large blob into the bundle byte for byte', async () => {
    const d = workdir();
    const bodies = serveBlobs(6, 3 * 1024 * 1024 + 17);
    const out = join(d, 'b.tar');
    const r = await syncToBundle(
      base(out, list(bodies.map((b, i) => ({ url: `${up.url}/big/${i}.bin`, sha256: sha256(b) }))), {
        concurrency: 6,
        perHostConcurrency: 6,
      }),
    );
    expect(r.blobs).toBe(6);
    const entries = await readTar(out);
    for (const b of bodies) {
      const e = entries.find((x) => x.name === `blobs/sha256/${sha256(b)}`);
      expect(e?.body.equals(b)).toBe(true);
    }
  });

  it('a mismatch in the 5th of 8 concurrent blobs fails the sync naming it, and leaves no bundle behind', async () => {
    const d = workdir();
    const bodies = serveBlobs(8, 2 * 1024 * 1024);
    const pinned = sha256(Buffer.from('what the list pinned for blob 4'));
    const items = bodies.map((b, i) => ({
      url: `${up.url}/big/${i}.bin`,
      sha256: i === 4 ? pinned : sha256(b),
      name: `blob-${i}.bin`,
    }));
    const outDir = join(d, 'out');
    const out = join(outDir, 'bundle.tar');
    const err = await rejection(
      syncToBundle(base(out, list(items), { concurrency: 8, perHostConcurrency: 8, state: join(d, 'state.json') })),
    );
    expect(err.code).toBe('SYNC_ENTRIES_FAILED');
    const failures = err.details!.failures as { entry: string; code: string }[];
    expect(failures).toEqual([expect.objectContaining({ entry: 'generic blob-4.bin', code: 'SYNC_HASH_MISMATCH' })]);
    expect(err.message).toContain(pinned);
    expect(err.message).toContain(sha256(bodies[4]!));
    for (let i = 0; i < 8; i++) expect(up.hits(`/big/${i}.bin`)).toBe(1); // the others were fetched in the meantime
    expect(readdirSync(outDir)).toEqual([]); // no bundle, no partial, no staging dir
    expect(existsSync(join(d, 'state.json'))).toBe(false);
  });

  it('computes only the digests needed: sha256 always, the pinned ones, nothing else for generic files', async () => {
    const d = workdir();
    const a = Buffer.from('pinned by sha256\n');
    const b = Buffer.from('pinned by sha512\n');
    up.file('/a.bin', a);
    up.file('/b.bin', b);
    const r = await syncToBundle(
      base(
        join(d, 'b.tar'),
        list([
          { url: `${up.url}/a.bin`, sha256: sha256(a) },
          { url: `${up.url}/b.bin`, sha512: sha512(b) },
        ]),
      ),
    );
    const digests = Object.fromEntries(r.manifest.entries.map((e) => [e.filename, e.digests]));
    expect(digests['a.bin']).toEqual({ sha256: sha256(a) });
    expect(digests['b.bin']).toEqual({ sha256: sha256(b), sha512: sha512(b) });
  });

  it('keeps sealed staged blobs out of reach by name while the bundle is assembled', async () => {
    const d = workdir();
    const bodies = serveBlobs(3, 64 * 1024);
    const work = join(d, 'work');
    mkdirSync(work);
    let seen: string[] | undefined;
    const r = await syncToBundle(
      base(join(d, 'b.tar'), list(bodies.map((b, i) => ({ url: `${up.url}/big/${i}.bin`, sha256: sha256(b) }))), {
        workDir: work,
        // Runs after every download, before the tar is written: what could another process open by name now?
        signer: {
          attest: async () => {
            seen = readdirSync(work).flatMap((s) => readdirSync(join(work, s)));
            return { fake: 'bundle' };
          },
        },
      }),
    );
    expect(r.blobs).toBe(3);
    expect(seen).toEqual([]);
  });

  it('past the sealed-file budget, a named staged blob changed before the tar is written fails the sync', async () => {
    const d = workdir();
    const bodies = serveBlobs(3, 64 * 1024);
    const work = join(d, 'work');
    mkdirSync(work);
    const outDir = join(d, 'out');
    const input = list(bodies.map((b, i) => ({ url: `${up.url}/big/${i}.bin`, sha256: sha256(b) })));
    const err = await rejection(
      syncToBundle(
        base(join(outDir, 'b.tar'), input, {
          workDir: work,
          maxSealedFiles: 1,
          signer: {
            attest: async () => {
              const stage = join(work, readdirSync(work)[0]!);
              const named = readdirSync(stage).filter((f) => f.startsWith('sha256-'));
              expect(named).toHaveLength(2); // one blob sealed, two staged by name
              writeFileSync(join(stage, named[0]!), 'swapped after verification');
              return { fake: 'bundle' };
            },
          },
        }),
      ),
    );
    expect(err.code).toBe('SYNC_BUNDLE_FAILED');
    expect(err.message).toMatch(/staged blob [0-9a-f]{64} changed on disk since it was verified/);
    expect(existsSync(outDir) ? readdirSync(outDir) : []).toEqual([]);
  });

  it('refuses a negative sealed-file budget before any download', async () => {
    const d = workdir();
    up.file('/a.bin', 'x');
    const err = await rejection(
      syncToBundle(
        base(join(d, 'b.tar'), list([{ url: `${up.url}/a.bin`, sha256: sha256('x') }]), { maxSealedFiles: -1 }),
      ),
    );
    expect(err.code).toBe('SYNC_OPTIONS_INVALID');
    expect(up.hits('/a.bin')).toBe(0);
  });
});
