/**
 * The PostgreSQL backend against a real PostgreSQL 15: versioned migrations (applied once under concurrency,
 * a newer or edited database refused), the publish transaction's order and immutability rules (the same typed
 * errors as the embedded index), and blob state changes written through to other processes' read models.
 */
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { MirrorStore, type MirrorEntryInput } from '@airlock/cas';
import { canonicalize } from '@airlock/core';
import { postgresProblem, startPostgres, toolsAvailable, type PostgresServer } from '@airlock/testkit';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate, PgMirrorIndex } from '../src/index.js';

const available = toolsAvailable('PostgreSQL index tests', [postgresProblem()]);
const d = available ? describe : describe.skip;
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

let server: PostgresServer;
const dirs: string[] = [];

function snapshot(sequence: number, previous: string | null, files: { name: string; bytes: Buffer; eco?: 'npm' }[]) {
  const entries: MirrorEntryInput[] = files.map((f) => ({
    ecosystem: f.eco ?? 'generic',
    name: f.name,
    version: f.eco ? '1.0.0' : null,
    filename: `${f.name}.tgz`,
    urls: [],
    size: f.bytes.length,
    digests: { sha256: sha(f.bytes) },
    purl: null,
    metadata: {},
  }));
  const blobs = [...new Map(files.map((f) => [sha(f.bytes), { sha256: sha(f.bytes), size: f.bytes.length }])).values()];
  const createdAt = `2026-01-0${sequence}T00:00:00Z`;
  const id = `sha256:${sha(canonicalize({ sequence, previous, createdAt, entries, blobs }))}`;
  return {
    manifest: {
      snapshot: { id, sequence, previous, createdAt, producer: { name: 't', version: '0' } },
      blobs,
      entries,
    },
    entries,
    files,
  };
}

async function open(url: string, follow = false): Promise<MirrorStore> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-pgidx-'));
  dirs.push(dir);
  return MirrorStore.open(dir, { sharedIndex: await PgMirrorIndex.open(url, { follow, pollMs: 100 }) });
}

async function publish(store: MirrorStore, s: ReturnType<typeof snapshot>, allowGap = false) {
  const session = await store.beginImport();
  try {
    for (const f of s.files) await session.put([f.bytes]);
    return await session.commit({ manifest: s.manifest, signedBundles: null, entries: s.entries, allowGap });
  } catch (err) {
    await session.abort();
    throw err;
  }
}

d('PostgreSQL mirror index', () => {
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('applies each migration once under concurrent starters and refuses a newer or edited database', async () => {
    const db = await server.createDatabase();
    const pool = new pg.Pool({ connectionString: db.url });
    try {
      const runs = await Promise.all([migrate(pool), migrate(pool), migrate(pool)]);
      expect(runs.flat().sort()).toEqual(loadMigrations().map((m) => m.version));
      const rows = await pool.query('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.rows.map((r: { version: number }) => r.version)).toEqual(loadMigrations().map((m) => m.version));
      const edited = loadMigrations().map((m, i) => (i === 0 ? { ...m, checksum: 'x' } : m));
      await expect(migrate(pool, edited)).rejects.toMatchObject({ code: 'PG_MIGRATION_CHANGED' });
      await pool.query("INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'f')");
      await expect(migrate(pool)).rejects.toMatchObject({ code: 'PG_SCHEMA_NEWER' });
    } finally {
      await pool.end();
    }
  });

  it('publishes with the same order and immutability rules as the embedded index', async () => {
    const db = await server.createDatabase();
    const store = await open(db.url);
    try {
      const s1 = snapshot(1, null, [{ name: 'a', bytes: randomBytes(100), eco: 'npm' }]);
      await publish(store, s1);
      await expect(publish(store, s1)).rejects.toMatchObject({ code: 'SNAPSHOT_REPLAY' });
      const gap = snapshot(3, 'sha256:' + '0'.repeat(64), [{ name: 'b', bytes: randomBytes(10) }]);
      await expect(publish(store, gap)).rejects.toMatchObject({ code: 'SNAPSHOT_GAP' });
      // Same npm name+version+file with other bytes: refused, nothing published.
      const clash = snapshot(2, s1.manifest.snapshot.id, [{ name: 'a', bytes: randomBytes(100), eco: 'npm' }]);
      await expect(publish(store, clash)).rejects.toMatchObject({ code: 'IMPORT_ENTRY_CONFLICT' });
      expect(store.head()?.sequence).toBe(1);
      const s2 = snapshot(2, s1.manifest.snapshot.id, [{ name: 'c', bytes: randomBytes(50) }]);
      await publish(store, s2);
      const old = snapshot(2, s1.manifest.snapshot.id, [{ name: 'd', bytes: randomBytes(5) }]);
      await expect(publish(store, old)).rejects.toMatchObject({ code: 'SNAPSHOT_ROLLBACK' });
      expect(await publish(store, gap, true)).toMatchObject({ sequence: 3, gapAllowed: true });
    } finally {
      await store.close();
    }
  });

  it("a quarantine mark reaches PostgreSQL and another process's read model", async () => {
    const db = await server.createDatabase();
    const writer = await open(db.url);
    const reader = await open(db.url, true);
    try {
      const bytes = randomBytes(64);
      await publish(writer, snapshot(1, null, [{ name: 'q', bytes }]));
      await reader.refresh();
      expect(reader.index.getVisibleBlob(sha(bytes))?.state).toBe('ok');
      writer.index.setBlobState(sha(bytes), 'quarantined');
      await writer.close(); // flushes the write-through
      await reader.refresh();
      expect(reader.index.getBlob(sha(bytes))?.state).toBe('quarantined');
    } finally {
      await writer.close();
      await reader.close();
    }
  });
});
