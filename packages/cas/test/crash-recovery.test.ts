import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PgMirrorIndex } from '@airlock/postgres';
import { postgresProblem, startPostgres, toolsAvailable, type PostgresServer } from '@airlock/testkit';
import { afterAll, beforeAll, describe, expect, it as vit } from 'vitest';
import { MirrorStore, fsck, type MirrorStoreOptions, type SharedIndex } from '../src/index.js';
import {
  chunks,
  genericFile,
  makeManifest,
  removeDir,
  removeTranspiled,
  sha256,
  tempDir,
  transpileForChild,
} from './helpers.js';

// The child runs a real import and is SIGKILLed at a chosen point: mid-put (a partial temp file), after its puts
// (journaled blobs in the CAS), or at a commit stage (inside the index transaction, or just after it). The same
// tests run on both index backends: the embedded SQLite file and PostgreSQL (AIRLOCK_TEST_INDEX_URL).
const CHILD = `
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { MirrorStore } from './index.js';
const [dir, planPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, 'utf8'));
const die = () => { process.kill(process.pid, 'SIGKILL'); };
const url = process.env.AIRLOCK_TEST_INDEX_URL;
const sharedIndex = url ? await (await import('@airlock/postgres')).PgMirrorIndex.open(url) : undefined;
const store = await MirrorStore.open(dir, {
  sharedIndex,
  fs: {
    onSync(kind) { if (kind === plan.killOnSync) die(); },
    onLink() { if (plan.killAt === 'link') die(); },
  },
  faultInjection: { onCommitStage(stage) { if (stage === plan.killAt) die(); } },
});
const session = await store.beginImport();
const files = plan.files.map((b) => Buffer.from(b, 'base64'));
const put = (source, bytes) => plan.batched
  ? session.putBatched(source, { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length })
  : session.put(source);
for (let i = 0; i < files.length; i++) {
  const bytes = files[i];
  if (plan.killAt === 'mid-put' && i === files.length - 1) {
    await put((async function* () { yield bytes.subarray(0, 3); die(); await new Promise(() => {}); })(), bytes);
  }
  await put([bytes], bytes);
}
if (plan.killAt === 'after-puts') { await session.flush(); die(); }
await session.commit({ manifest: plan.manifest, signedBundles: null, entries: plan.entries });
await store.close();
`;

interface StoreState {
  head: unknown;
  snapshots: unknown;
  entries: unknown;
  blobs: string[];
  index: unknown[];
}

/** Where the index lives: the embedded SQLite file in the store, or a fresh PostgreSQL database per store. */
interface Backend {
  name: string;
  /** Why it cannot run here (skipped, or a failure under AIRLOCK_REQUIRE_TOOLS=1). */
  problem(): string | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A new, empty index for a new store directory. */
  newIndex(dir: string): Promise<void>;
}

const indexUrls = new Map<string, string>();
let pgServer: PostgresServer | undefined;
const backends: Backend[] = [
  { name: 'sqlite', problem: () => undefined, start: async () => {}, stop: async () => {}, newIndex: async () => {} },
  {
    name: 'postgres',
    problem: postgresProblem,
    start: async () => {
      pgServer = await startPostgres();
    },
    stop: async () => {
      await pgServer?.stop();
    },
    newIndex: async (dir) => {
      indexUrls.set(dir, (await pgServer!.createDatabase()).url);
    },
  },
];

async function storeOptions(dir: string): Promise<MirrorStoreOptions> {
  const url = indexUrls.get(dir);
  // The cast: @airlock/postgres is typed against cas's dist, this test against cas's src (same shape).
  return url ? { sharedIndex: (await PgMirrorIndex.open(url)) as unknown as SharedIndex } : {};
}

async function openStore(dir: string): Promise<MirrorStore> {
  return MirrorStore.open(dir, await storeOptions(dir));
}

async function captureState(dir: string): Promise<StoreState> {
  const store = await openStore(dir);
  try {
    const blobs: string[] = [];
    for await (const h of store.blobs.list()) blobs.push(h);
    return {
      head: store.head(),
      snapshots: store.index.listSnapshots(),
      entries: store.index.listNames('generic').map((n) => store.index.findEntries({ ecosystem: 'generic', name: n })),
      blobs,
      index: store.index.listBlobs(),
    };
  } finally {
    await store.close();
  }
}

function runChild(
  script: string,
  dir: string,
  planPath: string,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const url = indexUrls.get(dir);
  const env = url ? { ...process.env, AIRLOCK_TEST_INDEX_URL: url } : process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, dir, planPath], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
}

