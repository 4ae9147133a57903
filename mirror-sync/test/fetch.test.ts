import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { syncToBundle, type SyncError, type SyncOptions } from '../src/index.js';
import { loopbackFetch, sha256, startUpstream, type Upstream } from '@airlock/testkit';

let up: Upstream;
let up2: Upstream;
let dir: string;

beforeAll(async () => {
  up = await startUpstream();
  up2 = await startUpstream();
});
afterAll(async () => {
  await up.close();
  await up2.close();
});
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  up.resetCounters();
  up2.resetCounters();
});

function workdir(): string {
  dir = mkdtempSync(join(tmpdir(), 'airlock-sync-fetch-'));
  return dir;
}

function list(items: unknown[]): string {
  const p = join(dir, `list-${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(p, JSON.stringify(items));
  return p;
}

const base = (out: string, inputs: string[], extra: Partial<SyncOptions> = {}): SyncOptions => ({
  inputs: inputs.map((path) => ({ path, kind: 'generic' as const })),
  out,
  createdAt: '2026-11-28T15:00:00Z',
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

describe('fetching', () => {
  it('fails loudly on a hash mismatch: names URL, expected and actual, writes no bundle and no state', async () => {
    const d = workdir();
    const good = Buffer.from('good content\n');
    const served = Buffer.from('tampered content\n');
    const pinned = sha256(Buffer.from('what the lockfile pinned\n'));
    up.file('/files/good.txt', good);
    up.file('/files/evil.tar.gz', served);
    const out = join(d, 'out', 'bundle.tar');
    const state = join(d, 'state.json');
    const err = await rejection(
      syncToBundle(
        base(
          out,
          [
            list([
              { url: `${up.url}/files/good.txt`, sha256: sha256(good) },
              { url: `${up.url}/files/evil.tar.gz`, sha256: pinned },
            ]),
          ],
          { state },
        ),
      ),
    );
    expect(err.code).toBe('SYNC_ENTRIES_FAILED');
    const failures = err.details!.failures as {
      entry: string;
      code: string;
      message: string;
      details: Record<string, unknown>;
    }[];
    expect(failures).toHaveLength(1);
    expect(failures[0]!.code).toBe('SYNC_HASH_MISMATCH');
    expect(failures[0]!.entry).toBe('generic evil.tar.gz');
    for (const s of [`${up.url}/files/evil.tar.gz`, pinned, sha256(served)]) expect(err.message).toContain(s);
    expect(failures[0]!.details).toMatchObject({ expected: pinned, actual: sha256(served) });
    expect(up.hits('/files/evil.tar.gz')).toBe(1); // a mismatch is never retried
    expect(existsSync(out)).toBe(false);
    expect(existsSync(state)).toBe(false);
    expect(readdirSync(join(d, 'out'))).toEqual([]); // no partial bundle, no staging dir left behind
  });

  it('retries a flaky 503 (honouring Retry-After) and then succeeds', async () => {
    const d = workdir();
    const body = Buffer.from('eventually consistent\n');
    let calls = 0;
    up.route('/flaky/file.bin', (_req, res) => {
      if (++calls <= 2) {
        res.statusCode = 503;
        res.setHeader('retry-after', '0');
        res.end('try later');
        return;
      }
      res.end(body);
    });
    const r = await syncToBundle(
      base(join(d, 'b.tar'), [list([{ url: `${up.url}/flaky/file.bin`, sha256: sha256(body) }])]),
    );
    expect(up.hits('/flaky/file.bin')).toBe(3);
    expect(r.manifest.entries[0]!.digests.sha256).toBe(sha256(body));
  });

  it('retries a download cut off mid-body and keeps only the complete copy', async () => {
    const d = workdir();
    const body = Buffer.alloc(256 * 1024, 0x5a);
    let calls = 0;
    up.route('/cut.bin', (_req, res) => {
      res.setHeader('content-length', String(body.length));
      if (++calls === 1) {
        res.write(body.subarray(0, 1000));
        setTimeout(() => res.socket?.destroy(), 10);
        return;
      }
      res.end(body);
    });
    const r = await syncToBundle(base(join(d, 'b.tar'), [list([{ url: `${up.url}/cut.bin`, sha256: sha256(body) }])]));
    expect(calls).toBe(2);
    expect(r.manifest.blobs).toEqual([{ sha256: sha256(body), size: body.length }]);
  });

  it('gives up after the bounded number of retries, and never retries a 404', async () => {
    const d = workdir();
    up.route('/down.bin', (_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const err = await rejection(
      syncToBundle(
        base(
          join(d, 'b.tar'),
          [
            list([
              { url: `${up.url}/down.bin`, sha256: 'a'.repeat(64) },
              { url: `${up.url}/missing.bin`, sha256: 'b'.repeat(64) },
            ]),
          ],
          { retries: 2 },
        ),
      ),
    );
    expect(err.code).toBe('SYNC_ENTRIES_FAILED');
    expect(up.hits('/down.bin')).toBe(3);
    expect(up.hits('/missing.bin')).toBe(1);
    expect(err.message).toMatch(/down\.bin: HTTP 500 after 3 attempts/);
    expect(err.message).toMatch(/missing\.bin: HTTP 404/);
  });

  it('respects the per-host limit while the global limit allows more', async () => {
    const d = workdir();
    const items: unknown[] = [];
    for (const [server, tag] of [
      [up, 'a'],
      [up2, 'b'],
    ] as const) {
      for (let i = 0; i < 5; i++) {
        const body = Buffer.from(`slow ${tag} ${i}\n`);
        server.route(`/slow/${i}.bin`, (_req, res) => void setTimeout(() => res.end(body), 120));
        items.push({ url: `${server.url}/slow/${i}.bin`, sha256: sha256(body), name: `${tag}-${i}.bin` });
      }
    }
    let overall = 0;
    let maxOverall = 0;
    const counting: typeof fetch = async (input, init) => {
      overall++;
      maxOverall = Math.max(maxOverall, overall);
      try {
        const res = await loopbackFetch(input, init);
        const buf = Buffer.from(await res.arrayBuffer());
        return new Response(buf, { status: res.status, headers: res.headers });
      } finally {
        overall--;
      }
    };
    const r = await syncToBundle(
      base(join(d, 'b.tar'), [list(items)], { concurrency: 8, perHostConcurrency: 2, fetch: counting }),
    );
    expect(r.entries).toBe(10);
    expect(up.maxInFlight).toBe(2);
    expect(up2.maxInFlight).toBe(2);
    expect(maxOverall).toBeGreaterThan(2); // both hosts were served at once: the limit is per host
  });

  it('fetches content pinned twice only once and stores it as one blob', async () => {
    const d = workdir();
    const body = Buffer.from('shared bytes\n');
    up.file('/mirror-a/shared.bin', body);
    up.file('/mirror-b/shared.bin', body);
    const r = await syncToBundle(
      base(join(d, 'b.tar'), [
        list([
          { url: `${up.url}/mirror-a/shared.bin`, sha256: sha256(body), name: 'one.bin' },
          { url: `${up.url}/mirror-b/shared.bin`, sha256: sha256(body), name: 'two.bin' },
        ]),
      ]),
    );
    expect(up.hits('/mirror-a/shared.bin') + up.hits('/mirror-b/shared.bin')).toBe(1);
    expect(r.downloads).toBe(1);
    expect(r.entries).toBe(2);
    expect(r.manifest.blobs).toEqual([{ sha256: sha256(body), size: body.length }]);
  });

  it('enforces the size cap', async () => {
    const d = workdir();
    const body = Buffer.alloc(4096, 7);
    up.file('/big.bin', body);
    const err = await rejection(
      syncToBundle(
        base(join(d, 'b.tar'), [list([{ url: `${up.url}/big.bin`, sha256: sha256(body) }])], { maxBlobBytes: 1000 }),
      ),
    );
    expect((err.details!.failures as { code: string }[])[0]!.code).toBe('SYNC_SIZE_LIMIT');
  });

  it('rewrites upstream hosts in mirror mode but records the upstream URL', async () => {
    const d = workdir();
    const body = Buffer.from('rewritten\n');
    up.file('/dist/tool.tar.gz', body);
    const r = await syncToBundle(
      base(
        join(d, 'b.tar'),
        [list([{ url: 'https://downloads.example.com/dist/tool.tar.gz', sha256: sha256(body) }])],
        {
          rewriteHosts: { 'https://downloads.example.com': up.url },
        },
      ),
    );
    expect(up.hits('/dist/tool.tar.gz')).toBe(1);
    expect(r.manifest.entries[0]!.urls).toEqual(['https://downloads.example.com/dist/tool.tar.gz']);
  });

  it('follows redirects and falls through to the next URL when one fails (bazel mirrors)', async () => {
    const d = workdir();
    const body = Buffer.from('archive bytes\n');
    up.route('/moved.tar.gz', (_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', '/real/greet-1.0.tar.gz');
      res.end();
    });
    up.file('/real/greet-1.0.tar.gz', body);
    const p = join(d, 'bazel.json');
    writeFileSync(
      p,
      JSON.stringify([
        {
          name: 'greet',
          urls: [`${up.url}/gone.tar.gz`, `${up.url}/moved.tar.gz`],
          sha256: sha256(body),
          strip_prefix: 'greet-1.0',
        },
      ]),
    );
    const r = await syncToBundle({ ...base(join(d, 'b.tar'), []), inputs: [{ path: p, kind: 'bazel-fetch' }] });
    expect(r.manifest.entries[0]).toMatchObject({
      ecosystem: 'bazel',
      name: 'greet',
      filename: 'gone.tar.gz',
      metadata: { repository: 'greet', stripPrefix: 'greet-1.0', type: 'http_archive' },
    });
    expect(up.hits('/gone.tar.gz')).toBe(1);
    expect(up.hits('/real/greet-1.0.tar.gz')).toBe(1);
  });
});