describe.each(backends.map((b) => [b.name, b] as const))(
  'crash recovery (kill -9 during an import), %s index',
  (name, backend) => {
    const available = toolsAvailable(`crash recovery on the ${name} index`, [backend.problem()]);
    let buildDir: string;
    let script: string;
    const dirs: string[] = [];
    beforeAll(async () => {
      if (!available) return;
      await backend.start();
      buildDir = transpileForChild();
      script = join(buildDir, 'crash-child.js');
      writeFileSync(script, CHILD);
    });
    afterAll(async () => {
      if (buildDir) removeTranspiled(buildDir);
      for (const d of dirs) removeDir(d);
      await backend.stop();
    });
    const it = available ? vit : vit.skip;

    async function setup() {
      const dir = tempDir();
      dirs.push(dir);
      await backend.newIndex(dir);
      const store = await openStore(dir);
      const first = makeManifest({
        sequence: 1,
        previous: null,
        files: [genericFile('base', 'base bytes'), genericFile('shared', 'shared bytes')],
      });
      const s = await store.beginImport();
      await s.put(chunks('base bytes'));
      await s.put(chunks('shared bytes'));
      await s.commit({ manifest: first.manifest, signedBundles: null, entries: first.entries });
      await store.close();
      // Snapshot 2 re-lists a blob we already have and brings two new ones.
      const files = [
        genericFile('shared2', 'shared bytes'),
        genericFile('new1', 'new one'),
        genericFile('new2', 'x'.repeat(100_000)),
      ];
      const second = makeManifest({ sequence: 2, previous: first.manifest.snapshot.id, files });
      const planPath = join(dir, '..', `${dir.split('/').pop()}-plan.json`);
      return { dir, files, second, planPath };
    }

    // Per-blob puts (session.put) and batched ones (putBatched, what the importer uses): kill points in the puts,
    // inside a batch's publish (at its first file fsync: nothing linked yet; right after its first link, whose
    // journal line must already be durable; at its first directory fsync: all linked), after the flush, and in
    // the commit.
    const cases: { killAt: string; batched: boolean; killOnSync?: 'file' | 'dir'; visible: boolean }[] = [
      ...(['mid-put', 'after-puts', 'blobs-checked', 'in-transaction'] as const).map((killAt) => ({
        killAt,
        batched: false,
        visible: true, // 'new one' is put (durably, alone) before the last blob
      })),
      { killAt: 'mid-put', batched: true, visible: false },
      { killAt: 'file-sync', batched: true, killOnSync: 'file', visible: false },
      { killAt: 'link', batched: true, visible: true },
      { killAt: 'dir-sync', batched: true, killOnSync: 'dir', visible: true },
      { killAt: 'after-puts', batched: true, visible: true },
      { killAt: 'blobs-flushed', batched: true, visible: true },
      { killAt: 'in-transaction', batched: true, visible: true },
    ];
    for (const { killAt, batched, killOnSync, visible } of cases) {
      it(`leaves the store exactly as before when killed at ${killAt}${batched ? ' (batched puts)' : ''}`, async () => {
        const { dir, files, second, planPath } = await setup();
        const before = await captureState(dir);
        writeFileSync(
          planPath,
          JSON.stringify({
            killAt,
            batched,
            killOnSync,
            manifest: second.manifest,
            entries: second.entries,
            files: files.map((f) => f.bytes.toString('base64')),
          }),
        );
        dirs.push(planPath);
        const result = await runChild(script, dir, planPath);
        expect(result.signal, result.stderr).toBe('SIGKILL');
        // Leftovers exist before recovery (lock, journal; partial or staged temp files; journaled new blobs).
        expect(readdirSync(join(dir, 'staging'))).toContain('import.lock');
        if (killAt === 'mid-put' || killAt === 'file-sync')
          expect(readdirSync(join(dir, 'tmp')).length).toBeGreaterThan(0);
        const newBlob = join(dir, 'blobs', 'sha256', sha256('new one').slice(0, 2), sha256('new one'));
        expect(existsSync(newBlob)).toBe(visible);

        const after = await captureState(dir); // open() recovers
        expect(after).toEqual(before);
        expect(readdirSync(join(dir, 'staging'))).toEqual([]);
        expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
        const store = await openStore(dir);
        try {
          const report = await fsck(store);
          expect(report).toMatchObject({ clean: true, checked: 2, ok: 2 });
          // And the import can simply be run again.
          const s = await store.beginImport();
          for (const f of files) await s.put(chunks(f.bytes));
          await s.commit({ manifest: second.manifest, signedBundles: null, entries: second.entries });
          expect(store.head()?.sequence).toBe(2);
        } finally {
          await store.close();
        }
      });
    }

    it('keeps the new snapshot when killed after the transaction committed', async () => {
      const { dir, files, second, planPath } = await setup();
      writeFileSync(
        planPath,
        JSON.stringify({
          killAt: 'committed',
          manifest: second.manifest,
          entries: second.entries,
          files: files.map((f) => f.bytes.toString('base64')),
        }),
      );
      dirs.push(planPath);
      const result = await runChild(script, dir, planPath);
      expect(result.signal, result.stderr).toBe('SIGKILL');
      const after = await captureState(dir);
      expect(after.head).toMatchObject({ id: second.manifest.snapshot.id, sequence: 2 });
      expect(after.blobs).toEqual(
        [sha256('base bytes'), sha256('shared bytes'), sha256('new one'), sha256('x'.repeat(100_000))].sort(),
      );
      const store = await openStore(dir);
      try {
        expect((await fsck(store)).clean).toBe(true);
      } finally {
        await store.close();
      }
    });

    it('completes normally when not killed (the child harness itself works)', async () => {
      const { dir, files, second, planPath } = await setup();
      writeFileSync(
        planPath,
        JSON.stringify({
          killAt: 'never',
          manifest: second.manifest,
          entries: second.entries,
          files: files.map((f) => f.bytes.toString('base64')),
        }),
      );
      dirs.push(planPath);
      const result = await runChild(script, dir, planPath);
      expect(result, result.stderr).toMatchObject({ code: 0, signal: null });
      expect((await captureState(dir)).head).toMatchObject({ sequence: 2 });
    });
  },
);
